"""Regularized (aging) evolution (Real et al., "Regularized Evolution for Image Classifier
Architecture Search", AAAI 2019).

Keep a population of the ``population`` most recent successful candidates. Until it is full, ask
random points; then draw ``sample_size`` members uniformly, mutate the best of them (one choice
changed, :meth:`~search_spaces.space.SearchSpace.mutate_point`), and when a result comes back,
add it and drop the *oldest* member (not the worst): aging regularises against lucky evaluations.
Asks may be outstanding while results arrive (asynchronous workers), as in the paper's
distributed setting.

One departure, for constrained searches: when ``population`` proposals in a row have failed or
broken a constraint while the population is still filling, random points are evidently rarely
feasible (a tight latency budget), so the tournament starts over the members there are (at least
one: e.g. a warm-start architecture, ``start_from``) instead of drawing more random points. A
search whose random points are feasible never meets this rule and runs as in the paper.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from nas.checks import is_int
from nas.search.strategy import Strategy, StrategyConfig, Values, register_strategy
from search_spaces.space import Point, SearchSpace


class RegularizedEvolution(Strategy):
    """Aging evolution with tournament selection; see the module docstring."""

    name = "evolution"

    def __init__(self, space: SearchSpace, *, seed: int = 0, n_objectives: int = 1, population: int = 50,
                 sample_size: int = 10):
        super().__init__(space, seed=seed, n_objectives=n_objectives)
        if not is_int(population) or population < 2:
            raise ValueError(f"evolution: population must be an integer >= 2, got {population!r}")
        if not is_int(sample_size) or not 1 <= sample_size <= population:
            raise ValueError(f"evolution: sample_size must be an integer in [1, population], got {sample_size!r}")
        self.population_size = population
        self.sample_size = sample_size
        self.population: deque[tuple[Point, float]] = deque()
        self._pending = 0
        self._failed_in_a_row = 0

    @classmethod
    def from_config(cls, space: SearchSpace, n_objectives: int, config: StrategyConfig) -> RegularizedEvolution:
        return cls(space, seed=config.seed, n_objectives=n_objectives, population=config.population,
                   sample_size=config.sample_size)

    def ask(self) -> Point:
        filling = len(self.population) + self._pending < self.population_size or len(self.population) < self.sample_size
        random_is_fruitless = bool(self.population) and self._failed_in_a_row >= self.population_size
        if filling and not random_is_fruitless:
            self._pending += 1
            return self.space.sample_point(self.rng)
        k = min(self.sample_size, len(self.population))
        members = [self.population[int(i)] for i in self.rng.choice(len(self.population), k, replace=False)]
        parent = max(members, key=lambda m: m[1])[0]
        try:
            return self.space.mutate_point(parent, self.rng)
        except ValueError:  # a parent with no valid single-choice neighbour: explore instead
            return self.space.sample_point(self.rng)

    def tell(self, point: Point, values: Sequence[float] | None) -> None:
        vals: Values | None = self._check_values(values)
        if self._pending:
            self._pending -= 1
        if vals is None:
            self._failed_in_a_row += 1
            return
        self._failed_in_a_row = 0
        self.population.append((tuple(point), vals[0]))
        while len(self.population) > self.population_size:
            self.population.popleft()


register_strategy(RegularizedEvolution.name, RegularizedEvolution.from_config,
                  multi_objective=RegularizedEvolution.multi_objective)
