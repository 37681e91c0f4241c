"""Strategies that delegate to Optuna samplers (Akiba et al., "Optuna", KDD 2019):

- ``tpe``: the Tree-structured Parzen Estimator (Bergstra et al., NeurIPS 2011), Optuna's
  ``TPESampler`` (multivariate, grouped so conditional choices are modelled jointly).
- ``nsga2``: NSGA-II (Deb et al., IEEE TEC 2002), Optuna's ``NSGAIISampler`` with its uniform
  crossover over the categorical choices, for Pareto searches (accuracy vs latency).

Each strategy keeps a private in-memory study and asks it define-by-run
(:meth:`~search_spaces.space.SearchSpace.suggest_point`): only the choices that are active at the
point being built become parameters, so on a conditional space (``mobile``, ``mnasnet``,
``hardnet``) the sampler never models a choice that had no effect. The runner keeps the durable
record separately (:mod:`nas.search.store`) and replays it into a resumed strategy through
:meth:`tell`, which accepts points it never asked for.
"""

from __future__ import annotations

import logging
import warnings
from abc import abstractmethod
from collections.abc import Sequence

import optuna
from optuna.trial import TrialState, create_trial

from nas.checks import is_int
from nas.search.strategy import Strategy, StrategyConfig, register_strategy
from search_spaces.space import Point, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)
logger = logging.getLogger(__name__)
_MAX_INVALID = 200  # invalid suggestions in a row before ask() gives up


class OptunaStrategy(Strategy):
    """Ask/tell over a private in-memory Optuna study with ``sampler``."""

    def __init__(self, space: SearchSpace, *, seed: int = 0, n_objectives: int = 1):
        super().__init__(space, seed=seed, n_objectives=n_objectives)
        self.distributions = space.optuna_distributions()
        self.study = optuna.create_study(directions=["maximize"] * n_objectives, sampler=self._sampler())
        self._asked: dict[Point, list[optuna.trial.Trial]] = {}

    @abstractmethod
    def _sampler(self) -> optuna.samplers.BaseSampler:
        """The Optuna sampler this strategy delegates to."""

    def ask(self) -> Point:
        """A valid point: a suggestion that does not decode (an invalid combination of a
        conditional space, e.g. a network that shrinks its feature map to nothing) is told to the
        sampler as a failed trial and asked again."""
        for _ in range(_MAX_INVALID):
            trial = self.study.ask()
            point = self.space.suggest_point(trial)
            if self.space.always_valid or self.space.is_valid(point):
                self._asked.setdefault(point, []).append(trial)
                return point
            self.study.tell(trial, state=TrialState.FAIL)
        raise RuntimeError(f"{self.name}: {_MAX_INVALID} suggestions in a row were invalid points of "
                           f"{self.space.name}")

    def tell(self, point: Point, values: Sequence[float] | None) -> None:
        vals = self._check_values(values)
        point = tuple(point)
        pending = self._asked.get(point)
        if pending:
            trial = pending.pop(0)
            if not pending:
                del self._asked[point]
            if vals is None:
                self.study.tell(trial, state=TrialState.FAIL)
            else:
                self.study.tell(trial, list(vals))
            return
        # A result from the run's history (resume): add it as a finished trial over its active
        # choices only, as ask() would have built it; a non-core value (a zoo point given as a
        # starting point) is outside the distributions and cannot be modelled, so it is skipped.
        params = self.space.labels(point)
        for name, label in params.items():
            if label not in self.distributions[name].choices:
                logger.debug("%s: not replaying a point with non-core value %s=%s", self.name, name, label)
                return
        state = TrialState.FAIL if vals is None else TrialState.COMPLETE
        self.study.add_trial(create_trial(params=params, distributions={n: self.distributions[n] for n in params},
                                          state=state, values=None if vals is None else list(vals)))


class TPE(OptunaStrategy):
    """Optuna's TPE sampler over the space's choices."""

    name = "tpe"

    def _sampler(self) -> optuna.samplers.BaseSampler:
        with warnings.catch_warnings():  # multivariate/group are "experimental" in Optuna, and long stable
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=self.seed, multivariate=True, group=True, n_startup_trials=10)


class NSGA2(OptunaStrategy):
    """Optuna's NSGA-II sampler: multi-objective, Pareto ranking with crowding distance."""

    name = "nsga2"
    multi_objective = True

    def __init__(self, space: SearchSpace, *, seed: int = 0, n_objectives: int = 2, population: int = 50):
        if not is_int(population) or population < 2:
            raise ValueError(f"nsga2: population must be an integer >= 2, got {population!r}")
        self.population_size = population
        super().__init__(space, seed=seed, n_objectives=n_objectives)

    @classmethod
    def from_config(cls, space: SearchSpace, n_objectives: int, config: StrategyConfig) -> NSGA2:
        return cls(space, seed=config.seed, n_objectives=n_objectives, population=config.population)

    def _sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.NSGAIISampler(population_size=self.population_size, seed=self.seed)


register_strategy(TPE.name, TPE.from_config, multi_objective=TPE.multi_objective)
register_strategy(NSGA2.name, NSGA2.from_config, multi_objective=NSGA2.multi_objective)
