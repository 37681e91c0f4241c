"""The ask/tell strategy interface.

A :class:`Strategy` proposes points of a :class:`~search_spaces.space.SearchSpace` (tuples of
choice indices) and is told their objective values; it never trains or times anything itself.
Contract (``tests/test_strategies.py`` runs it over every strategy):

- :meth:`Strategy.ask` returns a valid point of the space; several asks may be outstanding at
  once (asynchronous workers), each answered later by one :meth:`Strategy.tell`.
- :meth:`Strategy.tell` takes the objective values of a point (``None``: the candidate failed or
  broke a hard constraint). It also accepts points the strategy never asked for, which is how a
  resumed search replays its history.
- Objective values are always *maximised* (the runner negates minimised metrics), so every
  strategy reads them the same way; multi-objective strategies receive one value per objective.
- The same seed and the same sequence of tells give the same sequence of asks.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from nas.checks import is_int
from nas.settings import Component, setting
from search_spaces.space import Point, SearchSpace

__all__ = ["Strategy", "StrategyConfig", "Values", "register_strategy", "strategy_names", "make_strategy",
           "is_multi_objective"]

Values = tuple[float, ...]
"""Objective values of a point, every one to be maximised."""


@dataclass(frozen=True)
class StrategyConfig(Component):
    """How a search proposes candidates: the strategy, its budget and the settings each strategy
    reads of it (every one the seed, evolution the population and tournament size, NSGA-II the
    population). ``name`` left unset is resolved by the search's configuration."""

    title: ClassVar[str] = "how candidates are proposed"

    name: str | None = setting(
        None,
        "random | evolution | tpe | nsga2 (ask/tell) | fbnet | proxyless (differentiable, supernet) | "
        "nni-evolution | nni-random (NNI 3.0's, needs the litenas[nni] extra) (default: evolution for the"
        " reward objective, nsga2 for a Pareto front)", key="strategy")
    budget: int = setting(
        50, "number of candidates to evaluate (ask/tell strategies; fbnet/proxyless judge 1 + --dnas-samples)",
        volatile=True, range=(1, True, math.inf))
    time_limit_s: float | None = setting(
        None, "stop starting new evaluations after this many seconds", volatile=True, range=(0, False, math.inf))
    seed: int = setting(0, "seed of the strategy and evaluators", range=(0, True, 2**32 - 1))
    population: int = setting(20, "population size (evolution, nsga2)", range=(1, True, math.inf))
    sample_size: int = setting(5, "tournament size (evolution)", range=(1, True, math.inf))
    start_from: str | None = setting(
        None,
        "warm start: comma-separated zoo names or architecture files (JSON or string form), points of the"
        " space, that the search evaluates first; evolution then mutates the best of them (e.g. the fixed"
        " point a search should beat)")

    def check(self) -> None:
        if self.sample_size > self.population:
            raise ValueError(f"sample_size: the tournament ({self.sample_size}) cannot exceed the population "
                             f"({self.population})")


class Strategy(ABC):
    """Proposes points of ``space``; see the module docstring for the contract.

    Args:
        space: the search space.
        seed: seeds every random decision of the strategy.
        n_objectives: how many objective values each tell carries.
    """

    name: str = ""
    multi_objective: bool = False

    def __init__(self, space: SearchSpace, *, seed: int = 0, n_objectives: int = 1):
        if not isinstance(space, SearchSpace):
            raise ValueError(f"{self.name}: space must be a SearchSpace, got {type(space).__name__}")
        if not is_int(seed):
            raise ValueError(f"{self.name}: seed must be an integer, got {seed!r}")
        if n_objectives < 1 or (n_objectives > 1 and not self.multi_objective):
            raise ValueError(f"{self.name}: supports {'any number of objectives' if self.multi_objective else 'one objective'}, "
                             f"got {n_objectives}")
        self.space = space
        self.seed = seed
        self.n_objectives = n_objectives
        self.rng = np.random.default_rng(seed)

    @classmethod
    def from_config(cls, space: SearchSpace, n_objectives: int, config: StrategyConfig) -> Strategy:
        """The strategy configured by a search's ``config``; a strategy that takes more than the
        seed (a population, a tournament size) overrides this to read them."""
        return cls(space, seed=config.seed, n_objectives=n_objectives)

    @abstractmethod
    def ask(self) -> Point:
        """A point to evaluate next."""

    @abstractmethod
    def tell(self, point: Point, values: Sequence[float] | None) -> None:
        """The outcome of ``point``: its objective values (maximised), or ``None`` if it failed."""

    def close(self) -> None:  # noqa: B027 - a hook with nothing to do by default, not abstract
        """Release what the strategy holds (a thread, a connection); the runner calls it when the
        search ends. Nothing by default."""

    def _check_values(self, values: Sequence[float] | None) -> Values | None:
        if values is None:
            return None
        vals = tuple(float(v) for v in values)
        if len(vals) != self.n_objectives:
            raise ValueError(f"{self.name}: expected {self.n_objectives} objective value(s), got {len(vals)}")
        return vals


StrategyFactory = Callable[[SearchSpace, int, StrategyConfig], Strategy]


@dataclass(frozen=True)
class _Entry:
    build: StrategyFactory
    multi_objective: bool


_STRATEGIES: dict[str, _Entry] = {}


def register_strategy(name: str, build: StrategyFactory, *, multi_objective: bool) -> None:
    """Make ``build(space, n_objectives, config)`` the strategy called ``name`` (each strategy
    module registers its own, as ops do; a name registered twice is a programming error)."""
    if name in _STRATEGIES:
        raise ValueError(f"strategy {name!r} is already registered")
    _STRATEGIES[name] = _Entry(build, multi_objective)


def strategy_names() -> list[str]:
    """The registered ask/tell strategies, in registration order."""
    return list(_STRATEGIES)


def is_multi_objective(name: str) -> bool:
    """Whether the strategy ``name`` searches a Pareto front (more than one objective)."""
    return _entry(name).multi_objective


def make_strategy(name: str, space: SearchSpace, n_objectives: int, config: StrategyConfig) -> Strategy:
    """The strategy called ``name`` over ``space``; ``ValueError`` listing the known names for
    another one."""
    return _entry(name).build(space, n_objectives, config)


def _entry(name: str) -> _Entry:
    try:
        return _STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(_STRATEGIES)}") from None
