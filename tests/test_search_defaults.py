"""What ``nas search`` does with settings left out, and with a run that scored nothing.

- With no flags it runs a meaningful search from what litenas ships (the ``mobile`` space at 32 px,
  the shipped CPU latency table and CIFAR-10 accuracy predictor, a Pareto search), into a run
  directory named for its settings; its report says first what ranked the candidates.
- A search stopped because its constraints admitted nothing is run again into the same ``--out``
  with relaxed flags; a run that scored candidates still refuses other settings, naming them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_search_runner import config, fake_table

from evaluators.datasets import synthetic
from evaluators.predictor import PredictedAccuracy, Predictor
from evaluators.proxies import ZeroCostProxies
from evaluators.train import TrainConfig, TrainedAccuracy
from latency_tables.table import LatencyTable
from nas.cli import main
from nas.search import runner
from nas.search.config import SearchConfig
from nas.search.report import ranking_basis
from nas.search.runner import Search
from nas.search.store import RunStore
from search_spaces.spaces import get_space

SEARCH = ("search --space fbnet --strategy random --latency-table {table} --evaluator proxy --proxy synflow "
          "--data synthetic --budget 2 --quiet --no-zoo --out {out}")


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return fake_table(tmp_path_factory.mktemp("table") / "fbnet32.json")


# ------------------------------------------------------------------------------- defaults
def test_no_settings_resolve_to_a_pareto_search_ranked_by_what_litenas_ships() -> None:
    c = SearchConfig.of()
    assert (c.space.name, c.latency.table, c.evaluator.name, c.evaluator.predictor, c.evaluator.data) == (
        "mobile", "mobile_32_cpu", "predictor", "mobile_32_cifar10", "none")
    assert (c.objective.kind, c.strategy.name, c.evaluator.proxy) == ("pareto", "nsga2", "naswot")
    out = str(c.output.out)
    assert out.startswith("runs/mobile-nsga2-predictor-") and len(out.rsplit("-", 1)[1]) == 8
    assert SearchConfig.of(budget=5, top_k=2).run_dir == c.run_dir  # what may change on resume keeps the run directory
    assert SearchConfig.of(seed=1).run_dir != c.run_dir  # another search, another directory
    assert SearchConfig.of(**c.to_dict()) == c  # resolved values are kept as they are


@pytest.mark.parametrize("given,resolved", [
    ({"max_latency_ms": 10.0}, {"objective": "reward", "strategy": "evolution", "evaluator": "predictor"}),
    ({"target_latency_ms": 10.0}, {"objective": "reward", "strategy": "evolution"}),
    ({"strategy": "random"}, {"objective": "pareto"}),
    ({"objective": "pareto"}, {"strategy": "nsga2"}),
    ({"data": "synthetic"}, {"evaluator": "proxy", "proxy": "naswot", "predictor": None}),
    ({"proxy": "synflow"}, {"evaluator": "proxy", "data": "synthetic"}),
    ({"evaluator": "proxy"}, {"data": "synthetic", "predictor": None}),
    ({"evaluator": "predictor"}, {"predictor": "mobile_32_cifar10", "data": "none"}),
    ({"evaluator": "predictor", "data": "synthetic"}, {"predictor": "mobile_32_cifar10", "data": "synthetic"}),
    ({"evaluator": "predictor", "strategy": "fbnet", "max_latency_ms": 5.0}, {"data": "synthetic"}),
    ({"supernet": "runs/sn"}, {"evaluator": "supernet", "data": "synthetic"}),
    ({"space": "fbnet"}, {"latency_table": "fbnet_224_cpu", "evaluator": "proxy", "data": "synthetic"}),
    ({"out": "runs/mine"}, {"out": "runs/mine"}),
])
def test_each_setting_left_out_follows_from_the_given_ones(given, resolved) -> None:
    c = SearchConfig.of(**given).to_dict()
    assert {k: c[k] for k in resolved} == resolved


def test_a_setting_nothing_implies_is_still_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="objective 'reward' needs a latency target"):
        SearchConfig.of(strategy="evolution")  # evolution optimises one value: the reward, which needs a target
    with pytest.raises(ValueError, match="latency_table: required"):
        SearchConfig.of(space="mnasnet")  # no table of that space ships
    with pytest.raises(ValueError, match="latency_table: required"):
        SearchConfig.of(resolution=64)  # nor of mobile at 64 px
    with pytest.raises(ValueError, match="no shipped predictor covers space 'fbnet'"):
        SearchConfig.of(space="fbnet", evaluator="predictor")


def test_every_key_declares_its_component_help_and_resume_rule() -> None:
    """One declaration per key (:func:`nas.settings.setting`), in the component it configures:
    the flags, their ``--help`` groups, the ranges and what a resumed run must match all read it."""
    from nas.search.config import KEYS, component_titles

    keys = list(KEYS.values())
    assert all(k.help for k in keys) and {k.group for k in keys} == set(component_titles())
    assert len({(k.group, k.attr) for k in keys}) == len(keys) == len(SearchConfig.of().to_dict())
    assert KEYS["latency_table"].group == "latency" and KEYS["latency_table"].attr == "table"
    volatile = {k.name for k in keys if k.volatile}
    assert {"budget", "time_limit_s", "out", "workers", "device", "dnas_epochs"} <= volatile
    identity = SearchConfig.of(strategy="fbnet", max_latency_ms=5.0).identity()
    assert not volatile & set(identity) and {"space", "seed", "dnas_alpha", "population"} <= set(identity)
    assert KEYS["seed"].range == (0, True, 2**32 - 1) and KEYS["space"].range is None


def test_a_component_checks_its_own_keys_and_a_yaml_file_may_group_them(tmp_path) -> None:
    """Each component validates its fields where it is declared (naming the flat key); a YAML file
    gives keys flat or in a section per component, and the two forms are the same search."""
    from nas.search.executors import ExecutorConfig
    from nas.search.strategy import StrategyConfig

    with pytest.raises(ValueError, match="workers: more than 1 needs executor 'ray'"):
        ExecutorConfig(workers=2)
    with pytest.raises(ValueError, match="sample_size: the tournament .6. cannot exceed the population .5."):
        StrategyConfig(population=5, sample_size=6)
    with pytest.raises(ValueError, match="budget: expected an integer, got True"):
        StrategyConfig(budget=True)
    flat = tmp_path / "flat.yaml"
    flat.write_text("executor: ray\nworkers: 2\nlatency_table: mobile_32_cpu\nbudget: 7\n", encoding="utf-8")
    grouped = tmp_path / "grouped.yaml"
    grouped.write_text("executor: {kind: ray, workers: 2}\nlatency: {table: mobile_32_cpu}\nstrategy: {budget: 7}\n",
                       encoding="utf-8")
    a, b = SearchConfig.from_yaml(flat), SearchConfig.from_yaml(grouped)
    assert a == b and (b.executor.kind, b.executor.workers, b.strategy.budget) == ("ray", 2, 7)
    bad = tmp_path / "bad.yaml"
    bad.write_text("executor: {kind: ray, wrokers: 2}\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.yaml: executor: unknown key 'wrokers'; known: .*workers"):
        SearchConfig.from_yaml(bad)


def test_help_states_every_resolved_default(capsys) -> None:
    assert run_cli(["search", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for needle in ("runs/SPACE-STRATEGY-EVALUATOR-DIGEST", "the shipped CPU table of --space",
                   "predictor when a shipped predictor covers --space", "none with --evaluator predictor",
                   "pareto without one", "nsga2 for a Pareto front", "(default: naswot)"):
        assert needle in text, needle


def test_nas_search_without_settings_runs_and_reports_its_basis_first(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_cli(["search", "--budget", "4", "--no-zoo", "--json"]) == 0  # the budget keeps the test short
    summary = json.loads(capsys.readouterr().out)
    run = Path(summary["run_dir"])
    assert run.parent == Path("runs") and run.name.startswith("mobile-nsga2-predictor-")
    assert summary["evaluated"] == 4 and summary["best"] is not None
    lines = (run / "report.md").read_text().splitlines()
    assert lines[2].startswith("- **estimator**: `top1` **predicted**, not measured, by the accuracy predictor "
                               "`mobile_32_cifar10`")
    assert lines[3].startswith("- **data**: no images read by this search")
    assert lines[4].startswith("- **latency**: `latency_pred_ms` **predicted** from the latency table `mobile_32_cpu`")
    assert run_cli(["search", "--budget", "4", "--no-zoo", "--json"]) == 0  # the same command resumes the run
    assert json.loads(capsys.readouterr().out)["run_dir"] == str(run)


# -------------------------------------------------------------------------- report basis
def test_a_proxy_on_synthetic_images_is_reported_as_such(tmp_path, table) -> None:
    search = Search.from_config(config(tmp_path, table, budget=2))
    search.run(progress=False)
    lines = search.write_report(compare_zoo=False).read_text().splitlines()
    assert lines[2] == ("- **estimator**: `synflow`, a zero-cost proxy **measured** on each untrained network: a "
                        "score, not an accuracy (only its order means something)")
    assert lines[3].startswith("- **data**: **synthetic** generated images") and "give `--data`" in lines[3]
    assert lines[3].endswith("one minibatch of 64 training images per candidate")
    assert lines[4].startswith(f"- **latency**: `latency_pred_ms` **predicted** from the latency table `{table}`")


def test_each_estimator_says_whether_it_measures_or_predicts(table) -> None:
    data = synthetic(num_classes=10, resolution=32)
    t = LatencyTable.load(table, check_env=False)
    trained = TrainedAccuracy(data, TrainConfig(epochs=2), progress=False)
    [estimator, used, _] = ranking_basis({"data": "cifar.tar.gz"}, trained, "top1", t)
    assert estimator == "- **estimator**: `top1` **measured** after training each candidate (2 epochs)"
    assert used == ("- **data**: `cifar.tar.gz`: 10 classes, trained on 640 images, ranked on 320 images held out of "
                    "the training split (never the test set)")
    predictor = Predictor.load("mobile_32_cifar10")
    predicted = PredictedAccuracy(predictor, get_space("mobile", resolution=32, num_classes=10))
    [estimator, used, _] = ranking_basis({"data": "synthetic", "predictor": "mobile_32_cifar10"}, predicted, "top1", t)
    assert "**predicted**, not measured" in estimator and f"fitted on {predictor.n} networks" in estimator
    assert used.endswith("`--data synthetic` is not used by the predictor")
    [estimator, used, _] = ranking_basis({"data": "none"}, ZeroCostProxies(None, proxies=["synflow"]), "synflow", t)
    assert "**measured**" in estimator and used == "- **data**: none (a data-free proxy)"


# ------------------------------------------------------------- a run that scored nothing
def test_a_search_stopped_by_its_constraints_is_run_again_into_the_same_out(tmp_path, table, capsys, caplog,
                                                                            monkeypatch) -> None:
    monkeypatch.setattr(runner, "MAX_FRUITLESS_START", 4)
    out = tmp_path / "run"
    argv = SEARCH.format(table=table, out=out).split()
    # a weight limit no candidate meets (a latency limit under the fastest network is refused up front)
    assert run_cli([*argv, "--max-params", "1000"]) == 2
    err = capsys.readouterr().err
    assert "relax --max-params 1000" in err
    assert f"then run again into the same --out {out}: a run that scored nothing takes the new settings" in err
    assert run_cli([*argv, "--max-params", "100000000"]) == 0
    assert "starting it over with the new settings (max_params (store: 1000, now: 100000000))" in caplog.text
    candidates = json.loads((out / "candidates.json").read_text())
    assert [c["state"] for c in candidates] == ["complete", "complete"]  # the old verdicts were dropped
    assert json.loads((out / "config.json").read_text())["max_params"] == 100000000
    # now that it scored candidates, other settings are refused, each named
    assert run_cli([*argv, "--max-params", "90000000"]) == 2
    assert "settings differ: max_params (store: 100000000, now: 90000000)" in capsys.readouterr().err


def store(tmp_path: Path, identity: dict) -> RunStore:
    space = get_space("fbnet", resolution=32, num_classes=10)
    return RunStore(f"sqlite:///{tmp_path / 'study.db'}", "s", space, ["maximize"], {"config": identity})


@pytest.mark.parametrize("judged,replaced", [
    ("screen-failed", True), ("infeasible", True), ("scored-and-failed", False), ("complete", False),
    ("interrupted", False)])
def test_only_a_run_whose_candidates_all_stopped_at_the_screen_takes_other_settings(tmp_path, judged,
                                                                                     replaced) -> None:
    s = store(tmp_path, {"max_latency_ms": 1.0})
    for seed in range(2):
        point = s.space.sample_point(np.random.default_rng(seed))
        trial = s.start(point, s.space.decode(point))
        if judged == "screen-failed":
            s.finish(trial, {"params": 1.0}, None, "latency table has no entry", at_screen=True)
        elif judged == "infeasible":
            s.finish(trial, {"params": 1.0}, None, "too slow", infeasible=True)
        elif judged == "scored-and-failed":
            s.finish(trial, {"params": 1.0}, None, "proxy: diverged")
        elif judged == "complete":
            s.finish(trial, {"params": 1.0, "synflow": 2.0}, [2.0], None)
    if not replaced:
        with pytest.raises(ValueError, match=r"settings differ: max_latency_ms \(store: 1.0, now: 9.0\)"):
            store(tmp_path, {"max_latency_ms": 9.0})
        return
    again = store(tmp_path, {"max_latency_ms": 9.0})
    assert again.history() == [] and again.study.user_attrs["identity"] == {"config": {"max_latency_ms": 9.0}}
    assert store(tmp_path, {"max_latency_ms": 9.0}).history() == []  # reopened with its new settings
