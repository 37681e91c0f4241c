"""Kill windows of the durable store, tested deterministically: the search is "killed" (a
``BaseException`` no code catches) right after each of its writing database commits in turn,
then resumed with the same settings. Whatever the moment, the resumed run ends with the full
budget of distinct candidates, every outcome the killed run had written is kept with its metrics,
no candidate is scored twice, and (for every strategy that runs without an optional extra) the
resumed run's candidates, in order, are the uninterrupted run's."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy
from optuna.trial import TrialState
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from test_search_runner import config, fake_table

from evaluators.base import BaseEvaluator, Metric
from evaluators.complexity import ComplexityEvaluator
from nas.arch import Arch
from nas.search.evolution import RegularizedEvolution
from nas.search.runner import RunState, Search
from search_spaces import zoo

BUDGET = 3


class Killed(BaseException):
    """Stands for SIGKILL: nothing between the commit and the test catches it."""


class HashScore(BaseEvaluator):
    """A score evaluator that costs nothing: a number from the architecture's hash (a few
    candidates fail, as real ones do); it counts its calls per architecture."""

    name = "hash-score"
    metrics = (Metric("synflow", "max"),)

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def config(self) -> dict[str, Any]:
        return {}

    def compute(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        h = arch.hash()
        self.calls[h] += 1
        if h.startswith("9"):
            raise RuntimeError("diverged")
        return {"synflow": 1.0 + int(h[:6], 16) / 2**24}, {}


@contextmanager
def kill_after(commits: int | None) -> Iterator[list[int]]:
    """Count the commits that write (their transaction ran an INSERT, UPDATE or DELETE); raise
    :class:`Killed` right after the ``commits``-th one (never, for ``None``). Yields the count."""
    count = [0]
    wrote = [False]
    real_commit = Session.commit

    def mark(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        wrote[0] = wrote[0] or statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE")

    def commit(self: Session) -> None:
        real_commit(self)
        if wrote[0]:
            wrote[0] = False
            count[0] += 1
            if count[0] == commits:
                raise Killed(f"after commit {commits}")

    sqlalchemy.event.listen(Engine, "before_cursor_execute", mark)
    Session.commit = commit  # type: ignore[method-assign]
    try:
        yield count
    finally:
        Session.commit = real_commit  # type: ignore[method-assign]
        sqlalchemy.event.remove(Engine, "before_cursor_execute", mark)


STATES = {"complete": TrialState.COMPLETE, "failed": TrialState.FAIL, "infeasible": TrialState.PRUNED}


def judged(run: Path) -> dict[str, dict[str, Any]]:
    """Hash -> outcome of every judged trial in the run's store; the closed ones are in the
    Optuna state their outcome says (what ``optuna-dashboard`` shows)."""
    storage = f"sqlite:///{run / 'study.db'}"
    if "litenas-search" not in optuna.get_all_study_names(storage):
        return {}
    trials = optuna.load_study(study_name="litenas-search", storage=storage).trials
    done = [t for t in trials if "outcome" in t.user_attrs]
    assert all(t.state in (TrialState.RUNNING, STATES[t.user_attrs["outcome"]["state"]]) for t in done)
    return {t.user_attrs["hash"]: t.user_attrs["outcome"] for t in done}


def search(tmp_path: Path, table: Path, score: HashScore) -> Search:
    """A random search whose constraint (table latency) rejects some candidates."""
    cfg = config(tmp_path, table, strategy="random", budget=BUDGET, max_latency_ms=0.775)
    return Search.from_config(cfg, score=score, num_classes=10)


@pytest.fixture(autouse=True)
def fast(monkeypatch) -> Iterator[None]:
    """What these tests are not about, made cheap: the screen's complexity count (it builds each
    network) and syncing to disk (a kill, unlike a power cut, loses no written page)."""
    monkeypatch.setattr(ComplexityEvaluator, "compute", lambda self, arch: ({"params": 1.0, "macs_conv_linear": 1.0}, {}))
    monkeypatch.setattr(os, "fsync", lambda fd: None)

    def no_sync(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous=OFF")

    sqlalchemy.event.listen(Engine, "connect", no_sync)
    yield
    sqlalchemy.event.remove(Engine, "connect", no_sync)


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return fake_table(tmp_path_factory.mktemp("table") / "fbnet32.json")


def test_a_kill_after_any_commit_loses_nothing_and_scores_nothing_twice(tmp_path, table) -> None:
    with kill_after(None) as count:
        reference = search(tmp_path / "reference", table, HashScore()).run(progress=False)
    assert {r.state for r in reference.records} == {"complete", "failed", "infeasible"}
    commits = count[0]  # writing commits of an uninterrupted run, the store's creation included
    assert commits > 10
    for n in range(1, commits):
        run_root = tmp_path / f"kill{n}"
        score = HashScore()
        with kill_after(n), pytest.raises(Killed):
            search(run_root, table, score).run(progress=False)
        before = judged(run_root / "run")
        state = search(run_root, table, score).run(progress=False)
        evaluated = [r.arch.hash() for r in state.records if r.evaluated]
        assert len(evaluated) == BUDGET and len(set(evaluated)) == BUDGET, n
        after = {r.arch.hash(): r for r in state.records}
        for h, outcome in before.items():  # what the killed run judged is kept, with its metrics
            assert after[h].state == outcome["state"] and after[h].metrics == outcome["metrics"], (n, h)
        assert max(score.calls.values()) == 1, n
        assert all(t["state"] == after[h].state for h, t in judged(run_root / "run").items()), n


# Per strategy, a short search that takes each of its paths: candidates rejected by the latency
# constraint and (but for NSGA-II) failed ones; for evolution a warm start (``start_from``) and the
# rule that mutates members once ``population`` proposals in a row failed while filling; TPE past
# its 10 random startup trials; NSGA-II past its first generation. "evolution-repeats" proposes
# duplicates, which the store never sees (see :func:`repeat_every_third`).
REPLAYED: dict[str, dict[str, Any]] = {
    "random": dict(strategy="random", budget=5, seed=1, max_latency_ms=0.79),
    "evolution": dict(strategy="evolution", budget=6, population=3, sample_size=2, max_latency_ms=0.775),
    "evolution-repeats": dict(strategy="evolution", budget=5, population=3, sample_size=2, max_latency_ms=0.78),
    "tpe": dict(strategy="tpe", budget=12, seed=2, max_latency_ms=0.79),
    "nsga2": dict(strategy="nsga2", objective="pareto", budget=8, seed=2, population=4, max_latency_ms=0.79),
}


def repeat_every_third(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make evolution propose its previous point again on every third ask, after drawing a new
    one: a duplicate the runner reuses without a trial, but which moved the random generator."""
    ask = RegularizedEvolution.ask

    def repeating(self: RegularizedEvolution) -> tuple[int, ...]:
        point = ask(self)
        self.asks = getattr(self, "asks", 0) + 1
        previous, self.previous = getattr(self, "previous", point), point
        return previous if self.asks % 3 == 0 else point

    monkeypatch.setattr(RegularizedEvolution, "ask", repeating)


