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

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from evaluators.base import Evaluator
from evaluators.datasets import Dataset
from nas.settings import Component, setting

__all__ = ["EvaluatorConfig", "ScoreSettings", "Scorer", "register_scorer", "scorer_names", "get_scorer", "make_scorer"]


@dataclass(frozen=True)
class EvaluatorConfig(Component):
    """How good a search's candidates are: the score evaluator, the data it ranks on and where it
    runs. Keys left unset (``None``) are resolved by the search's configuration from the others and
    the shipped data (see each key's help)."""

    title: ClassVar[str] = "how good a candidate is"

    name: str | None = setting(
        None,
        "proxy (zero-cost, seconds) | train (short training) | predictor (an accuracy predictor fitted on"
        " trained networks, milliseconds; see `nas predictor`) | supernet (inherited weights of a trained"
        " supernet; see `nas supernet`) (default: the one --predictor, --supernet or --proxy/--data "
        "imply; with none of them, predictor when a shipped predictor covers --space, else proxy)", key="evaluator")
    proxy: str | None = setting(
        None, "zero-cost proxy for --evaluator proxy: naswot | synflow | grad_norm | snip (default: naswot)")
    predictor: str | None = setting(
        None,
        "accuracy predictor for --evaluator predictor: a file (`nas predictor fit`) or a shipped name "
        "(`nas predictor list`) (default: the shipped predictor of --space at --resolution)")
    supernet: str | None = setting(
        None,
        "`nas supernet train` directory for --evaluator supernet: candidates are scored by inherited "
        "weights after BatchNorm re-calibration, and the search runs over the supernet's part of the "
        "space")
    data: str | None = setting(
        None,
        "'none' (data-free proxies: synflow), 'synthetic' (random images: smoke tests only), or a dataset"
        " path (image folders, .tar.gz, CIFAR pickles, Fashion-MNIST) (default: none with --evaluator "
        "predictor, which reads no images, else synthetic)")
    train_epochs: int = setting(1, "epochs per candidate with --evaluator train", range=(1, True, math.inf))
    train_per_class: int | None = setting(
        500, "training images per class taken from the dataset (after the held-out split)", range=(1, True, math.inf))
    test_per_class: int | None = setting(
        None,
        "images per class split off the training set to rank candidates (the test set is never used by a "
        "search; with --evaluator supernet, drawn from the images it held out) (default: a tenth of the "
        "smallest class)", range=(1, True, math.inf))
    batch_size: int = setting(64, "minibatch size (proxy batch, training batch)", range=(1, True, math.inf))
    threads: int | None = setting(1, "torch CPU threads per evaluation", volatile=True, range=(1, True, math.inf))
    device: str | None = setting(
        None,
        "torch device of every evaluation and of a fbnet/proxyless supernet: cpu | cuda | cuda:N | mps "
        "(default: cuda when --num-gpus > 0 under --executor ray, else cpu)", volatile=True)

    @property
    def data_free(self) -> bool:
        """Whether the evaluator reads no images (the predictor; the SynFlow proxy)."""
        return self.name == "predictor" or (self.name == "proxy" and self.proxy == "synflow")


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
