"""scripts/bench_search_vs_zoo.py: the smoke preset end to end on synthetic data (a found network
within the budget, and none), the report's consistency, the cache reuse of a second run, and bad
input.

Latency comes from a small made-up table of ``mobile``@32 (what sampling reaches, plus the fixed
point's ops), and "measured" latency is that table's prediction, so whether a candidate fits the
budget is decided by the test, not by the load of the machine it runs on."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from evaluators import MeasuredLatency, TrainedAccuracy
from latency_tables.measure import Settings
from latency_tables.predict import LatencyPredictor
from latency_tables.table import LatencyTable, Timing
from search_spaces import zoo
from search_spaces.spaces import get_space

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_search_vs_zoo.py"
FIXED = "cifar_shufflenet_v2_x1_0"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_search_vs_zoo", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bsz = _load()


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Entries growing with the op's input size: the fixed point lands above most sampled networks."""
    configs = set(get_space("mobile", resolution=32, num_classes=10).op_configs(32, core_only=True))
    configs.update(zoo.get(FIXED).replace(num_classes=10).op_configs())
    t = LatencyTable.new(Settings().identity(), resolution=32, space="mobile")
    for cfg in configs:
        ms = 0.001 * cfg.in_chs * cfg.in_size * cfg.in_size / 256
        t.add(cfg.key(), Timing(ms, ms * 0.9, ms * 1.1, 5))
    return t.save(tmp_path_factory.mktemp("table") / "mobile32.json")


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch, table: Path) -> dict[str, float]:
    """Whole-network "measurement" = the table's prediction times ``factor[kind]`` (``fixed`` for
    the fixed point, ``other`` for every candidate)."""
    predictor = LatencyPredictor(LatencyTable.load(table))
    fixed_hash = zoo.get(FIXED).replace(num_classes=10).hash()
    factor = {"fixed": 1.0, "other": 1.0}

    def compute(self: MeasuredLatency, arch) -> tuple[dict[str, float], dict]:  # noqa: ANN001 - Arch
        kind = "fixed" if arch.hash() == fixed_hash else "other"
        return {"latency_ms": predictor.predict(arch) * factor[kind]}, {}

    monkeypatch.setattr(MeasuredLatency, "compute", compute)
    return factor


