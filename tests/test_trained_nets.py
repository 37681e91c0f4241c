"""The trained-networks dataset: round trip, keys, atomic additions, refusal of foreign files, and
records from nas train runs."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from evaluators import TrainConfig
from evaluators.trained_nets import TrainedNet, TrainedNets, record_from_run
from nas.arch import Arch, Block
from nas.train import train


def tiny(width: int = 8) -> Arch:
    return Arch(resolution=16, num_classes=4, stem=Block.make("cn", out_chs=width),
                blocks=(Block.make("ir", out_chs=width, exp_ratio=2),), head=Block.make("hc", out_chs=32))


DATA = {"fingerprint": "abc", "classes": 4}


def test_round_trip_keys_and_replacement(tmp_path: Path) -> None:
    path = tmp_path / "nets.json"
    nets = TrainedNets(path)
    a = TrainedNet.of(tiny(), DATA, {"epochs": 1}, 50.0, top5=90.0, source="test")
    nets.add(a)
    nets.add(TrainedNet.of(tiny(), DATA, {"epochs": 2}, 60.0))  # another recipe: another record
    nets.add(TrainedNet.of(tiny(12), DATA, {"epochs": 1}, 55.0))
    nets.add(TrainedNet.of(tiny(), DATA, {"epochs": 1}, 52.0))  # same key: replaces
    again = TrainedNets(path)
    assert len(again) == 3 and again.get(a.key).top1 == 52.0 and a.key in again
    assert again.get(a.key).to_arch() == tiny()
    assert {r.top1 for r in again.select(recipe={"epochs": 1})} == {52.0, 55.0}
    assert len(again.select(data_fingerprint="other")) == 0
    assert not list(tmp_path.glob(".*.tmp"))


def _add_widths(path: Path, widths: list[int]) -> None:
    nets = TrainedNets(path)  # read once, before the other writer's additions
    for w in widths:
        nets.add(TrainedNet.of(tiny(w), DATA, {"epochs": 1}, float(w)))


def test_concurrent_writers_keep_each_others_records(tmp_path: Path) -> None:
    """Two processes adding to one file (benchmark shards) lose nothing: each addition merges
    what the other wrote since it was read."""
    path = tmp_path / "nets.json"
    TrainedNets(path).add(TrainedNet.of(tiny(4), DATA, {"epochs": 1}, 4.0))
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_add_widths, args=(path, list(range(start, start + 40, 2))))
               for start in (8, 9)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    assert sorted(r.top1 for r in TrainedNets(path)) == [4.0, *map(float, range(8, 48))]


def test_foreign_or_broken_files_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a litenas trained-networks file"):
        TrainedNets(bad)
    bad.write_text(json.dumps({"format": "litenas.trained_nets", "version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        TrainedNets(bad)
    row = TrainedNet.of(tiny(), DATA, {}, 10.0).to_dict()
    row["arch_hash"] = "0" * 16
    bad.write_text(json.dumps({"format": "litenas.trained_nets", "version": 1, "records": [row]}))
    with pytest.raises(ValueError, match="record 0: .*hash"):
        TrainedNets(bad)
    with pytest.raises(ValueError, match="top1 must be a percentage"):
        TrainedNet.of(tiny(), DATA, {}, 140.0)


def test_record_from_a_finished_nas_train_run(tmp_path: Path) -> None:
    summary = train(tiny(), "synthetic", tmp_path / "run", TrainConfig(epochs=1, batch_size=32), threads=1,
                    progress=False)
    rec = record_from_run(tmp_path / "run")
    assert rec.arch_hash == tiny().hash() and rec.top1 == summary["final"]["test_top1"]
    assert rec.recipe["epochs"] == 1 and rec.source == "nas train"
    with pytest.raises(ValueError, match=r"nowhere/config.json: no such file \(expected the config of a `nas train` run"):
        record_from_run(tmp_path / "nowhere")
