"""Evaluators: how good an architecture is, as named metrics with a direction.

An :class:`Evaluator` maps an :class:`~nas.arch.Arch` to a :class:`Result` (metrics, or a failure
with its reason); evaluators compose (:class:`Composite`) and are cached on disk by the
architecture hash plus their configuration (:class:`Cached`, :class:`JsonCache`).

Shipped: :class:`ComplexityEvaluator` (params, MACs), :class:`MeasuredLatency` and
:class:`TableLatency`, :class:`TrainedAccuracy` (short training on a :class:`Dataset`) and
:class:`ZeroCostProxies` (synflow, NASWOT, grad-norm, SNIP). Example::

    from evaluators import (ComplexityEvaluator, Composite, JsonCache, TableLatency, TrainConfig,
                            TrainedAccuracy, load_dataset)

    data = load_dataset("cifar10-jpg.tar.gz").subset(train_per_class=1000)
    score = Composite([ComplexityEvaluator(), TableLatency("table.json"),
                       TrainedAccuracy(data.holdout(100), TrainConfig(epochs=5))],
                      cache=JsonCache("runs/cache"))
    result = score(arch)  # result.ok, result.metrics["top1"], result.reason
"""

from evaluators.base import BaseEvaluator, Composite, Direction, Evaluator, Metric, Result
from evaluators.cache import Cached, JsonCache, ResultCache
from evaluators.complexity import ComplexityEvaluator
from evaluators.datasets import Dataset, ImageSet, extract_archive, load_dataset, synthetic
from evaluators.latency import MeasuredLatency, TableLatency
from evaluators.proxies import ZeroCostProxies, kendall_tau
from evaluators.train import TrainConfig, TrainedAccuracy

__all__ = [
    "BaseEvaluator",
    "Cached",
    "ComplexityEvaluator",
    "Composite",
    "Dataset",
    "Direction",
    "Evaluator",
    "ImageSet",
    "JsonCache",
    "MeasuredLatency",
    "Metric",
    "Result",
    "ResultCache",
    "TableLatency",
    "TrainConfig",
    "TrainedAccuracy",
    "ZeroCostProxies",
    "extract_archive",
    "kendall_tau",
    "load_dataset",
    "synthetic",
]
