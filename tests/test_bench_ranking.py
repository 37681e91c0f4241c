"""scripts/bench_ranking.py: latency-stratified sampling on the real ``mobile``@32 space and shipped
table, discovery of the CIFAR fixed points, and a tiny resumable end-to-end run on synthetic data."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from evaluators.trained_nets import TrainedNets
from search_spaces import zoo
from search_spaces.spaces import home_spaces

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_ranking.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_ranking", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


br = _load()


@pytest.fixture(scope="module")
def space_and_table() -> tuple:
    return br.get_mobile_space(), br.load_predictor("mobile_32_cpu")


def test_stratified_sample_covers_the_latency_range(space_and_table: tuple) -> None:
    space, predictor = space_and_table
    k = 8
    sample = br.stratified_sample(space, predictor, pool=120, archs=k, seed=0, progress=False)
    again = br.stratified_sample(space, predictor, pool=120, archs=k, seed=0, progress=False)
    assert [c.arch.hash() for c in sample.chosen] == [c.arch.hash() for c in again.chosen]  # deterministic
    assert sample.drawn == 120 and len(sample.pool_latencies) + sample.duplicates + len(sample.skipped) == 120

    pool = np.asarray(sample.pool_latencies)
    bins = np.array_split(np.argsort(pool, kind="stable"), k)  # equal-count bins of the pool, by latency
    assert [c.bin for c in sample.chosen] == list(range(k))  # one per bin: the lowest and highest included
    for c, members in zip(sample.chosen, bins, strict=True):
        assert c.kind == "sampled" and c.name is None
        assert c.arch.resolution == 32 and c.arch.num_classes == 10
        assert pool[members].min() <= c.latency_ms <= pool[members].max()
        assert c.latency_ms == pool[members.min()]  # the first drawn of its bin
        assert c.latency_ms == pytest.approx(predictor.predict(c.arch))
    lats = [c.latency_ms for c in sample.chosen]
    assert lats == sorted(lats)
    assert lats[0] <= np.quantile(pool, 1 / k) and lats[-1] >= np.quantile(pool, 1 - 1 / k)
    assert len({c.arch.hash() for c in sample.chosen}) == k

    other = br.stratified_sample(space, predictor, pool=120, archs=k, seed=1, progress=False)
    assert [c.arch.hash() for c in other.chosen] != [c.arch.hash() for c in sample.chosen]
    with pytest.raises(ValueError, match="archs"):
        br.stratified_sample(space, predictor, pool=5, archs=8, seed=0, progress=False)


def test_spread_order_spans_the_range_early() -> None:
    order = br.spread_order(40)
    assert sorted(order) == list(range(40))
    assert order[:3] == [0, 39, 19]
    assert max(order[:5]) - min(order[:5]) == 39 and max(np.diff(sorted(order[:5]))) <= 10
    assert br.spread_order(1) == [0] and br.spread_order(0) == []


def test_fixed_points_of_the_mobile_space(space_and_table: tuple) -> None:
    space, predictor = space_and_table
    found = dict(br.fixed_points(space))
    # README: `mobile` contains every chain-structured zoo net, so every CIFAR net of the zoo
    documented = {n for n in zoo.names() if n.startswith("cifar_") and "mobile" in home_spaces(n)}
    assert {"cifar_shufflenet_v2_x0_5", "cifar_shufflenet_v2_x1_0", "cifar_ghostnet_100",
            "cifar_mobilenet_v3_large"} <= documented
    assert documented <= set(found)
    for name, arch in found.items():
        assert name.startswith("cifar_") and arch.num_classes == 10 and arch.resolution == 32
        assert arch == zoo.get(name).replace(num_classes=10)
        space.encode(arch)
        assert predictor.predict(arch) > 0


def test_a_plan_is_drawn_once_per_setting(tmp_path: Path) -> None:
    """What was planned stays planned when the table changes; other settings draw again."""
    space = br.get_mobile_space()
    predictor = br.load_predictor("mobile_32_cpu")
    drawn = []

    def draw() -> br.Plan:
        drawn.append(1)
        return br.make_plan(space, predictor, pool=20, archs=3, seed=len(drawn), with_fixed=False, progress=False)

    path, settings = tmp_path / "plan.json", {"pool": 20, "archs": 3}
    first = br.frozen_plan(path, settings, draw)
    again = br.frozen_plan(path, settings, draw)  # the second draw (seed 2) would give other networks
    assert len(drawn) == 1 and [c.arch.hash() for c in again.candidates] == [c.arch.hash() for c in first.candidates]
    assert [c.bin for c in again.candidates] == [0, 2, 1] and again.sample.pool_latencies == first.sample.pool_latencies
    br.frozen_plan(path, {**settings, "archs": 4}, draw)
    assert len(drawn) == 2
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable plan"):
        br.frozen_plan(path, settings, draw)


def _run(tmp: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    argv = ["--data", "synthetic", "--train-per-class", "8", "--test-per-class", "4", "--archs", "3",
            "--pool", "30", "--epochs", "1", "--threads", "1", "--no-fixed-points", "--quiet", "--view-archs", "0",
            "--estimators", "macs,params,neg_latency,naswot",
            "--results", str(tmp / "trained.json"), "--scores", str(tmp / "scores.json"),
            "--plan", str(tmp / "plan.json"), "--out", str(tmp / "report"), *extra]
    assert br.main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_tiny_run_writes_results_and_report_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    none = _run(tmp_path, capsys, "--time-budget-s", "0")  # the budget is spent before the first network
    assert (none["planned"], none["trained"], none["new"], none["remaining"]) == (3, 0, 0, 3)
    assert "0 of 3 planned networks trained" in (tmp_path / "report.md").read_text()

    first = _run(tmp_path, capsys, "--limit", "1")
    assert (first["planned"], first["trained"], first["new"], first["remaining"]) == (3, 1, 1, 2)
    md = (tmp_path / "report.md").read_text()
    assert "1 of 3 planned networks trained" in md and "Not trained yet (2)" in md

    odd = _run(tmp_path, capsys, "--shard", "1/2")  # continues: the first network is in the file
    assert (odd["trained"], odd["new"], odd["remaining"]) == (2, 1, 1)  # plan position 1 only
    second = _run(tmp_path, capsys, "--shard", "0/2")  # positions 0 (done) and 2
    assert (second["trained"], second["new"], second["remaining"]) == (3, 1, 0)
    store = TrainedNets(tmp_path / "trained.json")
    assert len(store) == 3
    for r in store:
        assert r.source == "bench_ranking" and r.recipe["epochs"] == 1 and r.recipe["batch_size"] == 128
        assert r.data["train"] == 80 and r.data["test"] == 40
        assert set(r.extra) >= {"name", "latency_pred_ms", "params", "macs"} and r.extra["name"] is None

    third = _run(tmp_path, capsys)  # nothing left: nothing new, the report still lists every network
    assert (third["trained"], third["new"], third["remaining"]) == (3, 0, 0)
    assert len(TrainedNets(tmp_path / "trained.json")) == 3
    md = (tmp_path / "report.md").read_text()
    assert "3 of 3 planned networks trained" in md and "scripts/bench_ranking.py" in md
    for r in store:
        assert r.arch_hash in md
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["kendall_tau"]) == {"macs", "params", "neg_latency", "naswot"}
    for entry in report["kendall_tau"].values():
        assert entry["sampled"]["n"] == entry["all"]["n"] == 3 and entry["cpu_seconds_median"] >= 0
    assert [row["bin"] for row in report["rows"]] == [0, 1, 2]

    assert br.main(["--report-only", *_argv_tail(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["new"] == 0


def _argv_tail(tmp: Path) -> list[str]:
    return ["--data", "synthetic", "--train-per-class", "8", "--test-per-class", "4", "--archs", "3", "--pool", "30",
            "--view-archs", "0",
            "--epochs", "1", "--threads", "1", "--no-fixed-points", "--quiet", "--estimators", "macs",
            "--results", str(tmp / "trained.json"), "--scores", str(tmp / "scores.json"), "--plan", str(tmp / "plan.json"),
            "--out", str(tmp / "r2")]


def test_estimator_table_is_extensible() -> None:
    assert {"macs", "params", "neg_latency", "synflow", "naswot", "grad_norm", "snip"} <= set(br.ESTIMATORS)
    with pytest.raises(SystemExit):
        br.parse_args(["--estimators", "nope"])


def test_predictor_estimator_scores_out_of_fold(space_and_table: tuple) -> None:
    from evaluators.trained_nets import TrainedNet

    space, predictor = space_and_table
    sample = br.stratified_sample(space, predictor, pool=40, archs=14, seed=3, progress=False)
    data = {"fingerprint": "f" * 16, "classes": 10}
    # a ground truth the encoding can learn: more MACs, more accuracy
    records = tuple(TrainedNet.of(c.arch, data, {"epochs": 1}, top1=20.0 + c.latency_ms) for c in sample.chosen)
    ctx = br.Context(None, predictor, "mobile_32_cpu", 1, 0, 8, records=records)
    est = br.ESTIMATORS["predictor"](ctx)
    scores = [est.score(c.arch) for c in sample.chosen]
    assert br._tau(list(zip(scores, [r.top1 for r in records], strict=True))) > 0.3
    # never scored by a predictor that saw it: dropping a network changes its own score
    fewer = br.ESTIMATORS["predictor"](br.Context(None, predictor, "mobile_32_cpu", 1, 0, 8, records=records[1:]))
    with pytest.raises(ValueError, match="out-of-fold"):
        fewer.score(records[0].to_arch())
    too_few = br.ESTIMATORS["predictor"](br.Context(None, predictor, "mobile_32_cpu", 1, 0, 8, records=records[:5]))
    with pytest.raises(ValueError, match="trained networks"):
        too_few.score(records[0].to_arch())


def test_supernet_and_train_estimators_score_like_a_search(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nas.cli import main

    sn = tmp_path / "supernet"
    assert main(["supernet", "train", "--space", "mobile", "--resolution", "32", "--data", "synthetic",
                 "--train-per-class", "4", "--epochs", "1", "--batch-size", "20", "--no-sandwich", "--threads", "1",
                 "--out", str(sn), "--quiet"]) == 0
    capsys.readouterr()
    report = _run(tmp_path, capsys, "--limit", "2", "--view-archs", "1", "--estimators",
                  "macs,supernet,train_default", "--supernet", str(sn))
    assert (report["planned"], report["trained"]) == (4, 2)  # 3 from the space, 1 from the supernet's part
    full = json.loads((tmp_path / "report.json").read_text())
    assert set(full["kendall_tau"]) == {"macs", "supernet", "train_default"}
    assert "supernet" in full["kendall_tau"]["supernet"]["doc"]
    rows = {row["kind"]: row for row in full["rows"]}
    assert set(rows) == {"sampled", "view"} and full["progress"]["trained_view"] == 1
    assert 0.0 <= rows["view"]["scores"]["supernet"] <= 100.0  # inside the supernet's part: scored
    assert all(0.0 <= row["scores"]["train_default"] <= 100.0 for row in rows.values())
    scores = json.loads((tmp_path / "scores.json").read_text())["scores"]
    errors = [v["error"] for k, v in scores.items() if k.startswith("supernet/") and v["score"] is None]
    assert all("supernet fixes" in e for e in errors)  # outside it: no score, and why
    with pytest.raises(SystemExit, match="--supernet"):
        br.ESTIMATORS["supernet"](br.Context(None, None, "mobile_32_cpu", 1, 0, 8))
