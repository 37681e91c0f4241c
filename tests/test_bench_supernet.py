"""scripts/bench_supernet.py ``--mode search``: DNAS per latency weight, the derived network against
a random one of the same latency, end to end on tiny synthetic data, and resumed from its cache."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from latency_tables.measure import Settings
from latency_tables.table import LatencyTable, Timing
from nas.complexity import count_macs_conv_linear
from nas.search.dnas import LatencyModel, layerwise_view
from search_spaces.spaces import get_space

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_supernet.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_supernet", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bs = _load()


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def table_file(tmp_path_factory) -> Path:
    """fbnet@32 with every op costing ``0.01 + MACs / 1e7`` ms: every network under 1 ms, as measured."""
    table = LatencyTable.new(Settings().identity(), resolution=32, space="fbnet", num_classes=10)
    for cfg in get_space("fbnet", resolution=32, num_classes=10).op_configs(32):
        ms = 0.01 + count_macs_conv_linear(cfg.build(), (cfg.in_chs, cfg.in_size, cfg.in_size)) / 1e7
        table.add(cfg.key(), Timing(ms, ms, ms, 1))
    path = tmp_path_factory.mktemp("table") / "fbnet32.json"
    table.save(path)
    return path


def argv(tmp_path: Path, table_file: Path) -> list[str]:
    return ["--mode", "search", "--data", "synthetic", "--train-per-class", "4", "--test-per-class", "2",
            "--latency-table", str(table_file), "--alphas", "0.05", "2", "--strategy", "proxyless",
            "--dnas-epochs", "2", "--dnas-warmup-epochs", "1", "--retrain-epochs", "1", "--batch-size", "8",
            "--cache", str(tmp_path / "cache.json"), "--out", str(tmp_path / "bench.json")]


def test_matched_random_network_has_the_target_latency(table_file) -> None:
    view = layerwise_view(get_space("fbnet", resolution=32, num_classes=10))
    latency = LatencyModel.from_table(view, LatencyTable.load(table_file, check_env=False))
    low, high = latency.bounds()
    for target in (low * 1.1, latency.mean(), high * 0.9):  # both ends, which uniform sampling never reaches
        indices, ms = bs.matched_random(latency, target, band=0.05, exclude=(), seed=0)
        assert abs(ms - target) <= 0.05 * target and ms == pytest.approx(latency.of(indices))
    again = bs.matched_random(latency, latency.mean(), band=0.05, exclude=(), seed=0)
    assert again == bs.matched_random(latency, latency.mean(), band=0.05, exclude=(), seed=0)


def test_search_mode_end_to_end_then_resumes_from_its_cache(tmp_path, table_file, monkeypatch, capsys) -> None:
    args = argv(tmp_path, table_file)
    real_train = bs.train_net

    def die_on_second_training(cache, arch, evaluator):
        if len(cache.data["trained"]) == 1:
            raise KeyboardInterrupt  # killed while training the first random network
        return real_train(cache, arch, evaluator)

    with monkeypatch.context() as m:
        m.setattr(bs, "train_net", die_on_second_training)
        with pytest.raises(KeyboardInterrupt):
            bs.main(args)
    cache = json.loads((tmp_path / "cache.json").read_text())
    assert len(cache["dnas"]) == 1 and len(cache["trained"]) == 1

    runs = []
    real_dnas = bs.run_dnas
    monkeypatch.setattr(bs, "run_dnas", lambda *a, **k: runs.append(a[-2]) or real_dnas(*a, **k))
    assert bs.main(args) == 0
    assert len(runs) == 1  # only the second latency weight's supernet was trained; the first came from the cache
    out = json.loads((tmp_path / "bench.json").read_text())
    assert [r["alpha"] for r in out["rows"]] == [0.05, 2.0]
    for r in out["rows"]:
        d, q = r["derived"], r["random"]
        assert d["hash"] != q["hash"] and abs(q["latency_ms"] - d["latency_ms"]) <= 0.05 * d["latency_ms"]
        assert 0 <= d["top1"] <= 100 and 0 <= q["top1"] <= 100
    assert out["claims"]["derived_beats_random"].endswith("of 2")
    md = (tmp_path / "bench.md").read_text()
    assert "scripts/bench_supernet.py --mode search" in md and "| 0.05 |" in md
    assert "derived top1" in capsys.readouterr().out

    def fail(*_a, **_k):
        raise AssertionError("everything should come from the cache")

    monkeypatch.setattr(bs, "run_dnas", fail)
    monkeypatch.setattr(bs.TrainedAccuracy, "evaluate", fail)
    assert bs.main(args) == 0
    assert json.loads((tmp_path / "bench.json").read_text())["rows"] == out["rows"]


def test_search_mode_needs_a_latency_table(tmp_path) -> None:
    with pytest.raises(SystemExit):
        bs.main(["--mode", "search", "--data", "synthetic", "--cache", str(tmp_path / "c.json")])
