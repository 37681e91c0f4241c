"""The registry of score evaluators: what ranks a search's candidates (``--evaluator``).

Each score evaluator's module registers it under its ``--evaluator`` name with a constructor
from :class:`ScoreSettings` (the part of a search's configuration that score evaluators read), as
op modules register ops and strategies register themselves; the search layer builds one with
:func:`make_scorer` and lists them with :func:`scorer_names`, knowing none of them by name.
Importing :mod:`evaluators` registers every shipped one: ``proxy`` (a zero-cost proxy),
``train`` (short training), ``predictor`` (a fitted accuracy predictor), ``supernet``
(inherited weights of a one-shot supernet).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from evaluators.base import Evaluator
from evaluators.datasets import Dataset

__all__ = ["ScoreSettings", "Scorer", "register_scorer", "scorer_names", "get_scorer", "make_scorer"]


@dataclass(frozen=True)
class ScoreSettings:
    """What a score evaluator may read of a search's configuration (each takes what it uses).

    Attributes:
        space: the search space's name.
        data: the dataset candidates are ranked on (``None``: data-free).
        resolution: the candidates' input size (``None``: the data's).
        device: where candidates run (``cpu``, ``cuda``, ``cuda:N``).
        check_device: whether the device must be on this machine now (in-process searches; Ray
            workers check their own).
        threads: CPU threads of an evaluation.
        batch_size: minibatch of proxies, training and BatchNorm re-calibration.
        seed: seeds every random decision.
        proxy: the zero-cost proxy (``proxy``).
        train_epochs: epochs of short training (``train``).
        predictor: the fitted predictor's file (``predictor``).
        supernet: the trained supernet's checkpoint (``supernet``).
    """

    space: str
    data: Dataset | None
    resolution: int | None = None
    device: str = "cpu"
    check_device: bool = True
    threads: int | None = None
    batch_size: int = 64
    seed: int = 0
    proxy: str = "naswot"
    train_epochs: int = 1
    predictor: str | None = None
    supernet: str | None = None


@dataclass(frozen=True)
class Scorer:
    """One registered score evaluator: its name, constructor and a one-line description."""

    name: str
    build: Callable[[ScoreSettings], Evaluator]
    summary: str


_SCORERS: dict[str, Scorer] = {}


def register_scorer(name: str, build: Callable[[ScoreSettings], Evaluator], summary: str) -> None:
    """Register a score evaluator under ``name`` (a second registration of a name is an error)."""
    if name in _SCORERS:
        raise ValueError(f"score evaluator {name!r} is registered twice")
    _SCORERS[name] = Scorer(name, build, summary)


def scorer_names() -> tuple[str, ...]:
    """The registered names, in registration order."""
    return tuple(_SCORERS)


def get_scorer(name: str) -> Scorer:
    """The registration of ``name``; ``ValueError`` naming the known ones."""
    try:
        return _SCORERS[name]
    except KeyError:
        raise ValueError(f"evaluator must be one of {', '.join(_SCORERS)}, got {name!r}") from None


def make_scorer(name: str, settings: ScoreSettings) -> Evaluator:
    """The score evaluator ``name`` configured by ``settings``."""
    return get_scorer(name).build(settings)
