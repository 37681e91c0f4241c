"""Strategy lookup by name (``random``, ``evolution``, ``tpe``, ``nsga2``, and with the
``litenas[nni]`` extra ``nni-evolution``, ``nni-random``)."""

from __future__ import annotations

from nas.search.evolution import RegularizedEvolution
from nas.search.nni_strategies import NNI_STRATEGIES, NNIStrategy
from nas.search.optuna_strategies import NSGA2, TPE
from nas.search.random_search import RandomSearch
from nas.search.strategy import Strategy
from search_spaces.space import SearchSpace

STRATEGIES: dict[str, type[Strategy]] = {  # the ask/tell strategies of litenas itself
    "random": RandomSearch,
    "evolution": RegularizedEvolution,
    "tpe": TPE,
    "nsga2": NSGA2,
}


def make_strategy(name: str, space: SearchSpace, n_objectives: int, *, seed: int, population: int,
                  sample_size: int) -> Strategy:
    """The strategy called ``name`` over ``space``, seeded with ``seed`` (``population`` and
    ``sample_size`` for the strategies that take them)."""
    if name in NNI_STRATEGIES:
        try:  # imports NNI, an optional extra
            return NNIStrategy(space, kind=name, seed=seed, n_objectives=n_objectives,
                               population=population, sample_size=sample_size)
        except ImportError as exc:
            raise ValueError(f"strategy {name!r}: {exc}") from exc
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join([*STRATEGIES, *NNI_STRATEGIES])}")
    if name == "evolution":
        return RegularizedEvolution(space, seed=seed, n_objectives=n_objectives, population=population,
                                    sample_size=sample_size)
    if name == "nsga2":
        return NSGA2(space, seed=seed, n_objectives=n_objectives, population=population)
    return STRATEGIES[name](space, seed=seed, n_objectives=n_objectives)
