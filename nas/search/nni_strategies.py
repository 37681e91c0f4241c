"""NNI 3.0 strategies as litenas ask/tell strategies: ``nas search --strategy nni-evolution|nni-random``
(the optional extra ``litenas[nni]``).

An NNI strategy drives its own loop: it waits for an idle worker, samples the model space,
submits the model to an *execution engine* and learns from the metrics the engine reports back.
:class:`NNIStrategy` runs that loop in a background thread against
:class:`nas.interop.nni_engine.AskTellEngine`, whose workers are the litenas runner's asks: the
engine has an idle worker exactly when an :meth:`NNIStrategy.ask` is waiting, a submitted model
is that ask's answer, and :meth:`NNIStrategy.tell` brings its objective value back. Several asks
may be outstanding (Ray workers), as NNI's own asynchronous engines allow. Every model is
evaluated by the litenas runner (screen, constraints, evaluators, durable store, report), so an
NNI strategy gets the same run directory as any other; the NNI model space is the one of
:mod:`nas.interop.nni_space` (the space's layer-wise view: all of ``fbnet``; the layer templates
of ``mobile``).

The NNI strategies (``RegularizedEvolution``, Real et al., AAAI 2019, and ``Random``, both with
NNI's de-duplication) maximise one metric. Points told without being asked (a resumed search
replaying its store) are kept and answered when the seeded NNI strategy proposes them again, so a
resumed search takes up where it stopped. NNI's state is touched only by the NNI thread: results
are queued and dispatched there, all of them before the next proposal, so the same seed and the
same tells give the same asks.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from nas.search.strategy import Strategy, StrategyConfig, Values, register_strategy
from search_spaces.space import Point, SearchSpace

__all__ = ["NNIStrategy", "NNI_STRATEGIES"]

NNI_STRATEGIES = ("nni-evolution", "nni-random")
"""Strategy names of ``nas search`` that run one of NNI 3.0's strategies behind the ask/tell
interface (extra ``litenas[nni]``): single-objective, layer-wise spaces."""


class NNIStrategy(Strategy):
    """An NNI strategy (``nni-evolution`` or ``nni-random``) behind the ask/tell interface.

    Args:
        space: a layer-wise litenas space (``fbnet``, ``mobile`` built at one resolution).
        kind: ``nni-evolution`` (NNI ``RegularizedEvolution``) or ``nni-random`` (NNI ``Random``).
        seed: seeds the NNI strategy.
        n_objectives: must be 1 (NNI strategies maximise one metric).
        population, sample_size: of ``nni-evolution``.
    """

    name = "nni"

    def __init__(self, space: SearchSpace, *, kind: str = "nni-evolution", seed: int = 0, n_objectives: int = 1,
                 population: int = 20, sample_size: int = 5):
        super().__init__(space, seed=seed, n_objectives=n_objectives)
        if kind not in NNI_STRATEGIES:
            raise ValueError(f"unknown NNI strategy {kind!r}; known: {', '.join(NNI_STRATEGIES)}")
        from nas.interop.nni_space import LitenasModelSpace, view_of  # first: says how to install NNI

        from nni.nas.space import RawFormatModelSpace  # isort: skip
        from nni.nas.strategy import Random, RegularizedEvolution  # isort: skip

        self.name = kind
        self.view = view_of(space)
        self._model_space = RawFormatModelSpace(LitenasModelSpace(space), None)
        if kind == "nni-evolution":
            self._nni = RegularizedEvolution(population_size=population, sample_size=sample_size, seed=seed)
        else:
            self._nni = Random(seed=seed)
        self._cv = threading.Condition()
        self._demand = 0  # asks waiting for a proposal
        self._proposals: deque[Point] = deque()  # proposed, not yet returned by ask
        self._pending: dict[Point, deque[Any]] = {}  # asked, not yet told: the NNI models
        self._results: deque[tuple[Any, Values | None]] = deque()  # told, not yet dispatched to NNI
        self._known: dict[Point, Values | None] = {}  # told without being asked (replayed history)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._done = False

    # ------------------------------------------------------------------------------ ask/tell
    def ask(self) -> Point:
        with self._cv:
            if self._closed:
                raise RuntimeError(f"{self.name}: the strategy is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run_nni, name=f"litenas-{self.name}", daemon=True)
                self._thread.start()
            self._demand += 1
            self._cv.notify_all()
            while not self._proposals and not self._done:
                self._cv.wait()
            if self._proposals:
                return self._proposals.popleft()
            self._demand -= 1
        if self._error is not None:
            raise RuntimeError(f"{self.name}: the NNI strategy failed: {self._error!r}") from self._error
        raise RuntimeError(f"{self.name}: the NNI strategy stopped proposing (it found no new candidate)")

    def tell(self, point: Sequence[int], values: Sequence[float] | None) -> None:
        vals = self._check_values(values)
        point = tuple(int(i) for i in point)
        with self._cv:
            models = self._pending.get(point)
            if models:
                self._results.append((models.popleft(), vals))
                if not models:
                    del self._pending[point]
                self._cv.notify_all()
            else:  # not asked (a replayed history): answered when NNI proposes it
                self._known[point] = vals

    def close(self) -> None:
        """Stop the NNI thread (its engine reports no budget left) and wait for it."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)

    # ------------------------------------------------------------------------------ NNI side
    @property
    def open(self) -> bool:
        """Whether the search still takes proposals (the NNI engine's budget)."""
        return not self._closed

    def _run_nni(self) -> None:
        from nas.interop.nni_engine import AskTellEngine

        try:
            self._nni(self._model_space, AskTellEngine(self))
        except BaseException as exc:  # noqa: BLE001 - reported to the asking thread
            self._error = exc
        finally:
            with self._cv:
                self._done = True
                self._cv.notify_all()

    def point_of(self, sample: dict[str, Any]) -> Point:
        """The space point of an NNI sample."""
        from nas.interop.nni_space import indices_from_sample

        return self.view.point(indices_from_sample(self.view, sample))

    def propose(self, model: Any) -> tuple[bool, Values | None]:
        """Take an NNI model: answered at once from the replayed history (``True``, its values),
        or handed to a waiting :meth:`ask` (``False``; its result comes from :meth:`next_results`)."""
        point = self.point_of(model.sample)
        with self._cv:
            if point in self._known:
                return True, self._known.pop(point)
            self._demand -= 1
            self._proposals.append(point)
            self._pending.setdefault(point, deque()).append(model)
            self._cv.notify_all()
            return False, None

    def next_results(self) -> tuple[list[tuple[Any, Values | None]], bool]:
        """Block until there are told results to dispatch, an ask waiting, or the search closes;
        return the results (to dispatch first) and whether a worker (an ask) is idle."""
        with self._cv:
            while not (self._results or self._demand > 0 or self._closed):
                self._cv.wait()
            results = list(self._results)
            self._results.clear()
            return results, self._demand > 0 and not self._closed


def _nni_factory(kind: str) -> Callable[[SearchSpace, int, StrategyConfig], NNIStrategy]:
    """The registered constructor of the NNI strategy ``kind``: without NNI installed, a
    ``ValueError`` saying how to install it."""
    def build(space: SearchSpace, n_objectives: int, config: StrategyConfig) -> NNIStrategy:
        try:  # imports NNI, an optional extra
            return NNIStrategy(space, kind=kind, seed=config.seed, n_objectives=n_objectives,
                               population=config.population, sample_size=config.sample_size)
        except ImportError as exc:
            raise ValueError(f"strategy {kind!r}: {exc}") from exc
    return build


for _kind in NNI_STRATEGIES:
    register_strategy(_kind, _nni_factory(_kind), multi_objective=NNIStrategy.multi_objective)
