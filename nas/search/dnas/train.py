"""Supernet training: alternating weight and architecture updates, with checkpoint and resume.

The training images are split once (seeded) into a weight split and an architecture split
(``1 - arch_split`` and ``arch_split``; FBNet trains ``w`` on 80% and ``theta`` on 20% of its
ImageNet-100 subset). Every step of an epoch

1. trains the operator weights on a weight-split batch (random crop and flip): SGD with momentum
   0.9 (Nesterov), weight decay 1e-4 on conv/linear weights, gradient norm clipped to
   :data:`GRAD_CLIP_NORM` (as DARTS, Liu et al., ICLR 2019), learning rate warmed up linearly
   over the weights-only epochs, then on a cosine decay per step; the path weights are sampled
   from ``theta`` but detached;
2. after the ``warmup_epochs``, trains ``theta`` on an architecture-split batch: Adam (weight
   decay 5e-4) on :func:`dnas_loss`, whose latency term is the expected latency of
   :class:`~nas.search.dnas.supernet.LatencyModel`.

Updates alternate per step, as ProxylessNAS (Cai et al., ICLR 2019) and DARTS's first-order
variant (Liu et al., ICLR 2019) do; FBNet (Wu et al., CVPR 2019) alternates per epoch, the same
alternating minimisation at a coarser grain. The Gumbel-softmax temperature of epoch ``e`` is
``temperature * temperature_decay ** e`` (FBNet: 5.0 and 0.956).

Latency in the loss, in both modes: the expectation under ``P_theta = softmax(theta)``,
``LAT = sum_l sum_i p_{l,i} * LAT(b_{l,i})`` (ProxylessNAS: ``E[latency] = sum_j p_j F(o_j)``).
It is the exact expected table latency of the architecture the Gumbel-max draw samples, and its
gradient is free of sampling noise. FBNet's latency term weighs the latencies with the relaxed sample
``m_{l,i}`` instead, a one-sample estimate of a similar quantity whose noise, with the CE's, slows
short searches down.

A checkpoint is written atomically after every epoch: one ``torch.save`` of a dict holding the
state dicts (supernet, both optimizers), the RNG states and the data order as tensors, and a JSON
string with the epoch, the history and the run's identity; it is read back with
``torch.load(weights_only=True)``. A run with a checkpoint resumes after its last epoch and
continues exactly as an uninterrupted run would; a checkpoint of another search is refused.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from evaluators.datasets import Dataset, normalise
from evaluators.training.augment import pad_crop_flip
from nas.io import JSONFileError, atomic_path, parse_json_object
from nas.runtime import fixed_threads
from nas.search.dnas.supernet import LatencyModel, Supernet
from nas.search.dnas_settings import DNASSettings

__all__ = ["CHECKPOINT_FORMAT", "WEIGHT_DECAY", "ARCH_WEIGHT_DECAY", "GRAD_CLIP_NORM", "dnas_loss", "TrainResult", "DNASTrainer"]

CHECKPOINT_FORMAT = "litenas.dnas_checkpoint"
CHECKPOINT_VERSION = 1
WEIGHT_DECAY = 1e-4
ARCH_WEIGHT_DECAY = 5e-4
MOMENTUM = 0.9
GRAD_CLIP_NORM = 5.0
"""Largest global gradient norm of a weight step. The 1984-wide classifier of fbnet@32 sits on a
1x1 map, so its gradient alone has norm ~9 at initialisation and one SGD step at lr 0.1 moved the
logits by several nats: without clipping the weight CE went 2.4 -> 17.5 in 25 steps."""


def dnas_loss(ce: torch.Tensor, latency_ms: torch.Tensor, *, kind: str, alpha: float, beta: float,
              reference_ms: float = 1.0) -> torch.Tensor:
    """The architecture loss of cross-entropy ``ce`` and expected latency ``latency_ms``.

    - ``relative`` (the default): ``CE + alpha * (LAT / reference_ms) ** beta``. ProxylessNAS's
      ``CE + lambda * E[LAT]`` (Cai et al., ICLR 2019) with LAT in units of a reference latency,
      as MnasNet's ``(LAT / T) ** w`` (Tan et al., CVPR 2019): positive at any latency scale, and
      ``alpha`` is the cross-entropy (nats) one reference latency is worth, at 32 px as at 224 px.
    - ``mult``: FBNet's ``CE * alpha * log(LAT) ** beta`` (Wu et al., CVPR 2019, Eq. 2), LAT in
      ms; ``log(LAT)`` is negative below 1 ms, so it only works where every network is slower.
    - ``add``: ``CE + alpha * LAT ** beta``, LAT in ms.
    """
    if kind == "relative":
        return ce + alpha * (latency_ms / reference_ms) ** beta
    if kind == "mult":
        return ce * alpha * torch.log(latency_ms) ** beta
    if kind == "add":
        return ce + alpha * latency_ms ** beta
    raise ValueError(f"loss kind must be one of relative, mult, add, got {kind!r}")


@dataclass(frozen=True)
class TrainResult:
    """What training gives: one log dict per finished epoch (resumed ones included), and
    whether every configured epoch is done (``False`` when the time limit stopped it)."""

    history: tuple[dict[str, Any], ...]
    complete: bool


class _Batches:
    """Index batches over ``n`` items, reshuffled (with ``gen``) whenever a pass ends."""

    def __init__(self, n: int, batch: int, gen: torch.Generator):
        self.n, self.batch, self.gen = n, batch, gen
        self.order = torch.randperm(n, generator=gen)
        self.cursor = 0

    def next(self) -> torch.Tensor:
        if self.cursor + self.batch > self.n:
            self.order = torch.randperm(self.n, generator=self.gen)
            self.cursor = 0
        idx = self.order[self.cursor:self.cursor + self.batch]
        self.cursor += self.batch
        return idx


class DNASTrainer:
    """Trains ``supernet``'s weights and architecture parameters on ``data.train``.

    Args:
        supernet: the supernet (on any device; it is moved to ``settings.device``).
        latency: its latency model.
        data: the search's dataset (only the train split is used).
        settings: mode, schedule, loss and optimiser settings.
        checkpoint: file to write after every epoch and to resume from (``None``: no checkpoint).
        identity: JSON-ready settings a checkpoint must match to be resumed.
    """

    def __init__(self, supernet: Supernet, latency: LatencyModel, data: Dataset, settings: DNASSettings, *,
                 checkpoint: str | os.PathLike[str] | None = None, identity: Mapping[str, Any] | None = None):
        if not isinstance(settings, DNASSettings):
            raise ValueError(f"settings must be DNASSettings, got {type(settings).__name__}")
        shape = data.train.images.shape[1:]
        res = supernet.view.stem.in_size
        if shape != (res, res, supernet.view.stem.in_chs):
            raise ValueError(f"the supernet takes {res}x{res}x{supernet.view.stem.in_chs} inputs, the dataset "
                             f"{data.name!r} has {shape[0]}x{shape[1]}x{shape[2]} images")
        if data.num_classes != supernet.view.head.num_classes:
            raise ValueError(f"the supernet predicts {supernet.view.head.num_classes} classes, the dataset "
                             f"{data.name!r} has {data.num_classes}")
        low, _ = latency.bounds()
        floor = 1.0 if settings.loss == "mult" else 0.0
        if low <= floor:
            raise ValueError(f"dnas_loss: {settings.loss!r} needs every table latency > {floor:g} ms "
                             f"({'log LAT > 0' if floor else 'LAT > 0'}), the cheapest architecture's is {low:.4g} ms"
                             + ("; use dnas_loss 'relative' (scale-free)" if settings.loss == "mult" else ""))
        self.reference_ms = latency.mean()
        """``LAT_ref`` of the ``relative`` loss: the expected latency of the uniform distribution."""
        self.device = torch.device(settings.device)
        self.supernet = supernet.to(self.device)
        self.latency = latency.to(self.device)
        self.data = data
        self.settings = settings
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.identity = json.loads(json.dumps(dict(identity or {})))
        n = len(data.train)
        perm = np.random.default_rng(settings.seed).permutation(n)
        n_arch = min(n - 1, max(1, round(n * settings.arch_split)))
        if n_arch < 1:
            raise ValueError(f"dataset {data.name!r} has {n} training image(s); the weight and architecture "
                             "splits need at least one each")
        self._arch_idx = torch.from_numpy(np.sort(perm[:n_arch]))
        self._weight_idx = torch.from_numpy(np.sort(perm[n_arch:]))
        self.weight_batch = min(settings.batch_size, len(self._weight_idx))
        self.arch_batch = min(settings.batch_size, len(self._arch_idx))
        self.steps_per_epoch = len(self._weight_idx) // self.weight_batch
        self.weight_opt = torch.optim.SGD(_param_groups_of(supernet), lr=settings.weight_lr, momentum=MOMENTUM,
                                          nesterov=True)
        self.arch_opt = torch.optim.Adam(supernet.arch_parameters(), lr=settings.arch_lr,
                                         weight_decay=ARCH_WEIGHT_DECAY)

    # ------------------------------------------------------------------------------------ steps
    def _lr(self, step: int) -> float:
        """Linear warm-up over the weights-only epochs (``dnas_warmup_epochs``; from scratch the
        full rate diverged at once: weight CE 14 on CIFAR-10, chance 2.3), then cosine decay to zero."""
        total = self.settings.epochs * self.steps_per_epoch
        warmup = min(self.settings.warmup_epochs * self.steps_per_epoch, total)
        if step < warmup:
            return self.settings.weight_lr * (step + 1) / warmup
        return 0.5 * self.settings.weight_lr * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    def weight_step(self, x: torch.Tensor, y: torch.Tensor, temperature: float, lr: float) -> float:
        """One SGD step of the operator weights (path weights sampled, detached); the CE."""
        net = self.supernet
        net.train()
        for g in self.weight_opt.param_groups:
            g["lr"] = lr
        path = net.sample(temperature, self.settings.mode, grad=False)
        ce = F.cross_entropy(net(x, path), y)
        self.weight_opt.zero_grad(set_to_none=True)
        ce.backward()
        torch.nn.utils.clip_grad_norm_([p for g in self.weight_opt.param_groups for p in g["params"]], GRAD_CLIP_NORM)
        self.weight_opt.step()
        return float(ce.detach())

    def arch_step(self, x: torch.Tensor, y: torch.Tensor, temperature: float) -> tuple[float, float, float]:
        """One Adam step of ``theta`` on :func:`dnas_loss`; the loss, the CE and the latency term."""
        net, s = self.supernet, self.settings
        net.train()
        path = net.sample(temperature, s.mode)
        ce = F.cross_entropy(net(x, path), y)
        lat = self.latency([F.softmax(t, dim=0) for t in net.theta])
        loss = dnas_loss(ce, lat, kind=s.loss, alpha=s.alpha, beta=s.beta, reference_ms=self.reference_ms)
        theta = net.arch_parameters()
        grads = torch.autograd.grad(loss, theta)  # only theta's gradients: the weights are not touched
        for p, g in zip(theta, grads, strict=True):
            p.grad = g
        self.arch_opt.step()
        self.arch_opt.zero_grad(set_to_none=True)
        return float(loss.detach()), float(ce.detach()), float(lat.detach())

    # -------------------------------------------------------------------------------------- fit
    def fit(self, *, progress: bool = False) -> TrainResult:
        """Train for the remaining epochs (resuming from the checkpoint, if there is one)."""
        s = self.settings
        devices = [self.device] if self.device.type == "cuda" else []
        with fixed_threads(s.threads), torch.random.fork_rng(devices=devices):
            torch.manual_seed(s.seed)
            gen = torch.Generator().manual_seed(s.seed)
            arch_batches = _Batches(len(self._arch_idx), self.arch_batch, gen)
            history: list[dict[str, Any]] = []
            if self.checkpoint is not None and self.checkpoint.exists():
                history = self._load(gen, arch_batches)
            images = torch.from_numpy(self.data.train.images).to(self.device)
            labels = torch.from_numpy(self.data.train.labels).to(self.device)
            mean, std = self.data.mean_std
            pad = max(1, self.supernet.view.stem.in_size // 8)
            deadline = None if s.time_limit_s is None else time.monotonic() + s.time_limit_s
            bar = tqdm(range(len(history), s.epochs), desc=f"supernet ({s.mode})", unit="epoch", disable=not progress,
                       leave=False)
            for epoch in bar:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                start = time.perf_counter()
                tau = s.temperature_at(epoch)
                search = epoch >= s.warmup_epochs
                order = self._weight_idx[torch.randperm(len(self._weight_idx), generator=gen)]
                w_ce, a_loss, a_ce, a_lat = [], [], [], []
                for step in range(self.steps_per_epoch):
                    idx = order[step * self.weight_batch:(step + 1) * self.weight_batch].to(self.device)
                    x = normalise(pad_crop_flip(images[idx], gen, padding=pad, flip=True), mean, std)
                    w_ce.append(self.weight_step(x, labels[idx], tau, self._lr(epoch * self.steps_per_epoch + step)))
                    if search:
                        idx = self._arch_idx[arch_batches.next()].to(self.device)
                        loss, ce, lat = self.arch_step(normalise(images[idx], mean, std), labels[idx], tau)
                        a_loss.append(loss)
                        a_ce.append(ce)
                        a_lat.append(lat)
                history.append(self._log(epoch, tau, search, w_ce, a_loss, a_ce, a_lat, time.perf_counter() - start))
                bar.set_postfix(ce=f"{history[-1]['weight_ce']:.3f}", lat=f"{history[-1]['expected_latency_ms']:.3g}")
                if self.checkpoint is not None:
                    self._save(gen, arch_batches, history)
            bar.close()
        return TrainResult(tuple(history), len(history) >= s.epochs)

    def _log(self, epoch: int, tau: float, search: bool, w_ce: list[float], a_loss: list[float], a_ce: list[float],
             a_lat: list[float], seconds: float) -> dict[str, Any]:
        probs = [p.to(self.device) for p in self.supernet.probabilities()]
        argmax = [int(p.argmax()) for p in probs]
        entropy = sum(float(-(p * p.clamp_min(1e-12).log()).sum()) for p in probs) / len(probs)

        def mean(v: list[float]) -> float | None:
            return round(float(np.mean(v)), 6) if v else None

        return {
            "epoch": epoch, "temperature": round(tau, 6), "searched": search, "weight_ce": mean(w_ce),
            "arch_loss": mean(a_loss), "arch_ce": mean(a_ce), "arch_latency_ms": mean(a_lat),
            "expected_latency_ms": round(float(self.latency(probs)), 6),
            "argmax_latency_ms": round(self.latency.of(argmax), 6), "mean_entropy": round(entropy, 6),
            "seconds": round(seconds, 3),
        }

    # ------------------------------------------------------------------------------- checkpoint
    def _save(self, gen: torch.Generator, arch_batches: _Batches, history: list[dict[str, Any]]) -> None:
        state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "identity": self.identity,
                 "epochs_done": len(history), "arch_cursor": arch_batches.cursor, "history": history}
        blob: dict[str, Any] = {
            "supernet": self.supernet.state_dict(),
            "weight_opt": self.weight_opt.state_dict(),
            "arch_opt": self.arch_opt.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "data_rng": gen.get_state(),
            "arch_order": arch_batches.order,
            "state": json.dumps(state),
        }
        if self.device.type == "cuda":
            blob["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        with atomic_path(self.checkpoint) as tmp:  # type: ignore[arg-type]
            torch.save(blob, tmp)

    def _load(self, gen: torch.Generator, arch_batches: _Batches) -> list[dict[str, Any]]:
        where = self.checkpoint
        try:
            blob = torch.load(where, map_location="cpu", weights_only=True)
            state = parse_json_object(blob["state"], f"{where} (its state)", "a litenas DNAS checkpoint")
        except JSONFileError:
            raise
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
            raise ValueError(f"{where}: not a readable DNAS checkpoint ({type(exc).__name__}: {exc})") from None
        if state.get("format") != CHECKPOINT_FORMAT or state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{where}: not a litenas DNAS checkpoint (version {CHECKPOINT_VERSION})")
        if state["identity"] != self.identity:
            diff = sorted(k for k in set(state["identity"]) | set(self.identity)
                          if state["identity"].get(k) != self.identity.get(k))
            raise ValueError(f"{where} holds a different search (settings differ: {', '.join(diff)}); use another "
                             "--out directory, or the original settings to resume it")
        self.supernet.load_state_dict(blob["supernet"])
        self.weight_opt.load_state_dict(blob["weight_opt"])
        self.arch_opt.load_state_dict(blob["arch_opt"])
        torch.set_rng_state(blob["torch_rng"])
        if "cuda_rng" in blob and self.device.type == "cuda":
            torch.cuda.set_rng_state(blob["cuda_rng"], self.device)
        gen.set_state(blob["data_rng"])
        arch_batches.order = blob["arch_order"]
        arch_batches.cursor = int(state["arch_cursor"])
        return list(state["history"])


def _param_groups_of(supernet: Supernet) -> list[dict[str, Any]]:
    """The weight optimiser's groups: conv/linear weights decayed, BN parameters and biases not."""
    decay, no_decay = [], []
    for p in supernet.weight_parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
