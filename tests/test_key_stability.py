"""Keys and hashes that survive schema growth.

A field added to an op with a default must change no latency-table key and no architecture hash
of what could be described before; tables, caches, trained-network records and training runs
written by a litenas whose keys and hashes covered every argument still read, and mean the same.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from evaluators.base import BaseEvaluator, Metric
from evaluators.cache import Cached, JsonCache
from evaluators.trained_nets import TrainedNet, TrainedNets
from latency_tables.predict import LatencyPredictor
from latency_tables.table import TABLE_VERSION, LatencyTable
from nas.arch import Arch, legacy_hash
from search_spaces import registry, zoo
from search_spaces.registry import Field, OpConfig, get_op
from search_spaces.spaces import get_space

SHIPPED = Path(__file__).resolve().parents[1] / "latency_tables"

# Hashes litenas gave these networks before hashes became canonical (computed by that version).
LEGACY_HASHES = {
    "mobilenet_v2_100": "4cc810f2a2e9a207",
    "ghostnet_100": "90c25e06c9419f68",
    "shufflenet_v2_x1_0": "3189af75cb5b4f8c",
    "hardnet39ds": "2276777cefb18135",
}


@contextmanager
def grown_ir():
    """The registry with ``ir`` grown by one defaulted field, restored on exit. Build what a test
    compares against before entering: spaces and descriptions made inside carry the new field."""
    spec = get_op("ir")
    extra = Field("groups_dw", "gd", "int", 1, "a field added after tables and hashes were written")
    registry._REGISTRY["ir"] = replace(spec, fields=(*spec.fields, extra))
    try:
        yield
    finally:
        registry._REGISTRY["ir"] = spec


def _mobile_archs(n: int = 20) -> list[Arch]:
    space = get_space("mobile", resolution=32, num_classes=10)
    return [space.sample(seed) for seed in range(n)]


def _every_argument_key(cfg: OpConfig) -> str:
    """The key as litenas wrote it before canonical keys: every argument, in field order."""
    return cfg._key_of(dict(cfg.args))


def test_a_defaulted_field_added_to_an_op_changes_no_key_and_no_hash():
    archs = [zoo.get("mobilenet_v2_100"), *_mobile_archs()]
    before = [(a.hash(), [c.key() for c in a.op_configs()]) for a in archs]
    with grown_ir():
        # Re-parsed under the grown registry, every ir block carries the new field at its default.
        grown = [Arch.from_json(a.to_json()) for a in archs]
        assert all(("groups_dw", 1) in b.args for a in grown for b in a.blocks if b.op == "ir")
        after = [(a.hash(), [c.key() for c in a.op_configs()]) for a in grown]
    assert before == after


def test_a_non_default_value_of_a_new_field_is_part_of_key_and_hash():
    arch = zoo.get("mobilenet_v2_100")
    i = next(i for i, b in enumerate(arch.blocks) if b.op == "ir")
    with grown_ir():
        grown = Arch.from_json(arch.to_json())
        changed = grown.replace(blocks=(*grown.blocks[:i], grown.blocks[i].replace(groups_dw=2), *grown.blocks[i + 1:]))
        assert changed.hash() != grown.hash() == arch.hash()
        assert any("groups_dw=2" in c.key() for c in changed.op_configs())


def test_hashes_cover_what_differs_from_defaults_only():
    arch = zoo.get("mobilenet_v2_100")
    explicit = Arch.from_dict(arch.to_dict())           # every argument written
    canonical = Arch.from_dict(arch.canonical_dict())   # defaults left out
    assert explicit == canonical == arch and explicit.hash() == canonical.hash() == arch.hash()
    for block in arch.canonical_dict()["blocks"]:
        spec = get_op(block["op"])
        for name, value in block["args"].items():
            f = spec.field_by_name[name]
            assert f.required or f.normalise(value) != f.default


@pytest.mark.parametrize("name", sorted(LEGACY_HASHES))
def test_legacy_hash_is_the_hash_older_litenas_gave(name):
    arch = zoo.get(name)
    assert legacy_hash(arch) == LEGACY_HASHES[name]
    assert arch.hash() != legacy_hash(arch)


def test_keys_read_back_in_both_forms():
    for arch in [zoo.get("ghostnet_100"), *_mobile_archs(10)]:
        for cfg in arch.op_configs():
            assert OpConfig.from_key(cfg.key()) == cfg
            assert OpConfig.from_key(_every_argument_key(cfg)).key() == cfg.key()


@pytest.mark.parametrize("bad", [
    "ir|16x32x32|kernel=3,out_chs=24",           # fields out of order
    "ir|16x32x32|out_chs=24,colour=3",           # unknown field
    "ir|16x32x32|kernel=3",                      # a required field missing
    "ir|16x32x16|out_chs=24",                    # not square
    "nosuchop|16x32x32|out_chs=24",
])
def test_a_malformed_key_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match="not a latency-table key"):
        OpConfig.from_key(bad)


def test_a_default_not_in_normal_form_is_a_registry_error():
    with pytest.raises(ValueError, match="normal form"):
        Field("kernel", "k", "kernel", [3])


def _version_1_table(path: Path, archs: list[Arch]) -> dict:
    """A small version-1 table (keys with every argument) covering ``archs``, written to ``path``."""
    entries = {}
    for i, cfg in enumerate(c for a in archs for c in a.op_configs()):
        entries[_every_argument_key(cfg)] = {"median_ms": 0.1 + (i % 7) / 10, "p10_ms": 0.09, "p90_ms": 0.9, "n": 5}
    shipped = json.loads((SHIPPED / "fbnet_224_cpu.json").read_text())
    data = {"format": "litenas.latency_table", "version": 1,
            "meta": {**shipped["meta"], "resolution": 32, "space": "mobile"}, "entries": entries}
    path.write_text(json.dumps(data))
    return data


def test_a_version_1_table_loads_predicts_as_written_and_saves_as_version_2(tmp_path):
    archs = _mobile_archs(8)
    data = _version_1_table(tmp_path / "v1.json", archs)
    table = LatencyTable.load(tmp_path / "v1.json", check_env=False)
    predictor = LatencyPredictor(table)
    for arch in archs:
        by_hand = sum(data["entries"][_every_argument_key(c)]["median_ms"] for c in arch.op_configs())
        assert predictor.predict(arch) == pytest.approx(by_hand)
    table.save(tmp_path / "v2.json")
    saved = json.loads((tmp_path / "v2.json").read_text())
    assert saved["version"] == TABLE_VERSION == 2
    assert all(OpConfig.from_key(k).key() == k for k in saved["entries"])
    again = LatencyTable.load(tmp_path / "v2.json", check_env=False)
    assert {k: again.get(k) for k in again} == {k: table.get(k) for k in table}
    assert [LatencyPredictor(again).predict(a) for a in archs] == [predictor.predict(a) for a in archs]


@pytest.mark.parametrize("name", ["mobile_32_cpu", "fbnet_224_cpu"])
def test_shipped_tables_are_version_2_with_canonical_keys(name):
    data = json.loads((SHIPPED / f"{name}.json").read_text())
    assert data["version"] == TABLE_VERSION
    assert all(OpConfig.from_key(k).key() == k for k in data["entries"])
    for record in (data.get("calibration") or {}).get("records", []):
        if "arch" in record:
            assert Arch.from_str(record["arch"]).hash() == record["hash"]


class _Counting(BaseEvaluator):
    """An evaluator that counts how often it computes."""

    name = "counting"
    metrics = (Metric("top1", "max"),)

    def __init__(self):
        self.calls = 0

    def config(self):
        return {}

    def compute(self, arch):
        self.calls += 1
        return {"top1": 1.0}, {}


def test_a_result_cached_under_the_legacy_hash_is_found(tmp_path):
    arch = zoo.get("mobilenet_v2_100")
    inner = _Counting()
    cached = Cached(inner, JsonCache(tmp_path))
    first = inner.evaluate(arch)
    cached.cache.put(cached.name, cached._digest, legacy_hash(arch), replace(first, arch_hash=legacy_hash(arch)),
                     cached.config())
    calls = inner.calls
    hit = cached.evaluate(arch)
    assert inner.calls == calls
    assert hit.arch_hash == arch.hash() and hit.metrics == first.metrics


def test_a_trained_record_with_the_legacy_hash_loads_under_the_current_one(tmp_path):
    arch = zoo.get("ghostnet_100")
    row = {"arch": arch.to_str(), "arch_hash": legacy_hash(arch), "data": {"fingerprint": "f"},
           "recipe": {"epochs": 1}, "top1": 50.0}
    path = tmp_path / "nets.json"
    path.write_text(json.dumps({"format": "litenas.trained_nets", "version": 1, "records": [row]}))
    nets = TrainedNets(path)
    (record,) = list(nets)
    assert record.arch_hash == arch.hash()
    nets.add(TrainedNet.of(zoo.get("mobilenet_v2_100"), {"fingerprint": "f"}, {"epochs": 1}, 40.0))
    written = json.loads(path.read_text())["records"]
    assert {r["arch_hash"] for r in written} == {arch.hash(), zoo.get("mobilenet_v2_100").hash()}
