"""The ask/tell strategies of ``nas search``: importing this module registers every one
(``random``, ``evolution``, ``tpe``, ``nsga2``, and with the ``litenas[nni]`` extra
``nni-evolution``, ``nni-random``) with :func:`nas.search.strategy.register_strategy`; each
strategy's own module registers it, with its ``from_config`` constructor, as op modules
register ops.
"""

from __future__ import annotations

from nas.search import evolution, nni_strategies, optuna_strategies, random_search  # noqa: F401  (registration)
from nas.search.strategy import is_multi_objective, make_strategy, strategy_names

__all__ = ["is_multi_objective", "make_strategy", "strategy_names"]