@pytest.fixture
def trainings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Hashes of the networks actually trained (search candidates and final trainings alike)."""
    calls: list[str] = []
    original = TrainedAccuracy.compute

    def compute(self: TrainedAccuracy, arch):  # noqa: ANN001, ANN202 - Arch, the original's tuple
        calls.append(arch.hash())
        return original(self, arch)

    monkeypatch.setattr(TrainedAccuracy, "compute", compute)
    return calls


def _run(tmp: Path, table: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> dict:
    argv = ["--preset", "smoke", "--fixed-points", FIXED, "--latency-table", str(table), "--work", str(tmp / "work"),
            "--out", str(tmp / "report"), "--threads", "1", "--quiet", "--json", *extra]
    assert bsz.main(argv) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_smoke_run_finds_trains_reports_and_reuses_the_cache(tmp_path: Path, table: Path, fake_clock: dict,
                                                            trainings: list[str],
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    first = _run(tmp_path, table, capsys)
    row = first["budgets"][FIXED]
    assert row["found"] is not None  # every candidate "measures" as the table predicts: within the budget
    assert row["found_latency_ms"] <= row["budget_ms"]
    assert first["new_measurements"] >= 2 and first["new_search_evaluations"] == 3
    assert first["new_trainings"] == 4  # the fixed point and the found network, 2 seeds each
    assert len(trainings) == first["new_trainings"]  # the smoke search ranks by a proxy: no training
    assert trainings[-4:] == [bsz.zoo.get(FIXED).replace(num_classes=10).hash(), row["found"]] * 2

    report = json.loads((tmp_path / "report.json").read_text())
    md = (tmp_path / "report.md").read_text()
    assert (tmp_path / "report.png").stat().st_size > 0
    (b,) = report["budgets"]
    assert b["fixed"]["latency_ms"] == b["budget_ms"] == row["budget_ms"]
    assert b["found"]["arch_hash"] == row["found"] and b["found"]["latency_ms"] <= b["budget_ms"]
    assert b["latency_ratio"] == pytest.approx(b["found"]["latency_ms"] / b["budget_ms"])
    assert len(b["fixed"]["top1"]) == len(b["found"]["top1"]) == 2 and report["meta"]["seeds"] == [0, 1]
    assert b["diff_points"] == pytest.approx([f - x for f, x in zip(b["found"]["top1"], b["fixed"]["top1"],
                                                                   strict=True)])
    assert b["goal_held"] == all(d >= 1.0 for d in b["diff_points"]) == row["goal_held"]
    candidates = b["search"]["candidates"]
    assert [c["rank"] for c in candidates] == list(range(1, len(candidates) + 1))
    assert next(c for c in candidates if c["within_budget"])["arch_hash"] == row["found"]  # the best-ranked within
    assert report["meta"]["search"]["evaluator"] == "proxy"  # the smoke preset's
    assert report["meta"]["recipe"]["epochs"] == 1 and report["meta"]["data"]["source"] == "synthetic"
    assert f"Goal held at {first['goal_held']} of 1 budgets" in md
    assert row["found"] in md and "scripts/bench_search_vs_zoo.py" in md and "--preset smoke" in md
    assert f"{b['budget_ms']:.2f}" in md

    trainings.clear()
    second = _run(tmp_path, table, capsys)  # everything cached: only the outputs are redrawn
    assert (second["new_trainings"], second["new_measurements"], second["new_search_evaluations"]) == (0, 0, 0)
    assert trainings == []
    assert second["budgets"] == first["budgets"]


def test_none_found_within_the_budget_is_reported(tmp_path: Path, table: Path, fake_clock: dict,
                                                  trainings: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    fake_clock["other"] = 10.0  # every candidate measures far slower than the table says
    out = _run(tmp_path, table, capsys, "--seeds", "1")
    row = out["budgets"][FIXED]
    assert row["found"] is None and row["goal_held"] is False and out["goal_held"] == 0
    assert out["new_trainings"] == 1 and len(trainings) == 1  # the fixed point alone; the proxy trains nothing
    report = json.loads((tmp_path / "report.json").read_text())
    (b,) = report["budgets"]
    assert b["search"]["candidates"] and not any(c["within_budget"] for c in b["search"]["candidates"])
    assert all(c["latency_ms"] > b["budget_ms"] for c in b["search"]["candidates"])
    assert "none found" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize(("argv", "flag"), [
    (["--fixed-points", "cifar_nope"], "--fixed-points"),
    (["--data", "/nonexistent/cifar10.tar.gz"], "--data"),
    (["--evaluator", "predictor"], "--predictor"),
    (["--predictor", "no_such_predictor"], "--predictor"),
    (["--evaluator", "supernet"], "--supernet"),
    (["--seeds", "0"], "--seeds"),
])
def test_bad_input_is_one_line_naming_the_flag(argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bsz.main(["--preset", "smoke", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and flag in err


def test_data_that_is_not_cifar_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bsz.main(["--preset", "smoke", "--data", str(tmp_path), "--work", str(tmp_path / "w"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--data" in err


def test_the_cpu_preset_searches_with_the_shipped_predictor_the_train_evaluator_or_a_given_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "cifar10.tar.gz"
    data.write_bytes(b"")  # only its existence is checked before the data is loaded
    monkeypatch.setattr(bsz, "shipped_predictors", lambda: [bsz.SHIPPED_PREDICTOR])
    shipped = bsz.parse_args(["--data", str(data), "--work", str(tmp_path / "w")])
    assert (shipped.evaluator, shipped.predictor) == ("predictor", bsz.SHIPPED_PREDICTOR)
    monkeypatch.setattr(bsz, "shipped_predictors", lambda: [])
    args = bsz.parse_args(["--data", str(data), "--work", str(tmp_path / "w")])
    assert (args.preset, args.fixed_point_names) == ("cpu", bsz.STANDARD)
    config = bsz.search_config(FIXED, 5.31, args)
    keys = config.to_dict()
    assert [keys[k] for k in ("evaluator", "train_epochs", "train_per_class", "test_per_class")] == ["train", 2, 300, 50]
    assert [keys[k] for k in ("max_latency_ms", "hard_reward", "budget", "data")] == [5.31, True, 20, str(data)]
    assert config.run_dir.parent == tmp_path / "w" / "search" and config.run_dir.name.startswith(FIXED)
    assert bsz.search_config(FIXED, 5.31, args).run_dir == config.run_dir  # the same settings resume the same search
    assert bsz.search_config(FIXED, 7.42, args).run_dir != config.run_dir
    assert (args.epochs, args.train_per_class, args.seeds) == (3, 1000, 2)
    every = bsz.parse_args(["--data", str(data), "--fixed-points", "all"])
    assert every.fixed_point_names == bsz.FIXED_POINTS and len(bsz.FIXED_POINTS) == 8
    predictor = tmp_path / "predictor.json"
    predictor.write_text("{}")  # only resolved (found) before the search loads it
    ranked = bsz.parse_args(["--data", str(data), "--predictor", str(predictor)])
    assert ranked.evaluator == "predictor"
    ranked_by = bsz.search_config(FIXED, 5.31, ranked).evaluator
    assert (ranked_by.predictor, ranked_by.data) == (str(predictor), "none")
