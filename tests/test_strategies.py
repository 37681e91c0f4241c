"""One contract suite over every strategy, plus evolution vs random and NSGA-II fronts."""

from __future__ import annotations

import numpy as np
import pytest

from nas.search.evolution import RegularizedEvolution
from nas.search.optuna_strategies import NSGA2, TPE
from nas.search.pareto import dominates, pareto_front
from nas.search.random_search import RandomSearch
from search_spaces.fbnet import FBNetSpace

SPACE = FBNetSpace(resolution=32, num_classes=10)

FACTORIES = {
    "random": lambda seed, n=1: RandomSearch(SPACE, seed=seed, n_objectives=n),
    "evolution": lambda seed, n=1: RegularizedEvolution(SPACE, seed=seed, population=10, sample_size=3),
    "tpe": lambda seed, n=1: TPE(SPACE, seed=seed),
    "nsga2": lambda seed, n=2: NSGA2(SPACE, seed=seed, n_objectives=n, population=8),
}


def matches(point, target) -> float:
    """Synthetic objective with a known optimum (1.0 at ``target``): the share of equal choices."""
    return float(np.mean([a == b for a, b in zip(point, target, strict=True)]))


TARGET = SPACE.sample_point(12345)


def values_for(strategy, point) -> tuple[float, ...]:
    v = matches(point, TARGET)
    return (v,) if strategy.n_objectives == 1 else (v, -float(sum(point)))


def drive(strategy, steps: int, fail_every: int = 0, batch: int = 1) -> list[tuple[int, ...]]:
    """Ask/tell ``steps`` points, ``batch`` outstanding at a time; every ``fail_every``-th fails."""
    asked = []
    while len(asked) < steps:
        points = [strategy.ask() for _ in range(min(batch, steps - len(asked)))]
        for p in points:
            asked.append(p)
            failed = fail_every and len(asked) % fail_every == 0
            strategy.tell(p, None if failed else values_for(strategy, p))
    return asked


@pytest.mark.parametrize("name", FACTORIES)
def test_asks_valid_points_of_the_space(name) -> None:
    strategy = FACTORIES[name](0)
    for p in drive(strategy, 30, batch=3):
        assert SPACE.is_valid(p)
        assert SPACE.encode(SPACE.decode(p)) == p


@pytest.mark.parametrize("name", FACTORIES)
def test_handles_failed_results(name) -> None:
    strategy = FACTORIES[name](1)
    points = drive(strategy, 30, fail_every=2)
    assert all(SPACE.is_valid(p) for p in points)
    # failures (no values) do not stall the strategy on a few points (the runner would drop repeats)
    assert len(set(points)) >= 25


@pytest.mark.parametrize("name", FACTORIES)
def test_same_seed_same_sequence(name) -> None:
    assert drive(FACTORIES[name](7), 25, batch=2) == drive(FACTORIES[name](7), 25, batch=2)
    assert drive(FACTORIES[name](7), 25) != drive(FACTORIES[name](8), 25)


@pytest.mark.parametrize("name", FACTORIES)
def test_tell_accepts_replayed_history(name) -> None:
    """A resumed run replays points the fresh strategy never asked for."""
    history = [SPACE.sample_point(i) for i in range(12)]
    strategy = FACTORIES[name](3)
    for p in history:
        strategy.tell(p, values_for(strategy, p))
    assert SPACE.is_valid(strategy.ask())


def test_wrong_number_of_values_is_rejected() -> None:
    strategy = RandomSearch(SPACE, seed=0)
    with pytest.raises(ValueError, match="objective value"):
        strategy.tell(strategy.ask(), (1.0, 2.0))
    with pytest.raises(ValueError, match="one objective"):
        RegularizedEvolution(SPACE, n_objectives=2)
    with pytest.raises(ValueError, match="sample_size"):
        RegularizedEvolution(SPACE, population=4, sample_size=5)


def best_after(strategy, budget: int) -> float:
    best = 0.0
    for _ in range(budget):
        p = strategy.ask()
        v = matches(p, TARGET)
        strategy.tell(p, (v,))
        best = max(best, v)
    return best


