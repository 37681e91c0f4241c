"""Evaluators: how good an architecture is, as named metrics with a direction.

An :class:`Evaluator` maps an :class:`~nas.arch.Arch` to a :class:`Result` (metrics, or a failure
with its reason); evaluators compose (:class:`Composite`) and are cached on disk by the
architecture hash plus their configuration (:class:`Cached`, :class:`JsonCache`).

Shipped: :class:`ComplexityEvaluator` (params, MACs), :class:`MeasuredLatency` and
:class:`TableLatency`, :class:`TrainedAccuracy` (short training on a :class:`Dataset`, the loop of
``nas train``: :mod:`evaluators.training`), :class:`SupernetAccuracy` (inherited weights of a
one-shot supernet), :class:`PredictedAccuracy` (an accuracy predictor fitted on
:class:`TrainedNets`) and :class:`ZeroCostProxies` (synflow, NASWOT, grad-norm, SNIP). Example::

    from evaluators import (ComplexityEvaluator, Composite, JsonCache, TableLatency, TrainConfig,
                            TrainedAccuracy, load_dataset)

    data = load_dataset("cifar10-jpg.tar.gz").subset(train_per_class=1000)
    score = Composite([ComplexityEvaluator(), TableLatency("table.json"),
                       TrainedAccuracy(data.holdout(100), TrainConfig(epochs=5))],
                      cache=JsonCache("runs/cache"))
    result = score(arch)  # result.ok, result.metrics["top1"], result.reason
"""

from evaluators.base import BaseEvaluator, Direction, Evaluator, Metric, Result
from evaluators.cache import Cached, JsonCache, ResultCache
from evaluators.complexity import ComplexityEvaluator
from evaluators.composite import Composite
from evaluators.datasets import Dataset, ImageSet, extract_archive, load_dataset, synthetic
from evaluators.latency import MeasuredLatency, TableLatency
from evaluators.predictor import PredictedAccuracy, Predictor, fit_predictor
from evaluators.proxies import ZeroCostProxies
from evaluators.supernet import OneShotSupernet, SupernetAccuracy
from evaluators.train import TrainConfig, TrainedAccuracy
from evaluators.trained_nets import TrainedNet, TrainedNets

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
    "OneShotSupernet",
    "PredictedAccuracy",
    "Predictor",
    "Result",
    "ResultCache",
    "SupernetAccuracy",
    "TableLatency",
    "TrainConfig",
    "TrainedAccuracy",
    "TrainedNet",
    "TrainedNets",
    "ZeroCostProxies",
    "extract_archive",
    "fit_predictor",
    "load_dataset",
    "synthetic",
]
