"""The search runner: end to end in-process, config validation, and kill-and-resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from evaluators import scorers
from evaluators.base import BaseEvaluator, Metric
from evaluators.scorers import ScoreSettings, register_scorer
from latency_tables.measure import Settings
from latency_tables.table import LatencyTable, Timing
from nas.arch import Arch
from nas.builder import build_model
from nas.cli import main
from nas.search.config import SearchConfig
from nas.search.dnas.supernet import LatencyModel
from nas.search.runner import Search
from search_spaces.layerwise import layerwise_view
from search_spaces.registry import OpConfig
from search_spaces.spaces import get_space

RES = 32


def fake_table(path: Path, space: str = "fbnet", num_classes: int = 10) -> Path:
    """A table whose entries grow with the op's input size and arguments: runner tests need a
    complete table, not real timings (those are the latency benchmark's business)."""
    table = LatencyTable.new(Settings().identity(), resolution=RES, space=space)
    for cfg in get_space(space, resolution=RES, num_classes=num_classes).op_configs(RES):
        assert isinstance(cfg, OpConfig)
        ms = 0.001 * cfg.in_chs * cfg.in_size * cfg.in_size / 256 + 0.01 * (len(cfg.key()) % 7)
        table.add(cfg.key(), Timing(ms, ms * 0.9, ms * 1.1, 5))
    table.save(path)
    return path


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return fake_table(tmp_path_factory.mktemp("table") / "fbnet32.json")


def config(tmp_path: Path, table: Path, **changes) -> SearchConfig:
    base = dict(space="fbnet", strategy="evolution", budget=8, seed=0, out=str(tmp_path / "run"),
                latency_table=str(table), evaluator="proxy", proxy="synflow", data="synthetic",
                objective="reward", max_latency_ms=50.0, population=4, sample_size=2, top_k=3)
    base.update(changes)
    return SearchConfig.of(**base)


def test_search_runs_end_to_end_and_writes_the_run_directory(tmp_path, table) -> None:
    cfg = config(tmp_path, table)
    search = Search.from_config(cfg)
    state = search.run(progress=False)
    assert state.evaluated == 8
    report = search.write_report()
    run = cfg.run_dir
    for name in ("config.json", "candidates.json", "pareto.json", "fixed_points.json", "report.md", "pareto.png"):
        assert (run / name).is_file(), name
    candidates = json.loads((run / "candidates.json").read_text())
    assert sum(c["state"] in ("complete", "failed") for c in candidates) == 8
    top = sorted((run / "top").glob("rank*.json"))
    assert 1 <= len(top) <= 3
    assert "Top new candidates" in report.read_text()
    # Every result is in the Optuna study (what optuna-dashboard shows).
    study = optuna.load_study(study_name="litenas-search", storage=cfg.storage_url)
    assert len([t for t in study.trials if t.state.is_finished()]) >= 8


class FewerParams(BaseEvaluator):
    """A score evaluator from outside the package: ``top1`` is minus the parameter count."""

    name = "fewer-params"
    metrics = (Metric("top1", "max", "", "minus the parameters"),)

    def __init__(self, settings: ScoreSettings):
        self.settings = settings

    def config(self) -> dict[str, Any]:
        return {}

    def compute(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        return {"top1": -float(sum(p.numel() for p in build_model(arch).parameters()))}, {}


def test_a_registered_score_evaluator_ranks_a_search(tmp_path, table, monkeypatch) -> None:
    monkeypatch.setattr(scorers, "_SCORERS", dict(scorers._SCORERS))
    register_scorer("fewer-params", FewerParams, "minus the parameter count")
    with pytest.raises(ValueError, match="registered twice"):
        register_scorer("fewer-params", FewerParams, "again")
    cfg = config(tmp_path, table, evaluator="fewer-params", proxy=None, budget=4)
    search = Search.from_config(cfg)
    assert isinstance(search.evaluation.score.inner, FewerParams)
    settings = search.evaluation.score.inner.settings
    assert (settings.space, settings.resolution, settings.seed, settings.data.num_classes) == ("fbnet", RES, 0, 10)
    state = search.run(progress=False)
    assert state.evaluated == 4 and all(r.metrics["top1"] == -r.metrics["params"] for r in state.records if r.evaluated)
    with pytest.raises(ValueError, match="evaluator: .nope. is not one of .*fewer-params"):
        config(tmp_path, table, evaluator="nope")


def test_constraints_reject_before_evaluation(tmp_path, table) -> None:
    cfg = config(tmp_path, table, max_params=1_800_000, budget=4)
    search = Search.from_config(cfg)
    state = search.run(progress=False)
    assert all(r.metrics["params"] <= 1_800_000 for r in state.records if r.evaluated)
    assert state.infeasible > 0


def test_rerun_resumes_without_re_evaluating(tmp_path, table) -> None:
    cfg = config(tmp_path, table, budget=5)
    first = Search.from_config(cfg).run(progress=False)
    hashes = [r.arch.hash() for r in first.records if r.evaluated]
    again = Search.from_config(config(tmp_path, table, budget=9)).run(progress=False)
    evaluated = [r.arch.hash() for r in again.records if r.evaluated]
    assert evaluated[:5] == hashes and len(evaluated) == 9 and len(set(evaluated)) == 9


def test_a_different_search_in_the_same_directory_is_refused(tmp_path, table) -> None:
    Search.from_config(config(tmp_path, table, budget=1)).run(progress=False)
    with pytest.raises(ValueError, match="different search"):
        Search.from_config(config(tmp_path, table, budget=1, seed=5))


@pytest.mark.parametrize("text,needle", [
    ("space: fbnet\nbudgett: 3\n", "unknown key 'budgett'"),
    ("budget: three\n", "budget: expected an integer"),
    ("strategy: annealing\n", "strategy: 'annealing' is not one of"),
    ("latency_table: /nonexistent/table.json\n", "latency_table"),
    ("budget: [1\n", "not valid YAML"),
    ("- a\n- b\n", "expected a mapping"),
    ("objective: reward\n", "latency target"),
    ("objective: pareto\nstrategy: evolution\n", "optimises one value"),
])
def test_yaml_config_errors_are_clear(tmp_path, table, text, needle) -> None:
    if "latency_table" not in text and not text.startswith("-"):
        text += f"latency_table: {table}\n"
    if "max_latency_ms" not in text and "objective: reward" not in text and not text.startswith("-"):
        text += "max_latency_ms: 10\n"
    path = tmp_path / "search.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=needle):
        SearchConfig.from_yaml(path)


def test_cli_with_yaml_config_and_json_summary(tmp_path, table, capsys) -> None:
    path = tmp_path / "search.yaml"
    path.write_text(f"space: fbnet\nstrategy: random\nbudget: 3\nlatency_table: {table}\nevaluator: proxy\n"
                    f"proxy: synflow\ndata: synthetic\nmax_latency_ms: 50\nout: {tmp_path / 'cli'}\n")
    assert main(["search", "--config", str(path), "--seed", "2", "--json", "--quiet", "--no-zoo"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["evaluated"] == 3 and Path(summary["report"]).is_file()


def _kill_mid_run_then_resume(cmd: list[str], out: Path, budget: int) -> None:
    """Start the search ``cmd``, SIGKILL it once it has scored 4 candidates, start it again: the
    full ``budget`` of distinct candidates, each evaluated once, the first ones kept."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = out / "study.db"
    deadline = time.monotonic() + 120
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if db.exists():
            try:
                study = optuna.load_study(study_name="litenas-search", storage=f"sqlite:///{db}")
                done = sum(t.state.is_finished() and "outcome" in t.user_attrs for t in study.trials)
            except Exception:  # noqa: BLE001 - the study may not exist yet
                continue
            if done >= 4:
                break
    assert proc.poll() is None, "the search finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.user_attrs["hash"] for t in optuna.load_study(study_name="litenas-search", storage=f"sqlite:///{db}").trials
              if t.state.is_finished() and "outcome" in t.user_attrs}
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
    study = optuna.load_study(study_name="litenas-search", storage=f"sqlite:///{db}")
    evaluated = [t.user_attrs["hash"] for t in study.trials
                 if t.state != optuna.trial.TrialState.PRUNED and "outcome" in t.user_attrs]
    assert len(evaluated) == budget
    assert len(set(evaluated)) == budget
    assert before <= set(evaluated)


def test_sigkill_and_resume_loses_nothing(tmp_path, table) -> None:
    """Kill the search process mid-run, start the same command again: nothing lost or repeated."""
    out = tmp_path / "killed"
    _kill_mid_run_then_resume([
        sys.executable, "-m", "nas", "search", "--space", "fbnet", "--strategy", "evolution", "--population", "4",
        "--sample-size", "2", "--latency-table", str(table), "--max-latency-ms", "50", "--evaluator", "proxy",
        "--proxy", "naswot", "--data", "synthetic", "--budget", "14", "--out", str(out), "--quiet", "--no-zoo"],
        out, 14)


def test_a_supernet_scored_search_resumes_after_sigkill(tmp_path, table) -> None:
    sn_dir = tmp_path / "supernet"
    assert main(["supernet", "train", "--space", "fbnet", "--resolution", "32", "--data", "synthetic",
                 "--train-per-class", "8", "--epochs", "1", "--batch-size", "40", "--randoms", "1",
                 "--threads", "1", "--out", str(sn_dir), "--quiet"]) == 0
    out = tmp_path / "killed"
    _kill_mid_run_then_resume([
        sys.executable, "-m", "nas", "search", "--space", "fbnet", "--resolution", "32", "--strategy", "evolution",
        "--population", "4", "--sample-size", "2", "--latency-table", str(table), "--max-latency-ms", "50",
        "--evaluator", "supernet", "--supernet", str(sn_dir), "--data", "synthetic", "--budget", "12",
        "--threads", "1", "--out", str(out), "--quiet", "--no-zoo"], out, 12)


def test_store_opens_while_another_process_creates_the_same_sqlite_schema(tmp_path) -> None:
    """A dashboard or script opening a brand-new study file at the moment the search creates its
    tables must not crash the search (``table studies already exists`` is retried)."""
    import threading

    from nas.search.store import open_storage

    url = f"sqlite:///{tmp_path / 'study.db'}"
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            open_storage(url).get_all_studies()
        except BaseException as exc:  # noqa: BLE001 - collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_an_nni_strategy_without_the_extra_says_how_to_install_it(tmp_path, table) -> None:
    import importlib.util

    if importlib.util.find_spec("nni") is not None:
        pytest.skip("NNI is installed here; tests/test_nni.py covers the NNI strategies")
    with pytest.raises(ValueError, match=r"strategy 'nni-evolution': .*pip install 'litenas\[nni\]'"):
        Search.from_config(config(tmp_path, table, strategy="nni-evolution"))


def test_evaluations_run_on_the_search_device(tmp_path, table) -> None:
    from nas.search.scoring import load_search_data, make_score_evaluator

    assert config(tmp_path, table).evaluation_device == "cpu"
    for evaluator in ("proxy", "train"):
        ray_gpu = config(tmp_path, table, executor="ray", workers=2, num_gpus=0.5, evaluator=evaluator)
        assert ray_gpu.evaluation_device == "cuda"  # Ray makes the assigned GPU the task's only visible one
        ev = make_score_evaluator(ray_gpu, load_search_data(ray_gpu, 32))
        assert ev.device.type == "cuda" and ev.config()["device"] == "cuda"
    with pytest.raises(ValueError, match="num_gpus: 1.0 GPUs reserved per evaluation, but device is 'cpu'"):
        config(tmp_path, table, executor="ray", workers=2, num_gpus=1.0, device="cpu")
    with pytest.raises(ValueError, match="needs num_gpus > 0"):
        config(tmp_path, table, executor="ray", workers=2, device="cuda")
    with pytest.raises(ValueError, match="device: expected cpu, cuda, cuda:N or mps"):
        config(tmp_path, table, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' is not available on this machine"):
            make_score_evaluator(config(tmp_path, table, device="cuda"), None)


def test_a_warm_start_is_evaluated_first_and_checked(tmp_path, table) -> None:
    from search_spaces import zoo

    fbnet_c = zoo.get("fbnet_c").replace(num_classes=10, resolution=RES)
    arch_file = tmp_path / "fbnet_c.json"
    fbnet_c.save(arch_file)
    cfg = config(tmp_path, table, start_from=f"{arch_file}", budget=4)
    state = Search.from_config(cfg).run(progress=False)
    assert state.records[0].arch == fbnet_c and state.evaluated == 4
    with pytest.raises(ValueError, match="start_from: 'nope' is neither a zoo name"):
        Search.from_config(config(tmp_path / "b", table, start_from="nope"))
    with pytest.raises(ValueError, match="start_from: mobilenet_v2_100 is not a point of the space fbnet"):
        Search.from_config(config(tmp_path / "c", table, start_from="mobilenet_v2_100"))


def test_the_screen_stops_at_the_first_broken_constraint(tmp_path, table) -> None:
    """Rejected by the latency table alone, a candidate is never built to count its weights."""
    # a limit just above the fastest network of the space (a lower one is refused up front)
    view = layerwise_view(get_space("fbnet", resolution=32, num_classes=10))
    limit = LatencyModel.from_table(view, LatencyTable.load(table, check_env=False)).bounds()[0] * 1.0001
    state = Search.from_config(config(tmp_path, table, max_latency_ms=limit, budget=2)).run
    with pytest.raises(ValueError, match="none of the first 50 candidates got past the screen"):
        state(progress=False)
    search = Search.from_config(config(tmp_path / "x", table, max_latency_ms=limit, budget=2))
    metrics, reason, infeasible = search.evaluation.screen_arch(search.space.sample(0))
    assert infeasible and "latency_pred_ms" in reason and "params" not in metrics