def test_regularized_evolution_beats_random_search() -> None:
    seeds = range(5)
    evo = [best_after(RegularizedEvolution(SPACE, seed=s, population=30, sample_size=8), 400) for s in seeds]
    rnd = [best_after(RandomSearch(SPACE, seed=s), 400) for s in seeds]
    # 22 layers of 9 choices: random search tops out near a third of the layers right.
    assert np.mean(evo) >= np.mean(rnd) + 0.25, (evo, rnd)
    assert min(evo) > max(rnd)


def test_nsga2_front_is_non_dominated() -> None:
    strategy = NSGA2(SPACE, seed=0, n_objectives=2, population=10)
    told = []
    for _ in range(60):
        p = strategy.ask()
        v = values_for(strategy, p)
        strategy.tell(p, v)
        told.append(v)
    front = pareto_front(told)
    assert front
    for i in front:
        assert not any(dominates(told[j], told[i]) for j in range(len(told)))
    optuna_front = {tuple(t.values) for t in strategy.study.best_trials}
    assert optuna_front == {told[i] for i in front}


@pytest.mark.parametrize("cls", [TPE, NSGA2])
def test_optuna_strategies_never_model_an_inactive_choice(cls) -> None:
    """On a conditional space only the active choices of a point are parameters of its trial,
    whether the strategy asked for it or was told it on resume; what it returns decodes."""
    from search_spaces.spaces import get_space

    space = get_space("mobile", resolution=32, num_classes=10)
    strategy = cls(space, seed=0) if cls is TPE else cls(space, seed=0, n_objectives=1, population=6)
    rng = np.random.default_rng(0)
    for _ in range(24):
        point = strategy.ask()
        assert space.is_valid(point)  # invalid combinations are failed inside ask(), never returned
        strategy.tell(point, (float(rng.random()),))
    strategy.tell(space.sample_point(7), (0.5,))  # replayed from a run's history
    trials = strategy.study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 25 and any(len(t.params) < len(space.choices) for t in trials)
    for t in trials:
        point = space.point_from_labels(t.params)
        assert set(t.params) == set(space.labels(point)), "a trial holds an inactive choice"


def test_evolution_mutates_a_told_seed_once_random_points_keep_failing() -> None:
    """A warm start under a tight constraint: one feasible member, random points all infeasible."""
    strategy = RegularizedEvolution(SPACE, seed=0, population=10, sample_size=3)
    seed = SPACE.sample_point(7)
    strategy.tell(seed, (1.0,))  # told, never asked (the runner's warm start)
    for _ in range(10):  # the population is filling: random points, all of them infeasible
        strategy.tell(strategy.ask(), None)
    child = strategy.ask()  # now the tournament runs over the one member there is
    assert sum(a != b for a, b in zip(child, seed, strict=True)) == 1
    strategy.tell(child, (0.5,))
    # a feasible result resets the count: the population goes on filling with random points
    assert sum(a != b for a, b in zip(strategy.ask(), seed, strict=True)) > 1


def test_strategies_register_themselves_and_read_their_settings() -> None:
    """Each strategy module registers its strategy (``from_config``), as op modules register ops;
    ``make_strategy`` builds from a search's :class:`StrategyConfig` what each one reads."""
    from nas.search.strategies import is_multi_objective, make_strategy, strategy_names
    from nas.search.strategy import StrategyConfig, register_strategy

    assert set(strategy_names()) == {"random", "evolution", "tpe", "nsga2", "nni-evolution", "nni-random"}
    assert sorted(n for n in strategy_names() if is_multi_objective(n)) == ["nsga2", "random"]
    settings = StrategyConfig(seed=3, population=12, sample_size=4)
    evo = make_strategy("evolution", SPACE, 1, settings)
    assert isinstance(evo, RegularizedEvolution) and (evo.seed, evo.population_size, evo.sample_size) == (3, 12, 4)
    nsga = make_strategy("nsga2", SPACE, 2, settings)
    assert isinstance(nsga, NSGA2) and nsga.population_size == 12
    assert make_strategy("tpe", SPACE, 1, settings).seed == 3
    with pytest.raises(ValueError, match="unknown strategy 'annealing'; known: .*evolution"):
        make_strategy("annealing", SPACE, 1, settings)
    with pytest.raises(ValueError, match="already registered"):
        register_strategy("random", RandomSearch.from_config, multi_objective=True)
