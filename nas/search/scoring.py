"""The expensive evaluator of a search and the data it ranks on, from the search's configuration:
a zero-cost proxy, short training, an accuracy predictor or a supernet's inherited weights.

It sits in the search layer because it reads :class:`~nas.search.config.SearchConfig`; the
evaluators themselves (:mod:`evaluators`) know nothing of it: each registers a constructor from
:class:`~evaluators.scorers.ScoreSettings` (:mod:`evaluators.scorers`), which this module fills.
"""

from __future__ import annotations

from evaluators.base import Evaluator
from evaluators.datasets import Dataset, Holdout, load_dataset, synthetic
from evaluators.scorers import ScoreSettings, make_scorer
from evaluators.supernet import supernet_holdout
from nas.search.config import SearchConfig

SYNTHETIC_CLASSES = 10


def load_search_data(config: SearchConfig, resolution: int) -> Dataset | None:
    """The search's dataset: ``none`` (data-free proxies such as SynFlow), ``synthetic`` (for
    smoke runs and tests) or a dataset path (image folders, a ``.tar.gz`` of them, CIFAR pickles,
    Fashion-MNIST).

    From a real dataset the search ranks candidates on ``test_per_class`` images per class split
    off its *training* set (``None``: a tenth of the smallest class), training on
    ``train_per_class`` of the rest: selecting on the test set would make the test accuracy of
    what the search finds an optimistic, selected figure. With the supernet evaluator they are
    drawn from the images the supernet was trained without.
    """
    ev, seed = config.evaluator, config.strategy.seed
    if ev.data == "none":
        return None
    if ev.data == "synthetic":
        return synthetic(num_classes=SYNTHETIC_CLASSES, train_per_class=64, test_per_class=16,
                         resolution=resolution, seed=seed)
    data = load_dataset(ev.data)  # type: ignore[arg-type]  (resolved by SearchConfig)
    if data.num_classes < 2:
        raise ValueError(f"data: {ev.data} has {data.num_classes} class; ranking classifiers needs at least 2")
    held = supernet_holdout(ev.supernet) if ev.name == "supernet" else None  # type: ignore[arg-type]
    if held is None:
        try:
            data = Holdout(ev.test_per_class, seed).apply(data)
        except ValueError as exc:
            raise ValueError(f"test_per_class: {exc}; lower --test-per-class (data {ev.data})") from None
    else:  # rank on (some of) the images the supernet never trained on
        data = held.apply(data)
        if ev.test_per_class is not None and ev.test_per_class > held.per_class:
            raise ValueError(f"test_per_class: the supernet {ev.supernet} held out {held.per_class} images per "
                             f"class to rank on; {ev.test_per_class} would include images it trained on")
        if ev.test_per_class is not None and ev.test_per_class < held.per_class:
            data = data.subset(test_per_class=ev.test_per_class, seed=seed)
    if ev.train_per_class:
        try:
            data = data.subset(train_per_class=ev.train_per_class, seed=seed)
        except ValueError as exc:
            raise ValueError(f"train_per_class: {exc} (after --test-per-class images were held out); lower "
                             f"--train-per-class (data {ev.data})") from None
    return data


def make_score_evaluator(config: SearchConfig, data: Dataset | None, resolution: int | None = None) -> Evaluator:
    """The search's ``--evaluator``, built by its registration (:mod:`evaluators.scorers`) from
    the part of ``config`` score evaluators read; candidates run on the search's device (for an
    in-process search one that is not on this machine is a ``ValueError`` now rather than a
    failed candidate later)."""
    ev = config.evaluator
    return make_scorer(ev.name, ScoreSettings(  # type: ignore[arg-type]  (resolved by SearchConfig)
        space=config.space.name, data=data, resolution=resolution, device=config.evaluation_device,
        check_device=config.executor.kind == "inprocess", threads=ev.threads, batch_size=ev.batch_size,
        seed=config.strategy.seed, proxy=ev.proxy, train_epochs=ev.train_epochs, predictor=ev.predictor,  # type: ignore[arg-type]
        supernet=ev.supernet))
