"""Strategy lookup by name (``random``, ``evolution``, ``tpe``, ``nsga2``, and with the
``litenas[nni]`` extra ``nni-evolution``, ``nni-random``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nas.search.evolution import RegularizedEvolution
from nas.search.nni_strategies import NNI_STRATEGIES, NNIStrategy
from nas.search.optuna_strategies import NSGA2, TPE
from nas.search.random_search import RandomSearch
from nas.search.strategy import Strategy
from search_spaces.space import SearchSpace

if TYPE_CHECKING:  # config lists these names; a run-time import would be a cycle
    from nas.search.config import SearchConfig

STRATEGIES: dict[str, type[Strategy]] = {  # the ask/tell strategies of litenas itself
    "random": RandomSearch,
    "evolution": RegularizedEvolution,
    "tpe": TPE,
    "nsga2": NSGA2,
}


def make_strategy(config: SearchConfig, space: SearchSpace, n_objectives: int) -> Strategy:
    """The strategy ``config.strategy`` over ``space``, seeded with ``config.seed``."""
    name = config.strategy
    if name in NNI_STRATEGIES:
        try:  # imports NNI, an optional extra
            return NNIStrategy(space, kind=name, seed=config.seed, n_objectives=n_objectives,
                               population=config.population, sample_size=config.sample_size)
        except ImportError as exc:
            raise ValueError(f"strategy {name!r}: {exc}") from exc
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join([*STRATEGIES, *NNI_STRATEGIES])}")
    if name == "evolution":
        return RegularizedEvolution(space, seed=config.seed, n_objectives=n_objectives,
                                    population=config.population, sample_size=config.sample_size)
    if name == "nsga2":
        return NSGA2(space, seed=config.seed, n_objectives=n_objectives, population=config.population)
    return STRATEGIES[name](space, seed=config.seed, n_objectives=n_objectives)
