"""The settings of a differentiable search, validated up front (no torch import here, so
:mod:`nas.search.config` can check them cheaply).

Defaults follow the papers: Gumbel-softmax temperature 5.0 decayed by 0.956 per epoch, Adam at
0.01 for the architecture parameters on 20% of the training data, and 6 architectures sampled from
the learned distribution besides the argmax (Wu et al., "FBNet", CVPR 2019). The default loss is
the additive ``CE + alpha * (LAT / LAT_ref) ** beta`` (``relative``, ``alpha = 0.2``,
``beta = 1``): ProxylessNAS's ``CE + lambda * E[LAT]`` (Cai et al., ICLR 2019) with the latency
measured in units of a reference, as MnasNet's ``(LAT / T) ** w`` is (Tan et al., CVPR 2019), so
the latency weight means the same at 32 px (every fbnet network under 1 ms) and at 224 px (20-60
ms). FBNet's own ``CE * alpha * log(LAT) ** beta`` (``mult``, LAT in ms) depends on the unit: it
needs every latency above 1 ms, and with Adam its ``alpha`` only rescales the whole loss.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from nas.settings import Component, setting

__all__ = ["MODES", "LOSSES", "DNASSettings", "DNASConfig"]

MODES = ("soft", "single")
"""``soft``: FBNet's Gumbel-softmax mixture of every candidate; ``single``: one sampled path per
layer and step (ProxylessNAS-style, hard Gumbel-softmax straight-through)."""
LOSSES = ("relative", "mult", "add")
"""``relative``: ``CE + alpha * (LAT / LAT_ref) ** beta``, ``LAT_ref`` the expected latency of the
uniform distribution (the supernet's start); ``mult``: FBNet's ``CE * alpha * log(LAT) ** beta``
(LAT in ms); ``add``: ``CE + alpha * LAT ** beta`` (LAT in ms)."""


def _number(name: str, value: Any, *, integer: bool = False) -> float:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not math.isfinite(value):
        raise ValueError(f"{name}: expected {'an integer' if integer else 'a finite number'}, got {value!r}")
    return value


@dataclass(frozen=True, kw_only=True)
class DNASSettings:
    """How the supernet is trained and what is derived from it.

    Attributes:
        mode: ``soft`` (FBNet) or ``single`` (single-path, ProxylessNAS-style).
        epochs: passes over the weight split (warm-up included).
        warmup_epochs: first epochs that train the weights only (the architecture is frozen).
        loss: ``relative``, ``mult`` or ``add`` (see :data:`LOSSES`).
        alpha, beta: the latency term's weight and exponent (``relative``: ``alpha`` nats of
            cross-entropy per reference latency).
        temperature: Gumbel-softmax temperature of epoch 0; epoch ``e`` uses
            ``temperature * temperature_decay ** e``.
        temperature_decay: per-epoch factor, in ``(0, 1]``.
        weight_lr: peak SGD learning rate of the operator weights (cosine decay per step).
        arch_lr: Adam learning rate of the architecture parameters.
        arch_split: fraction of the training images that train the architecture parameters
            (the rest trains the weights).
        samples: architectures sampled from the learned distribution besides the argmax.
        device: torch device of the supernet (``cpu``, ``cuda``, ``cuda:1``...).
        batch_size, seed, threads, time_limit_s: as in :class:`~nas.search.config.SearchConfig`
            (the time limit stops starting new epochs).
    """

    mode: str = "soft"
    epochs: int = 10
    warmup_epochs: int = 1
    loss: str = "relative"
    alpha: float = 0.2
    beta: float = 1.0
    temperature: float = 5.0
    temperature_decay: float = 0.956
    weight_lr: float = 0.1
    arch_lr: float = 0.01
    arch_split: float = 0.2
    samples: int = 6
    device: str = "cpu"
    batch_size: int = 64
    seed: int = 0
    threads: int | None = 1
    time_limit_s: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: {self.mode!r} is not one of {', '.join(MODES)}")
        if self.loss not in LOSSES:
            raise ValueError(f"dnas_loss: {self.loss!r} is not one of {', '.join(LOSSES)}")
        for name in ("epochs", "warmup_epochs", "samples", "batch_size", "seed"):
            _number(name if name in ("batch_size", "seed") else f"dnas_{name}", getattr(self, name), integer=True)
        for name in ("alpha", "beta", "temperature", "temperature_decay", "weight_lr", "arch_lr", "arch_split"):
            _number(f"dnas_{name}", getattr(self, name))
        if self.epochs < 1:
            raise ValueError(f"dnas_epochs: must be >= 1, got {self.epochs}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"dnas_warmup_epochs: must be >= 0 and < dnas_epochs ({self.epochs}), "
                             f"got {self.warmup_epochs}")
        if self.samples < 0:
            raise ValueError(f"dnas_samples: must be >= 0, got {self.samples}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {self.batch_size}")
        if self.alpha < 0 or (self.loss == "mult" and self.alpha == 0):
            raise ValueError(f"dnas_alpha: must be {'> 0 with the mult loss' if self.loss == 'mult' else '>= 0'}, "
                             f"got {self.alpha}")
        if self.beta < 0:
            raise ValueError(f"dnas_beta: must be >= 0, got {self.beta}")
        for name in ("temperature", "weight_lr", "arch_lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"dnas_{name}: must be > 0, got {getattr(self, name)}")
        if not 0 < self.temperature_decay <= 1:
            raise ValueError(f"dnas_temperature_decay: must be in (0, 1], got {self.temperature_decay}")
        if not 0 < self.arch_split < 1:
            raise ValueError(f"dnas_arch_split: must be in (0, 1), got {self.arch_split}")
        if not isinstance(self.device, str) or not (self.device == "cpu" or self.device.split(":")[0] in ("cuda", "mps")):
            raise ValueError(f"device: expected cpu, cuda, cuda:N or mps, got {self.device!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"threads: must be an integer >= 1 or None, got {self.threads!r}")
        if self.time_limit_s is not None and _number("time_limit_s", self.time_limit_s) <= 0:
            raise ValueError(f"time_limit_s: must be > 0, got {self.time_limit_s}")

    def temperature_at(self, epoch: int) -> float:
        """The Gumbel-softmax temperature of ``epoch`` (0-based)."""
        return self.temperature * self.temperature_decay ** epoch


_DEFAULT = DNASSettings()


@dataclass(frozen=True)
class DNASConfig(Component):
    """The keys of a search that configure a differentiable strategy's supernet training (each
    ``dnas_<name>`` a field of :class:`DNASSettings`, validated by it); the search adds the mode,
    device, batch, seed, threads and time limit (:meth:`settings`)."""

    title: ClassVar[str] = "differentiable strategies (fbnet, proxyless): the supernet's training"

    epochs: int = setting(
        _DEFAULT.epochs, "supernet training epochs, warm-up included (fbnet, proxyless); raise it and re-run to "
        "train on", key="dnas_epochs", volatile=True)
    warmup_epochs: int = setting(
        _DEFAULT.warmup_epochs, "first epochs that train the supernet weights only (fbnet, proxyless)",
        key="dnas_warmup_epochs")
    loss: str = setting(
        _DEFAULT.loss,
        "relative (CE + alpha*(LAT/LAT_ref)^beta, LAT_ref the space's mean latency: any latency scale) | "
        "mult (FBNet: CE*alpha*log(LAT)^beta, every LAT > 1 ms) | add (CE + alpha*LAT^beta); LAT in ms "
        "(fbnet, proxyless)", key="dnas_loss")
    alpha: float = setting(
        _DEFAULT.alpha, "weight of the latency term (relative: nats of CE per space-mean latency) (fbnet, proxyless)",
        key="dnas_alpha")
    beta: float = setting(_DEFAULT.beta, "exponent of the latency term (FBNet's mult: 0.6) (fbnet, proxyless)",
                          key="dnas_beta")
    temperature: float = setting(
        _DEFAULT.temperature, "Gumbel-softmax temperature of the first epoch (FBNet: 5.0) (fbnet, proxyless)",
        key="dnas_temperature")
    temperature_decay: float = setting(
        _DEFAULT.temperature_decay, "temperature factor per epoch (FBNet: 0.956) (fbnet, proxyless)",
        key="dnas_temperature_decay")
    weight_lr: float = setting(
        _DEFAULT.weight_lr, "peak SGD learning rate of the supernet weights, cosine decay (fbnet, proxyless)",
        key="dnas_weight_lr")
    arch_lr: float = setting(
        _DEFAULT.arch_lr, "Adam learning rate of the architecture parameters (FBNet: 0.01) (fbnet, proxyless)",
        key="dnas_arch_lr")
    arch_split: float = setting(
        _DEFAULT.arch_split, "fraction of the training images that train the architecture parameters (fbnet, "
        "proxyless)", key="dnas_arch_split")
    samples: int = setting(
        _DEFAULT.samples, "architectures sampled from the learned distribution besides the argmax (FBNet: 6)",
        key="dnas_samples")

    def check(self) -> None:
        self.settings()  # DNASSettings validates every field, naming its dnas_* key

    def settings(self, **run: Any) -> DNASSettings:
        """The supernet-training settings: these keys plus what the search adds (``mode``,
        ``device``, ``batch_size``, ``seed``, ``threads``, ``time_limit_s``)."""
        return DNASSettings(**asdict(self), **run)
