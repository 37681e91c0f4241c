"""Random search: uniform samples of the space, the baseline every result is compared with
(Li & Talwalkar, "Random Search and Reproducibility for Neural Architecture Search", UAI 2019)."""

from __future__ import annotations

from collections.abc import Sequence

from nas.search.strategy import Strategy, register_strategy
from search_spaces.space import Point


class RandomSearch(Strategy):
    """Every ask is an independent uniform sample of the space's core values."""

    name = "random"
    multi_objective = True

    def ask(self) -> Point:
        return self.space.sample_point(self.rng)

    def tell(self, point: Point, values: Sequence[float] | None) -> None:
        self._check_values(values)


register_strategy(RandomSearch.name, RandomSearch.from_config, multi_objective=RandomSearch.multi_objective)
