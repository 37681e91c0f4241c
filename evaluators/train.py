"""Accuracy by training: train a candidate for a fixed budget, report top-1 on a held-out split.

The training itself is :class:`~evaluators.training.engine.Trainer`, the same loop as ``nas
train``; the recipe is :class:`~evaluators.training.recipe.TrainConfig` (its docstring cites each
ingredient). A run is deterministic given :attr:`TrainConfig.seed`, the execution plan and the
thread count; the caller's global RNG state is left untouched. A loss that becomes NaN or infinite
stops the run with :class:`Diverged`, which :class:`TrainedAccuracy` turns into a failed result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from evaluators.base import BaseEvaluator, Metric
from evaluators.datasets import Dataset
from evaluators.scorers import ScoreSettings, register_scorer
from evaluators.training.engine import Diverged, Trainer
from evaluators.training.plan import ExecutionPlan, plan_for
from evaluators.training.recipe import TrainConfig
from evaluators.training.sources import InMemoryBatches
from nas.arch import Arch
from nas.builder import LiteNet, build_model
from nas.runtime import check_threads, resolve_device

__all__ = ["TrainConfig", "TrainOutcome", "Diverged", "TrainedAccuracy", "check_compatible", "build_seeded",
           "train_and_evaluate"]


@dataclass(frozen=True)
class TrainOutcome:
    """What a training run gives: held-out top-1 and top-5 (percent) and loss, the mean training
    loss of the last epoch, the loss curve (mean per epoch), the number of steps and the wall time."""

    top1: float
    top5: float
    test_loss: float
    train_loss: float
    loss_curve: tuple[float, ...]
    steps: int
    seconds: float


def check_compatible(arch: Arch, data: Dataset) -> None:
    """Raise ``ValueError`` unless ``arch`` takes ``data``'s images and predicts its classes."""
    shape = data.train.images.shape[1:]
    if (arch.resolution, arch.resolution, arch.in_chans) != shape:
        raise ValueError(f"the architecture takes {arch.resolution}x{arch.resolution}x{arch.in_chans} inputs, "
                         f"dataset {data.name!r} has {shape[0]}x{shape[1]}x{shape[2]} images; "
                         f"use arch.replace(resolution={shape[0]}, in_chans={shape[2]})")
    if arch.num_classes != data.num_classes:
        raise ValueError(f"the architecture predicts {arch.num_classes} classes, dataset {data.name!r} has "
                         f"{data.num_classes}; use arch.replace(num_classes={data.num_classes})")


def build_seeded(arch: Arch, seed: int) -> LiteNet:
    """``build_model(arch)`` initialised from ``torch.manual_seed(seed)``, leaving the caller's
    global RNG state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(arch)


def train_and_evaluate(arch: Arch, data: Dataset, config: TrainConfig, *, plan: ExecutionPlan | None = None,
                       progress: bool = True) -> TrainOutcome:
    """Train a fresh model of ``arch`` on ``data.train`` and measure it on ``data.test`` (the plan
    defaults to :func:`plan_for` on the CPU)."""
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    check_compatible(arch, data)
    plan = plan or plan_for("cpu")
    start = time.perf_counter()
    source = InMemoryBatches(data, device=plan.device, seed=config.seed, crop_padding=config.crop_padding,
                             flip=config.flip)
    trainer = Trainer(build_seeded(arch, config.seed), source, config, plan, progress=progress,
                      desc=f"train {arch.hash()}")
    records = trainer.fit(evaluate="last")
    test = records[-1].test
    curve = tuple(round(r.train_loss, 5) for r in records)
    return TrainOutcome(test["top1"], test["top5"], test["loss"], curve[-1], curve, trainer.total_steps,
                        time.perf_counter() - start)


class TrainedAccuracy(BaseEvaluator):
    """``top1`` (percent, higher is better) after training with a :class:`TrainConfig` on a
    :class:`~evaluators.datasets.Dataset`'s train split, measured on its test split (use
    :meth:`Dataset.holdout` to search without touching the real test set).

    ``device``, ``precision``, ``memory_format`` and ``threads`` are resolved by :func:`plan_for`
    where the evaluation runs (so a Ray task with a GPU assigned trains on it); the resolved plan is
    recorded in the result's info. The cache key holds the requested settings.
    """

    name = "train"
    metrics = (Metric("top1", "max", "%", "top-1 accuracy on the held-out split after training"),)

    def __init__(self, data: Dataset, config: TrainConfig, *, device: str | torch.device = "cpu",
                 precision: str = "auto", memory_format: str = "auto", threads: int | None = None,
                 progress: bool = True):
        if not isinstance(data, Dataset):
            raise ValueError(f"data must be a Dataset, got {type(data).__name__}")
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.data = data
        self.train_config = config
        self.device = torch.device(device)
        self.precision, self.memory_format = precision, memory_format
        self.threads = check_threads(threads)
        self.progress = progress

    def plan(self) -> ExecutionPlan:
        """The execution plan on this machine (``ValueError`` if the device is not here)."""
        return plan_for(self.device, precision=self.precision, memory_format=self.memory_format,
                        threads=self.threads, resolution=self.data.resolution)

    @classmethod
    def from_settings(cls, s: ScoreSettings) -> TrainedAccuracy:
        """``--evaluator train``: ``train_epochs`` of the training loop of ``nas train`` on the
        search's device (one on this machine, checked now, for an in-process search)."""
        if s.check_device:
            resolve_device(s.device, what="device")
        if s.data is None:
            raise ValueError("data: the train evaluator needs a dataset (a path or 'synthetic'), not 'none'")
        return cls(s.data, TrainConfig(epochs=s.train_epochs, batch_size=s.batch_size, seed=s.seed), device=s.device,
                   threads=s.threads, progress=False)

    def config(self) -> dict[str, Any]:
        return {"data": self.data.describe(), "train": self.train_config.to_dict(), "device": self.device.type,
                "precision": self.precision, "memory_format": self.memory_format, "engine": 2}

    def check(self, arch: Arch) -> None:
        super().check(arch)
        check_compatible(arch, self.data)

    def compute(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        plan = self.plan()
        out = train_and_evaluate(arch, self.data, self.train_config, plan=plan, progress=self.progress)
        return {"top1": out.top1}, {"plan": plan.describe(), "top5": out.top5, "test_loss": out.test_loss, "train_loss": out.train_loss,
                                    "loss_curve": list(out.loss_curve), "steps": out.steps}


register_scorer("train", TrainedAccuracy.from_settings, "top-1 after short training (--train-epochs)")
