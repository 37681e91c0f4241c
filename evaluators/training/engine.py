"""The training loop: one implementation behind ``nas train``, the search's train evaluator and
the benchmarks.

:class:`Trainer` trains any classification ``nn.Module`` on a
:class:`~evaluators.training.sources.BatchSource` with a
:class:`~evaluators.training.recipe.TrainConfig` under an
:class:`~evaluators.training.plan.ExecutionPlan` (device, autocast, channels_last, compile). It
knows nothing about files: :mod:`evaluators.training.job` adds checkpoints and a run directory.

Reproducibility: every epoch seeds its own generators (data order, augmentation, and the global
RNG that dropout draws from) from ``(seed, epoch)``, so the state after epoch ``e`` is a function
of the model, optimiser, scheduler, EMA and scaler states alone; :meth:`Trainer.state_dict`
holds exactly those, and a run resumed from it ends with the same weights as an uninterrupted run
(on the same device, threads and plan). The caller's global RNG state is left untouched.

A loss that becomes NaN or infinite stops the run with :class:`Diverged` naming the step and the
learning rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from evaluators.training.augment import cutout, trivial_augment
from evaluators.training.plan import ExecutionPlan
from evaluators.training.recipe import TrainConfig
from evaluators.training.sources import BatchSource, epoch_generator, epoch_seed
from nas.runtime import fixed_threads

__all__ = ["Diverged", "EpochRecord", "Trainer", "classifier_prefix", "lr_factor"]

_AUG_STREAM, _GLOBAL_STREAM = 1, 2  # epoch_seed streams (0 is the source's data order)


StepLoss = Callable[[Callable[[torch.Tensor], torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor]
"""A training step's loss from ``(forward, images, labels)``: the default is label-smoothed
cross-entropy of one forward; a supernet's sandwich rule runs several paths
(:func:`evaluators.supernet.sandwich_loss`)."""


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class EpochRecord:
    """What one epoch did: steps, mean training loss, learning rate at its end, wall time of the
    training steps, training throughput, and the test metrics (``top1``, ``top5`` in percent,
    ``loss``, and the evaluation's ``seconds``) if evaluated."""

    epoch: int
    steps: int
    train_loss: float
    lr: float
    seconds: float
    images_per_s: float
    test: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "steps": self.steps, "train_loss": round(self.train_loss, 6),
                "lr": self.lr, "seconds": round(self.seconds, 3), "images_per_s": round(self.images_per_s, 2),
                **{f"test_{k}": v for k, v in self.test.items()}}


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps to 1, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _grad_scaler(device: torch.device) -> Any:
    """A gradient scaler for fp16 autocast on ``device`` (``torch.amp`` since torch 2.3, the CUDA one
    before)."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device.type)
    return torch.cuda.amp.GradScaler()


def classifier_prefix(model: nn.Module) -> str:
    """State-dict prefix of the final classifier (a litenas network's ``head.classifier``)."""
    head = getattr(model, "head", None)
    if head is None or not isinstance(getattr(head, "classifier", None), nn.Module):
        raise ValueError(f"{type(model).__name__} has no head.classifier; freezing and backbone learning "
                         "rates need one")
    return "head.classifier."


class Trainer:
    """Trains ``model`` (moved to the plan's device and memory format) on ``source``; ``step_loss``
    replaces the cross-entropy of one forward pass (see :data:`StepLoss`).

    Attributes:
        steps_per_epoch, total_steps, epochs: the budget (``config.steps`` may end mid-epoch).
    """

    def __init__(self, model: nn.Module, source: BatchSource, config: TrainConfig, plan: ExecutionPlan, *,
                 progress: bool = False, desc: str = "train", step_loss: StepLoss | None = None):
        if not isinstance(config, TrainConfig):
            raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.config, self.plan, self.source = config, plan, source
        self.step_loss = step_loss
        self.progress, self.desc = progress, desc
        self.steps_per_epoch = source.steps_per_epoch(config.batch_size)
        if self.steps_per_epoch < 1:
            raise ValueError(f"dataset {source.name!r} has no training images")
        self.total_steps = config.steps if config.steps is not None else config.epochs * self.steps_per_epoch
        self.epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        self.model = model.to(plan.device, memory_format=plan.memory_format)
        self._frozen = self._freeze()
        self.optimizer = self._make_optimizer()
        warmup = round(config.warmup_fraction * self.total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, self.total_steps, warmup))
        self.ema = None if config.ema_decay is None else AveragedModel(
            self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
        self.scaler = _grad_scaler(plan.device) if plan.grad_scaler else None
        self.forward: Callable[[torch.Tensor], torch.Tensor] = torch.compile(self.model) if plan.compile \
            else self.model
        mean, std = source.mean_std
        self._mean = torch.tensor(mean, device=plan.device).view(1, -1, 1, 1)
        self._std = torch.tensor(std, device=plan.device).view(1, -1, 1, 1)
        self.step = 0

    # ------------------------------------------------------------------------------ set-up
    def _freeze(self) -> bool:
        if self.config.freeze == "none":
            return False
        prefix = classifier_prefix(self.model)
        for name, p in self.model.named_parameters():
            p.requires_grad_(name.startswith(prefix))
        return True

    def _make_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        scale_backbone = c.backbone_lr_scale != 1.0
        prefix = classifier_prefix(self.model) if scale_backbone else ""
        groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            decay = c.decay_norm_and_bias or p.ndim > 1
            backbone = scale_backbone and not name.startswith(prefix)
            groups.setdefault((decay, backbone), []).append(p)
        if not groups:
            raise ValueError("nothing to train: every parameter is frozen")
        params = [{"params": ps, "weight_decay": c.weight_decay if decay else 0.0,
                   "lr": c.lr * (c.backbone_lr_scale if backbone else 1.0)}
                  for (decay, backbone), ps in sorted(groups.items())]
        if c.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=c.lr, betas=(c.momentum, 0.999))
        return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, nesterov=c.nesterov)

    # ---------------------------------------------------------------------------- batches
    def prepare(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """uint8 ``(B, H, W, C)`` -> normalised float ``(B, C, H, W)`` in the plan's memory format,
        with the recipe's photometric augmentation when a ``generator`` is given (training)."""
        images = images.to(self.plan.device, non_blocking=True)
        if generator is not None and self.config.augment == "trivialaugment":
            images = trivial_augment(images, generator)
        x = images.permute(0, 3, 1, 2).float().div_(255.0).sub_(self._mean).div_(self._std)
        x = x.contiguous(memory_format=self.plan.memory_format)
        if generator is not None and self.config.cutout:
            x = cutout(x, generator, size=self.config.cutout)
        return x

    def _set_train_mode(self) -> None:
        if self._frozen:  # frozen layers keep their BatchNorm statistics and drop no units
            self.model.eval()
            self.model.get_submodule(classifier_prefix(self.model)[:-1]).train()
        else:
            self.model.train()

    # ------------------------------------------------------------------------------ train
    def train_epoch(self, epoch: int, bar: Any = None) -> EpochRecord:
        """Run epoch ``epoch`` (the steps of the budget that fall in it)."""
        c, plan = self.config, self.plan
        start = time.perf_counter()
        torch.manual_seed(epoch_seed(c.seed, epoch, _GLOBAL_STREAM))
        aug = epoch_generator(c.seed, epoch, _AUG_STREAM)
        self._set_train_mode()
        steps = min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)
        check_every = 1 if plan.device.type == "cpu" else 16
        total_loss = torch.zeros((), dtype=torch.float64, device=plan.device)
        window = torch.zeros((), dtype=torch.float64, device=plan.device)
        batches: Iterator[tuple[torch.Tensor, torch.Tensor]] = self.source.train_batches(epoch, c.batch_size)
        images_seen = 0
        for i, (images, labels) in zip(range(steps), batches, strict=False):
            x = self.prepare(images, aug)
            y = labels.to(plan.device, non_blocking=True)
            with plan.autocast():
                loss = (self.step_loss(self.forward, x, y) if self.step_loss is not None
                        else F.cross_entropy(self.forward(x).float(), y, label_smoothing=c.label_smoothing))
            window += loss.detach()
            if (i + 1) % check_every == 0 or i == steps - 1:
                if not math.isfinite(float(window)):
                    lr = self.optimizer.param_groups[0]["lr"]
                    raise Diverged(f"training loss is {float(window) if check_every == 1 else 'nan or inf'} at "
                                   f"step {self.step + 1} of {self.total_steps} (lr {lr:.4g})")
                total_loss += window
                window.zero_()
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is None:
                loss.backward()
                self.optimizer.step()
            else:  # fp16: scale the loss so small gradients survive; skip steps whose gradients overflow
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            self.step += 1
            images_seen += len(labels)
            if bar is not None:
                bar.update()
                if i % 10 == 0:
                    bar.set_postfix(loss=f"{float(loss.detach()):.3f}", lr=f"{self.optimizer.param_groups[0]['lr']:.3g}")
        if plan.device.type == "cuda":
            torch.cuda.synchronize(plan.device)
        seconds = time.perf_counter() - start
        lr = self.optimizer.param_groups[-1]["lr"]
        return EpochRecord(epoch, steps, float(total_loss) / max(1, steps), lr, seconds, images_seen / seconds)

    @property
    def eval_model(self) -> nn.Module:
        """The network that is evaluated and saved: the moving average if the recipe keeps one."""
        return self.model if self.ema is None else self.ema.module

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Top-1 and top-5 accuracy (percent) and mean cross-entropy (no smoothing) on the test split."""
        model = self.eval_model
        was_training = model.training
        model.eval()
        forward = self.forward if self.ema is None else model
        correct1 = correct5 = 0
        loss_sum, n = 0.0, 0
        k = min(5, self.source.num_classes)
        for images, labels in self.source.test_batches(self.config.eval_batch_size):
            y = labels.to(self.plan.device)
            with self.plan.autocast():
                logits = forward(self.prepare(images)).float()
            if not torch.isfinite(logits).all():
                raise Diverged("the trained network outputs non-finite logits")
            top = logits.topk(k, dim=1).indices
            correct1 += int((top[:, 0] == y).sum())
            correct5 += int((top == y[:, None]).any(dim=1).sum())
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            n += len(y)
        model.train(was_training)
        return {"top1": 100.0 * correct1 / n, "top5": 100.0 * correct5 / n, "loss": loss_sum / n}

    def fit(self, *, start_epoch: int = 0, evaluate: str = "each",
            on_epoch: Callable[[EpochRecord], None] | None = None) -> list[EpochRecord]:
        """Train epochs ``start_epoch..epochs-1``; evaluate after ``each`` epoch, only the ``last``,
        or ``none``; ``on_epoch`` sees each finished record (a checkpoint writer)."""
        if evaluate not in ("each", "last", "none"):
            raise ValueError(f"evaluate must be each, last or none, got {evaluate!r}")
        records = []
        devices = [self.plan.device] if self.plan.device.type == "cuda" else []
        with fixed_threads(self.plan.threads), torch.random.fork_rng(devices=devices):
            bar = tqdm(total=self.total_steps, initial=start_epoch * self.steps_per_epoch, desc=self.desc,
                       unit="step", disable=not self.progress, leave=False)
            try:
                for epoch in range(start_epoch, self.epochs):
                    bar.set_description(f"{self.desc} epoch {epoch + 1}/{self.epochs}")
                    record = self.train_epoch(epoch, bar)
                    if evaluate == "each" or (evaluate == "last" and epoch == self.epochs - 1):
                        start = time.perf_counter()
                        record.test = self.evaluate()
                        record.test["seconds"] = round(time.perf_counter() - start, 3)
                    records.append(record)
                    if on_epoch is not None:
                        on_epoch(record)
            finally:
                bar.close()
        return records

    # -------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything that determines the next epoch (see the module docstring)."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "step": self.step}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.step = int(state["step"])