def candidates(state: RunState) -> list[dict[str, Any]]:
    """The run's candidates in order, as the report lists them (``candidates.json``), less their
    trial numbers (a killed trial keeps its number, closed as interrupted, so the later ones shift)."""
    return [{k: v for k, v in r.to_dict().items() if k != "trial"} for r in state.records]


@pytest.mark.parametrize("case", REPLAYED)
def test_a_resumed_search_proposes_what_an_uninterrupted_one_does(tmp_path, table, monkeypatch, case) -> None:
    """Killed after any commit and resumed, a search has the same candidates in the same order
    (and the same duplicates) as the same search never killed: the strategy's state, its random
    generator included, is rebuilt from the store as the uninterrupted run built it."""
    settings = dict(REPLAYED[case])
    if case == "evolution":
        start = tmp_path / "fbnet_c.json"
        zoo.get("fbnet_c").replace(num_classes=10, resolution=32).save(start)
        settings["start_from"] = str(start)
    if case == "evolution-repeats":
        repeat_every_third(monkeypatch)

    def search_in(root: Path) -> Search:
        return Search.from_config(config(root, table, **settings), score=HashScore(), num_classes=10)

    with kill_after(None) as count:
        reference = search_in(tmp_path / "reference").run(progress=False)
    expected = candidates(reference)
    assert {"complete", "infeasible"} <= {c["state"] for c in expected}
    assert (reference.duplicates > 0) == (case == "evolution-repeats")
    for n in range(1, count[0]):
        with kill_after(n), pytest.raises(Killed):
            search_in(tmp_path / f"kill{n}").run(progress=False)
        resumed = search_in(tmp_path / f"kill{n}").run(progress=False)
        assert candidates(resumed) == expected, n
        assert resumed.duplicates == reference.duplicates, n
