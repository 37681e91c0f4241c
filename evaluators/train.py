"""Accuracy by training: train a candidate for a fixed budget, report top-1 on a held-out split.

The recipe is the standard one for small-image classification:

- SGD with momentum 0.9 and Nesterov updates (Sutskever et al., "On the importance of
  initialization and momentum in deep learning", ICML 2013), weight decay on conv/linear weights
  only (not on BatchNorm parameters or biases);
- linear warm-up then cosine decay per step (Goyal et al., "Accurate, Large Minibatch SGD", 2017;
  Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017);
- label smoothing 0.1 (Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016);
- random crop with zero padding and random horizontal flip.

A run is deterministic given :attr:`TrainConfig.seed` (and the thread count on CPU): the
initialisation, the shuffling and the augmentation draw from seeded generators, and the caller's
global RNG state is left untouched. A loss that becomes NaN or infinite stops the run with
:class:`Diverged`, which :class:`TrainedAccuracy` turns into a failed result.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from evaluators.base import BaseEvaluator, Metric
from evaluators.datasets import Dataset, normalise
from evaluators.runtime import fixed_threads
from nas.arch import Arch
from nas.builder import build_model

__all__ = ["TrainConfig", "TrainOutcome", "Diverged", "TrainedAccuracy", "check_compatible", "augment",
           "train_and_evaluate"]


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """A training budget and recipe. Give exactly one of ``epochs`` and ``steps``.

    ``lr`` is the peak learning rate reached after ``warmup_fraction`` of the steps. ``threads``
    fixes torch's CPU thread count during the run (``None`` leaves it).
    """

    epochs: int | None = None
    steps: int | None = None
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.05
    label_smoothing: float = 0.1
    crop_padding: int = 4
    flip: bool = True
    seed: int = 0
    eval_batch_size: int = 500
    threads: int | None = None

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError(f"give exactly one of epochs and steps (got epochs={self.epochs}, steps={self.steps})")
        for name in ("epochs", "steps", "batch_size", "eval_batch_size", "threads"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        for name, lo, hi in (("lr", 0.0, math.inf), ("momentum", 0.0, 1.0), ("weight_decay", 0.0, math.inf),
                             ("warmup_fraction", 0.0, 1.0), ("label_smoothing", 0.0, 1.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v < hi or (name == "lr" and v == 0):
                raise ValueError(f"{name} must be a number in [{lo}, {hi}){' and > 0' if name == 'lr' else ''}, got {v!r}")
        if isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            raise ValueError(f"crop_padding must be an integer >= 0, got {self.crop_padding!r}")
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainOutcome:
    """What a training run gives: held-out top-1 (percent), the mean training loss of the last
    epoch, the loss curve (mean per epoch), the number of steps and the wall time."""

    top1: float
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


def augment(images: torch.Tensor, generator: torch.Generator, *, padding: int, flip: bool) -> torch.Tensor:
    """Random crop (zero padding ``padding``) and random horizontal flip of a ``(B, H, W, C)`` batch."""
    b, h, w, _ = images.shape
    if padding:
        padded = F.pad(images, (0, 0, padding, padding, padding, padding))
        oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(images.device)
        ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(images.device)
        rows = oy[:, None] + torch.arange(h, device=images.device)
        cols = ox[:, None] + torch.arange(w, device=images.device)
        images = padded[torch.arange(b, device=images.device)[:, None, None], rows[:, :, None], cols[:, None, :]]
    if flip:
        mask = (torch.rand(b, generator=generator) < 0.5).to(images.device)
        images = torch.where(mask[:, None, None, None], images.flip(2), images)
    return images


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


@torch.no_grad()
def _top1(model: nn.Module, data: Dataset, mean: tuple[float, ...], std: tuple[float, ...],
          batch_size: int, device: torch.device) -> float:
    model.eval()
    images = torch.from_numpy(data.test.images)
    labels = torch.from_numpy(data.test.labels)
    correct = 0
    for i in range(0, len(labels), batch_size):
        logits = model(normalise(images[i:i + batch_size].to(device), mean, std))
        if not torch.isfinite(logits).all():
            raise Diverged("the trained network outputs non-finite logits")
        correct += int((logits.argmax(1).cpu() == labels[i:i + batch_size]).sum())
    return 100.0 * correct / len(labels)


def train_and_evaluate(arch: Arch, data: Dataset, config: TrainConfig, *, device: str | torch.device = "cpu",
                       progress: bool = True) -> TrainOutcome:
    """Train a fresh model of ``arch`` on ``data.train`` and measure top-1 on ``data.test``."""
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    check_compatible(arch, data)
    dev = torch.device(device)
    start = time.perf_counter()
    n = len(data.train)
    batch = min(config.batch_size, n)
    per_epoch = n // batch
    total = config.steps if config.steps is not None else config.epochs * per_epoch
    warmup = round(config.warmup_fraction * total)
    mean, std = data.mean_std
    with fixed_threads(config.threads), torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(config.seed)
        model = build_model(arch).to(dev)
        gen = torch.Generator().manual_seed(config.seed)
        images = torch.from_numpy(data.train.images).to(dev)
        labels = torch.from_numpy(data.train.labels).to(dev)
        opt = torch.optim.SGD(_param_groups(model, config.weight_decay), lr=config.lr, momentum=config.momentum,
                              nesterov=config.nesterov)
        curve: list[float] = []
        epoch_loss, epoch_steps = 0.0, 0
        model.train()
        bar = tqdm(range(total), desc=f"train {arch.hash()}", unit="step", disable=not progress, leave=False)
        for step in bar:
            if step % per_epoch == 0:
                order = torch.randperm(n, generator=gen).to(dev)
            idx = order[(step % per_epoch) * batch:(step % per_epoch + 1) * batch]
            x = normalise(augment(images[idx], gen, padding=config.crop_padding, flip=config.flip), mean, std)
            lr = _lr_at(step, total, warmup, config.lr)
            for g in opt.param_groups:
                g["lr"] = lr
            loss = F.cross_entropy(model(x), labels[idx], label_smoothing=config.label_smoothing)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise Diverged(f"training loss is {value} at step {step} of {total} (lr {lr:.4g})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            epoch_loss += value
            epoch_steps += 1
            if epoch_steps == per_epoch or step == total - 1:
                curve.append(round(epoch_loss / epoch_steps, 5))
                epoch_loss, epoch_steps = 0.0, 0
            if step % 10 == 0:
                bar.set_postfix(loss=f"{value:.3f}", lr=f"{lr:.3g}")
        top1 = _top1(model, data, mean, std, config.eval_batch_size, dev)
    return TrainOutcome(top1, curve[-1], tuple(curve), total, time.perf_counter() - start)


class TrainedAccuracy(BaseEvaluator):
    """``top1`` (percent, higher is better) after training with a :class:`TrainConfig` on a
    :class:`~evaluators.datasets.Dataset`'s train split, measured on its test split (use
    :meth:`Dataset.holdout` to search without touching the real test set)."""

    name = "train"
    metrics = (Metric("top1", "max", "%", "top-1 accuracy on the held-out split after training"),)

    def __init__(self, data: Dataset, config: TrainConfig, *, device: str | torch.device = "cpu",
                 progress: bool = True):
        if not isinstance(data, Dataset):
            raise ValueError(f"data must be a Dataset, got {type(data).__name__}")
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.data = data
        self.train_config = config
        self.device = torch.device(device)
        self.progress = progress

    def config(self) -> dict[str, Any]:
        return {"data": self.data.describe(), "train": self.train_config.to_dict(), "device": self.device.type}

    def check(self, arch: Arch) -> None:
        super().check(arch)
        check_compatible(arch, self.data)

    def compute(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        out = train_and_evaluate(arch, self.data, self.train_config, device=self.device, progress=self.progress)
        return {"top1": out.top1}, {"train_loss": out.train_loss, "loss_curve": list(out.loss_curve),
                                    "steps": out.steps}
