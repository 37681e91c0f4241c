"""The search runner: strategy + evaluators + executor + durable store -> a run directory.

Loop: keep every executor slot busy with a candidate the strategy asks for; screen it first with
the cheap evaluators (table latency, complexity) against the hard constraints; evaluate the
feasible ones with the expensive evaluator (a proxy or training) on the executor; record each
outcome in the store *before* telling the strategy. The driver alone reads and writes the store
and the result cache: a cached candidate is never submitted, and executors (a Ray cluster's
workers included) run the uncached evaluator and only return results. A killed run started again with the same
command replays the store into a fresh strategy and goes on: nothing evaluated is lost, and a
candidate already evaluated is never evaluated again (its known result is reused). With one
worker, the resumed run proposes the same candidates in the same order as a run never killed
(see :meth:`Search._replay`).

The run directory holds ``config.json``, ``study.db`` (unless another storage was given),
``cache/`` (evaluator results by architecture hash), and the outputs of :mod:`nas.search.report`.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

import latency_tables
from evaluators import Cached, ComplexityEvaluator, Composite, Dataset, JsonCache, Result, TableLatency
from evaluators.base import Evaluator
from evaluators.predictor import PredictedAccuracy
from evaluators.supernet import SupernetAccuracy
from latency_tables.check import warn_if_unfit
from latency_tables.predict import LatencyPredictor
from latency_tables.table import LatencyTable
from nas.arch import Arch
from nas.io import atomic_write_json
from nas.search.config import SearchConfig
from nas.search.executors import Executor, InProcessExecutor
from nas.search.objectives import Constraints, Objective
from nas.search.report import fixed_points_for, ranking_basis, score_fixed_points, write_report
from nas.search.scoring import load_search_data, make_score_evaluator
from nas.search.store import Record, RunStore
from nas.search.strategies import make_strategy
from nas.search.strategy import Strategy
from search_spaces import zoo
from search_spaces.layerwise import ViewSpace
from search_spaces.space import Point, SearchSpace
from search_spaces.spaces import get_space

logger = logging.getLogger(__name__)

# Consecutive proposals that are duplicates or infeasible before the runner gives up: the space
# (or its feasible part) is exhausted, or the constraints admit (almost) nothing.
_MAX_IDLE_PROPOSALS = 500
# Screened candidates of a run none of which passed the screen (constraints, latency table) before
# the runner refuses the search: its constraints admit nothing, or its table does not cover the space.
MAX_FRUITLESS_START = 50


@dataclass
class RunState:
    """What the runner knows of the run so far (rebuilt from the store on resume)."""

    records: list[Record] = field(default_factory=list)
    by_hash: dict[str, Record] = field(default_factory=dict)
    infeasible: int = 0
    duplicates: int = 0

    @property
    def evaluated(self) -> int:
        return sum(1 for r in self.records if r.evaluated)

    def add(self, record: Record) -> None:
        self.records.append(record)
        self.by_hash.setdefault(record.arch.hash(), record)
        if record.state == "infeasible":
            self.infeasible += 1


def _check_coverage(table: LatencyTable, space: SearchSpace, config: SearchConfig, resolution: int,
                    num_classes: int) -> None:
    """Refuse, before any candidate is proposed, a latency table that lacks ops the search can
    meet (another space, resolution or class count): without ``--measure-missing`` every such
    candidate would fail at the screen."""
    needed = space.op_configs(resolution, core_only=True)
    missing = [key for key in (c.key() for c in needed) if key not in table.entries]
    if missing:
        raise ValueError(
            f"--latency-table {config.latency.table} ({table.meta.get('space', '?')} @{table.resolution}px) lacks "
            f"{len(missing)} of the {len(needed)} op configurations that `{config.space.name}` @{resolution}px with "
            f"{num_classes} classes can use (e.g. {missing[0]}); give --measure-missing to time them on this "
            f"machine as the search meets them, or a table built for this space: nas latency build --space "
            f"{config.space.name} --resolution {resolution} --num-classes {num_classes} --out TABLE.json")


def _check_reachable(table: LatencyTable, space: SearchSpace, config: SearchConfig) -> None:
    """Refuse, before any candidate is proposed, a latency limit under every network the space
    holds, as the table predicts them: :meth:`SearchSpace.min_cost` of the table's per-op costs
    (each layer at its cheapest in ``fbnet``, dynamic programmes over the stages of ``mobile`` and
    ``mnasnet``, separable stages in ``hardnet``; the fastest network's prediction itself, or a
    little under it where the calibration charges weights: :meth:`LatencyPredictor.op_cost_floor`).
    A space that cannot say (``min_cost`` is ``None``) is caught after its first candidates
    (:data:`MAX_FRUITLESS_START`)."""
    if config.objective.max_latency_ms is None:
        return
    floor = space.min_cost(LatencyPredictor(table).op_cost_floor, core_only=True)
    if floor is None:
        return
    cal = table.calibration
    floor += cal.constant if cal is not None else 0.0
    if config.objective.max_latency_ms < floor:
        raise ValueError(f"--max-latency-ms {config.objective.max_latency_ms:g}: no network of `{space.name}` can meet it; "
                         f"--latency-table {config.latency.table} predicts none under {floor:.4g} ms")


@dataclass(frozen=True)
class Evaluation:
    """How a search judges its candidates, shared by every strategy (the ask/tell runner and the
    differentiable searches of :mod:`nas.search.dnas`): the space at the search's input size,
    the objective, the hard constraints, the cheap screen (table latency, complexity) and the
    cached expensive score evaluator.

    ``data`` is the search's dataset when :meth:`from_config` loaded it (``None`` when a score
    evaluator was given instead).
    """

    space: SearchSpace
    objective: Objective
    constraints: Constraints
    screen: Evaluator
    score: Cached
    table: LatencyTable
    resolution: int
    num_classes: int
    data: Dataset | None = None

    @classmethod
    def from_config(cls, config: SearchConfig, *, score: Evaluator | None = None,
                    num_classes: int = 10) -> Evaluation:
        """Build every part from ``config``. ``score`` replaces the configured expensive
        evaluator (its architectures then have ``num_classes`` outputs)."""
        run_dir = config.run_dir
        if run_dir.exists() and not run_dir.is_dir():
            raise ValueError(f"out: {run_dir} is a file; give a directory for the run (a new one, or the run to resume)")
        table = latency_tables.load(config.latency.table, check_env=False)  # type: ignore[arg-type]  (validated by SearchConfig)
        warn_if_unfit(table)  # fingerprint + a probe of seconds, cached per table and machine
        resolution = config.space.resolution or table.resolution
        data = None
        if score is None:
            data = load_search_data(config, resolution)
            score = make_score_evaluator(config, data, resolution)
            # A predictor's networks have its classes; data-free proxies take the classifier of the
            # table's networks (ImageNet's by default).
            num_classes = (score.predictor.num_classes if isinstance(score, PredictedAccuracy)
                           else data.num_classes if data is not None else int(table.meta.get("num_classes") or 1000))
        space = get_space(config.space.name, resolution=resolution, num_classes=num_classes)
        if isinstance(score, SupernetAccuracy):  # propose only what the supernet can score
            space = ViewSpace(score.view)
        if not config.latency.measure_missing:  # with it, missing ops are timed as candidates meet them
            _check_coverage(table, space, config, resolution, num_classes)
            _check_reachable(table, space, config)
        objective = config.objective.objective(config.evaluator.proxy if config.evaluator.name == "proxy" else "top1")
        constraints = config.objective.constraints()
        if objective.metric not in {m.name for m in score.metrics}:
            raise ValueError(f"the objective needs metric {objective.metric!r}, which the evaluator "
                             f"{score.name!r} does not produce ({', '.join(m.name for m in score.metrics)})")
        run_dir.mkdir(parents=True, exist_ok=True)  # only once every input was read and checked
        if not os.access(run_dir, os.W_OK):
            raise ValueError(f"out: {run_dir} is not writable; give a directory the run can write to")
        cache = JsonCache(run_dir / "cache")
        screen = Composite([TableLatency(table, measure_missing=config.latency.measure_missing), ComplexityEvaluator(ptflops=False)], cache=cache)
        return cls(space, objective, constraints, screen, Cached(score, cache), table, resolution, num_classes, data)

    def missing_ops(self, arch: Arch) -> list[str]:
        """Keys of the op configurations of ``arch`` that the latency table lacks (each once)."""
        return sorted({c.key() for c in arch.op_configs()} - self.table.entries.keys())

    def measure_missing(self, archs: Sequence[Arch], *, progress: bool = False) -> int:
        """Measure on this device the ops of ``archs`` missing from the latency table and add them
        to it (in memory, as the screen's ``--measure-missing`` does), with a bar over the
        architectures that lack some; the number of ops measured. Run it before a phase that would
        otherwise measure them silently (a differentiable search's latency model, its judging)."""
        lacking = [a for a in archs if self.missing_ops(a)]
        predictor = LatencyPredictor(self.table, measure_missing=True)
        for arch in tqdm(lacking, desc="measuring missing ops", unit="net", disable=not progress or not lacking,
                         dynamic_ncols=True):
            predictor.op_latencies(arch)
        return predictor.added

    def screen_arch(self, arch: Arch) -> tuple[dict[str, float], str | None, bool]:
        """Cheap metrics of ``arch``, a failure reason, and whether it broke a constraint.

        The screen's parts run in order (the table's latency, then the complexity count, which
        builds the model) and stop at the first constraint broken: under a tight latency budget
        most proposals are rejected by the table lookup alone."""
        self.screen.check(arch)
        metrics: dict[str, float] = {}
        for part in self.screen.parts:
            result = part.evaluate(arch)
            metrics.update(result.metrics)
            if not result.ok:
                return metrics, result.reason, False
            violations = self.constraints.violations(metrics, known_only=True)
            if violations:
                return metrics, "; ".join(violations), True
        return metrics, None, False

    @staticmethod
    def rejected(number: int, point: Point, arch: Arch, metrics: dict[str, float], reason: str,
                 infeasible: bool) -> Record:
        """The record of a candidate the screen stopped (:meth:`screen_arch`'s outcome): never scored."""
        return Record(number, point, arch, "infeasible" if infeasible else "failed", metrics, None, reason,
                      scored=False)

    def scored(self, number: int, point: Point, arch: Arch, screen_metrics: dict[str, float],
               result: Result) -> Record:
        """The record of a screened candidate scored ``result``: its metrics, its objective values
        (report directions), or why it failed (the score failed, or the objective cannot be
        computed from its metrics, e.g. a reward of a non-positive metric)."""
        metrics = {**screen_metrics, **result.metrics}
        values, reason = None, result.reason
        if result.ok:
            try:
                values = self.objective.report_values(metrics)
            except ValueError as exc:
                reason = str(exc)
        return Record(number, point, arch, "complete" if values is not None else "failed", metrics, values, reason)

    def judge(self, number: int, point: Point, arch: Arch) -> Record:
        """Screen ``arch``, then score it unless the screen failed or a constraint rejects it (the
        runner's rules, in-process and in order)."""
        metrics, reason, infeasible = self.screen_arch(arch)
        if reason is not None:
            return self.rejected(number, point, arch, metrics, reason, infeasible)
        return self.scored(number, point, arch, metrics, self.score.evaluate(arch))

    def write_report(self, config: SearchConfig, records: list[Record], *, compare_zoo: bool = True,
                     top_k: int | None = None, notes: Mapping[str, str] | None = None,
                     sections: Sequence[str] = (), progress: bool = False) -> Path:
        """Write the run's outputs (:mod:`nas.search.report`), placing the zoo entries at the
        search's input size on the same axes; return the path of ``report.md``. ``top_k``
        overrides the configured number of top files; ``notes`` and ``sections`` annotate it.
        ``progress`` shows bars while the zoo entries are scored and the files written."""
        fixed = []
        if compare_zoo:
            points = fixed_points_for(self.resolution, self.num_classes)
            fixed = score_fixed_points(points, [self.screen, self.score], progress=progress)
        title = f"litenas search: {config.space.name} / {config.strategy.name} / {config.evaluator.name}"
        said = {}  # what the evaluator said of a candidate's figure (an in-sample prediction)
        for r in records:
            cached = self.score.lookup(r.arch) if r.state == "complete" else None
            if cached is not None and "note" in cached.info:
                said[r.arch.hash()] = f"{self.score.name}: {cached.info['note']}"
        return write_report(config.run_dir, records, self.objective, fixed,
                            top_k=top_k or config.output.top_k, title=title, config=config.to_dict(),
                            notes={**said, **(notes or {})} or None, sections=sections, progress=progress,
                            basis=ranking_basis(config.to_dict(), self.score.inner, self.objective.metric, self.table))

    def best(self, records: list[Record]) -> Record | None:
        """The best complete candidate of ``records`` by the objective's first value."""
        done = [r for r in records if r.state == "complete"]
        return max(done, key=lambda r: self.objective.best_key(r.metrics), default=None)


def start_archs(spec: str | None, space: SearchSpace, num_classes: int) -> list[Arch]:
    """The architectures ``start_from`` names (zoo names or architecture files) with
    ``num_classes`` outputs, each checked to be a point of ``space``; ``ValueError`` naming the
    one that is not.

    Why a warm start: a latency budget set by a fixed point can lie where the space's sampler
    rarely goes (the fastest CIFAR fixed points are faster than 3,000 random ``mobile``@32
    networks); started from the fixed point, evolution explores its neighbours instead."""
    out: list[Arch] = []
    for item in (spec or "").split(","):
        name = item.strip()
        if not name:
            continue
        if name in zoo.names():
            arch = zoo.get(name)
        elif Path(name).is_file():
            try:
                arch = Arch.load(name)
            except ValueError as exc:
                raise ValueError(f"start_from: {exc}") from None
        else:
            raise ValueError(f"start_from: {name!r} is neither a zoo name (`nas zoo list`) nor an architecture file")
        arch = arch.replace(num_classes=num_classes)
        try:
            space.encode(arch)
        except ValueError as exc:
            raise ValueError(f"start_from: {name} is not a point of the space {space.name} ({exc})") from None
        out.append(arch)
    return out


@dataclass
class _RunLoop:
    """The working state of one :meth:`Search.run`: where its candidates go, what it replays of a
    killed run, what is in flight, and what its stopping rules count."""

    executor: Executor
    bar: Any
    on_record: Callable[[Record], None] | None
    replay: deque[Record]
    interrupted: list[Arch]
    redo: list[Arch]
    budget: int
    deadline: float | None
    pending: dict[int, tuple[Point, Arch, int, dict[str, float]]] = field(default_factory=dict)
    ticket: int = 0
    idle: int = 0  # proposals in a row that were duplicates or rejected
    passed: bool = False  # a candidate got past the screen
    rejected: list[Record] = field(default_factory=list)  # those rejected before one passed


@dataclass
class Search:
    """A configured search; :meth:`run` executes it (resuming whatever its store holds)."""

    config: SearchConfig
    evaluation: Evaluation
    strategy: Strategy
    store: RunStore
    state: RunState = field(default_factory=RunState)
    start: list[Arch] = field(default_factory=list)
    """Architectures evaluated before the strategy proposes (``start_from``)."""

    # -------------------------------------------------------------------------------- setup
    @classmethod
    def from_config(cls, config: SearchConfig, *, score: Evaluator | None = None, num_classes: int = 10) -> Search:
        """Build every part from ``config``. ``score`` replaces the configured expensive
        evaluator (its architectures then have ``num_classes`` outputs)."""
        evaluation = Evaluation.from_config(config, score=score, num_classes=num_classes)
        objective = evaluation.objective
        strategy = make_strategy(config.strategy.name, evaluation.space, objective.n_values, config.strategy)
        cache = config.run_dir / "cache"
        recovery = (f"the scores evaluated so far are kept in {cache}: move the damaged database aside and run the "
                    "same command again (scored candidates are read back from the cache, not evaluated again)")
        # The input size as resolved: a run without --resolution is the same search as one with the
        # table's, and a store that kept no resolution (older runs) meant the table's.
        identity = {**config.identity(), "resolution": evaluation.resolution}
        store = RunStore(config.storage_url, "litenas-search", evaluation.space, objective.directions,
                         {"config": identity, "objective": objective.names}, recovery=recovery,
                         resolved={"resolution": evaluation.table.resolution})
        atomic_write_json(config.run_dir / "config.json", config.to_dict())
        return cls(config, evaluation, strategy, store, start=start_archs(config.strategy.start_from, evaluation.space, evaluation.num_classes))

    @property
    def space(self) -> SearchSpace:
        return self.evaluation.space

    @property
    def objective(self) -> Objective:
        return self.evaluation.objective

    @property
    def score(self) -> Cached:
        return self.evaluation.score

    @property
    def resolution(self) -> int:
        return self.evaluation.resolution

    @property
    def num_classes(self) -> int:
        return self.evaluation.num_classes

    # ------------------------------------------------------------------------------- helpers
    def _replay(self) -> tuple[deque[Record], list[Arch]]:
        """The store's judged candidates in trial order, which :meth:`run` replays, and those a
        killed run left unjudged (their trials are closed as interrupted).

        Why replay by running again: a strategy's state is more than its tells. Its random
        generator also moved on for proposals the store never saw (duplicates, reused without a
        trial; an ask a kill cut short), and an Optuna study numbers those asks too. So a resumed
        run starts the search over with the fresh strategy (same seed) and asks it exactly as the
        killed run did; each candidate the store judged is told its stored outcome instead of being
        screened and scored again. The strategy sees the same asks and tells in the same order as
        in a run never killed, and goes on to propose what that run would have: with one worker, a
        resumed search's candidates and their order do not depend on when it was killed."""
        interrupted = self.store.recover_interrupted()
        return deque(self.store.history()), interrupted

    def _tell_history(self, replay: deque[Record]) -> list[Record]:
        """Add the stored candidates left in ``replay`` to the state and tell them to the strategy
        as points it did not ask for (the run no longer follows the killed run's order: several
        workers finished in another order, the strategy changed, the budget shrank); return them."""
        told = list(replay)
        replay.clear()
        for record in told:
            self.state.add(record)
            self.strategy.tell(record.point, self._strategy_values(record))
        return told

    def _strategy_values(self, record: Record) -> tuple[float, ...] | None:
        if record.state != "complete":
            return None
        return self.objective.strategy_values(record.metrics)

    # ----------------------------------------------------------------------------------- run
    def run(self, executor: Executor | None = None, *, progress: bool = True,
            on_record: Callable[[Record], None] | None = None) -> RunState:
        """Run until the budget of evaluated candidates (or the time limit) is reached: keep every
        executor slot busy with proposals (:meth:`_propose`), then collect what finishes."""
        # Executors run the uncached evaluator; the driver alone reads and writes the cache.
        executor = executor or InProcessExecutor(self.score.inner)
        replay, interrupted = self._replay()
        budget = self.config.strategy.budget
        bar = tqdm(total=budget, initial=min(sum(r.evaluated for r in replay), budget), desc=f"search {self.config.space.name}",
                   unit="cand", disable=not progress, dynamic_ncols=True)
        loop = _RunLoop(executor, bar, on_record, replay, interrupted, list(self.start), budget,
                        None if self.config.strategy.time_limit_s is None else time.monotonic() + self.config.strategy.time_limit_s)
        try:
            while True:
                while self._room_for_more(loop):
                    self._propose(loop)
                    if loop.idle >= _MAX_IDLE_PROPOSALS:
                        logger.warning("stopping: %d proposals in a row were duplicates or infeasible", loop.idle)
                        break
                if not loop.pending:
                    break
                for done_ticket, result in executor.wait():
                    point, arch, trial, metrics = loop.pending.pop(done_ticket)
                    self.score.store(arch, result)
                    self._scored(point, arch, trial, metrics, result, on_record, bar)
                if loop.idle >= _MAX_IDLE_PROPOSALS:
                    break
            self._tell_history(replay)  # stored candidates past where this run stopped (a smaller budget)
        finally:
            bar.close()
            executor.close()
            self.strategy.close()
        return self.state

    def _room_for_more(self, loop: _RunLoop) -> bool:
        """Whether to propose now: a slot is free, the budget is not covered by what is evaluated
        and in flight, and time is not up."""
        return (loop.executor.in_flight < loop.executor.slots
                and self.state.evaluated + len(loop.pending) < loop.budget
                and (loop.deadline is None or time.monotonic() < loop.deadline))

    def _next_proposal(self, loop: _RunLoop) -> tuple[Point, Arch]:
        """The next candidate: a warm start (or one a killed run left unjudged) first, then the
        strategy's."""
        if loop.redo:
            arch = loop.redo.pop(0)
            return self.space.encode(arch), arch
        point = self.strategy.ask()
        return point, self.space.decode(point)

    def _propose(self, loop: _RunLoop) -> None:
        """Take one proposal: a duplicate is answered from the state, a stored outcome of a killed
        run replayed, a new candidate screened and, if it passes, scored (cache) or submitted."""
        point, arch = self._next_proposal(loop)
        known = self.state.by_hash.get(arch.hash())
        if loop.replay and known is None and arch.hash() != loop.replay[0].arch.hash():
            self._leave_replay(loop)
            known = self.state.by_hash.get(arch.hash())
        if known is not None or any(p[1] == arch for p in loop.pending.values()):
            # Already evaluated (or in flight): reuse, never evaluate twice.
            self.state.duplicates += 1
            self.strategy.tell(point, None if known is None else self._strategy_values(known))
            loop.idle += 1
        elif loop.replay:  # judged by the killed run: its stored outcome, as the run then went on
            record = loop.replay.popleft()
            self.state.add(record)
            self.strategy.tell(point, self._strategy_values(record))
            self._count(loop, record)
            if not loop.replay:
                self._update_bar(loop.bar)
        else:
            self._screen_and_submit(loop, point, arch)

    def _leave_replay(self, loop: _RunLoop) -> None:
        """The strategy proposes other candidates than the stored run did: tell it the stored
        ones left as history and evaluate again what the killed run left unjudged."""
        logger.warning("resuming: the strategy proposes other candidates than the stored run did; "
                       "telling it the %d stored ones left as history", len(loop.replay))
        told = self._tell_history(loop.replay)
        loop.passed = loop.passed or any(r.scored for r in told)
        loop.redo[:0] = [a for a in loop.interrupted if a.hash() not in self.state.by_hash]

    def _screen_and_submit(self, loop: _RunLoop, point: Point, arch: Arch) -> None:
        """Screen a new candidate (table latency, complexity, constraints); store a rejection, or
        score one that passes from the cache or by submitting it to the executor."""
        missing = self.evaluation.missing_ops(arch) if self.config.latency.measure_missing else []
        if missing:  # the screen measures them: say so while it does
            loop.bar.set_postfix_str(f"measuring {len(missing)} ops missing from the latency table")
        metrics, reason, infeasible = self.evaluation.screen_arch(arch)
        if missing:
            self._update_bar(loop.bar)
        trial = self.store.start(point, arch)
        if reason is not None:
            self.store.finish(trial, metrics, None, reason, infeasible=infeasible, at_screen=True)
            record = self.evaluation.rejected(trial, point, arch, metrics, reason, infeasible)
            self._finish(record, loop.on_record)
            self.strategy.tell(point, None)
            if not infeasible:
                loop.bar.update(1)
            self._count(loop, record)
            return
        loop.idle = 0
        loop.passed = True
        hit = self.score.lookup(arch)
        if hit is not None:  # scored before (by an earlier run): never submitted
            self._scored(point, arch, trial, metrics, hit, loop.on_record, loop.bar)
        else:
            loop.pending[loop.ticket] = (point, arch, trial, metrics)
            loop.executor.submit(loop.ticket, arch)
            loop.ticket += 1

    def _count(self, loop: _RunLoop, record: Record) -> None:
        """Count a judged candidate toward the stopping rules: one that scored resets the idle
        count and shows the screen can be passed; until one has, each rejection counts toward
        :data:`MAX_FRUITLESS_START`, where the search is refused with the reasons."""
        if record.scored:
            loop.idle = 0
            loop.passed = True
            return
        loop.idle += 1
        if not loop.passed:
            loop.rejected.append(record)
            if len(loop.rejected) >= MAX_FRUITLESS_START:
                raise ValueError(self._fruitless(loop.rejected))

    def _fruitless(self, rejected: list[Record]) -> str:
        """Why none of the ``rejected`` candidates (the first of the run) got past the screen, and
        which settings to change."""
        infeasible = [r for r in rejected if r.state == "infeasible"]
        failed = [r for r in rejected if r.state == "failed"]
        parts = []
        if infeasible:
            limits = {k: v for k, v in vars(self.evaluation.constraints).items() if v is not None}
            flags = ", ".join(f"--{k.replace('_', '-')} {v:g}" for k, v in limits.items())
            lows = []
            for metric in self.evaluation.constraints.metrics_needed():
                seen = [r.metrics[metric] for r in infeasible if metric in r.metrics]
                if seen:
                    lows.append(f"{metric} {min(seen):.4g}")
            lowest = f"; the lowest among them: {', '.join(lows)}" if lows else ""
            parts.append(f"{len(infeasible)} broke the constraints (e.g. {infeasible[0].reason}{lowest}): relax {flags}")
        if failed:
            hint = ""
            if any("latency table has no entry" in (r.reason or "") for r in failed):
                hint = (f": --latency-table {self.config.latency.table} does not cover the space {self.config.space.name} at "
                        f"{self.resolution} px with {self.num_classes} classes; use --measure-missing, or a table "
                        "built for it")
            parts.append(f"{len(failed)} failed before scoring (e.g. {failed[0].reason}){hint}")
        return (f"none of the first {len(rejected)} candidates got past the screen: {'; '.join(parts)} "
                f"(then run again into the same --out {self.config.output.out}: a run that scored nothing takes the new "
                "settings)")

    def _scored(self, point: Point, arch: Arch, trial: int, metrics: dict[str, float], result: Result,
                on_record: Callable[[Record], None] | None, bar: Any) -> None:
        """Record the score ``result`` of a screened candidate (store, state, strategy, progress)."""
        record = self.evaluation.scored(trial, point, arch, metrics, result)
        self.store.finish(trial, record.metrics, record.values, record.reason)
        self._finish(record, on_record)
        self.strategy.tell(point, self._strategy_values(record))
        bar.update(1)
        self._update_bar(bar)

    def _finish(self, record: Record, on_record: Callable[[Record], None] | None) -> None:
        self.state.add(record)
        if on_record is not None:
            on_record(record)

    def _update_bar(self, bar: Any) -> None:
        """Show the best candidate so far on ``bar`` (a tqdm bar), replacing any status."""
        best = self.best()
        bar.set_postfix_str("" if best is None else
                            f"best {self.objective.names[0]}={self.objective.best_key(best.metrics):.4g}", refresh=False)

    def write_report(self, *, compare_zoo: bool = True, progress: bool = False) -> Path:
        """Write the run's outputs (see :meth:`Evaluation.write_report`); return ``report.md``."""
        return self.evaluation.write_report(self.config, self.state.records, compare_zoo=compare_zoo,
                                            progress=progress)

    def best(self) -> Record | None:
        """The best complete candidate by the objective's first value."""
        return self.evaluation.best(self.state.records)
