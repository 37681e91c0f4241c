"""The training recipe: every setting that changes what a training run computes, in one frozen
dataclass whose fields carry their own help text (``nas train`` turns them into flags).

The defaults are the standard small-image recipe:

- SGD with momentum 0.9 and Nesterov updates (Sutskever et al., "On the importance of
  initialization and momentum in deep learning", ICML 2013), or AdamW (Loshchilov & Hutter,
  "Decoupled Weight Decay Regularization", ICLR 2019);
- weight decay on conv/linear weights only, not on BatchNorm parameters or biases (the rule of
  Goyal et al. and of timm's ``no_weight_decay``), unless ``decay_norm_and_bias``;
- linear warm-up then cosine decay per step (Goyal et al., "Accurate, Large Minibatch SGD", 2017;
  Loshchilov & Hutter, "SGDR", ICLR 2017);
- label smoothing 0.1 (Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016);
- random crop (zero padding for in-memory images, random-resized crop for streamed folders) and
  horizontal flip; optionally TrivialAugment (Müller & Hutter, ICCV 2021) and Cutout (DeVries &
  Taylor, 2017);
- optionally an exponential moving average of the weights (Polyak & Juditsky, 1992), evaluated
  and saved instead of the raw weights.

How the run executes (device, precision, memory format, threads) is not part of the recipe: see
:mod:`evaluators.training.plan`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from nas.checks import is_int, is_real

__all__ = ["OPTIMIZERS", "AUGMENTS", "FREEZE", "TrainConfig"]

OPTIMIZERS = ("sgd", "adamw")
AUGMENTS = ("none", "trivialaugment")
FREEZE = ("none", "features")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """A training budget and recipe. Give exactly one of ``epochs`` and ``steps``.

    ``lr`` is the peak learning rate reached after ``warmup_fraction`` of the steps. Invalid values
    (zero, negative, NaN, out of range) raise ``ValueError`` naming the field.
    """

    epochs: int | None = field(default=None, metadata=_help("training epochs (give epochs or steps)"))
    steps: int | None = field(default=None, metadata=_help("training steps instead of epochs"))
    batch_size: int = field(default=128, metadata=_help("minibatch size"))
    optimizer: str = field(default="sgd", metadata=_help("sgd (momentum, Nesterov) | adamw"))
    lr: float = field(default=0.1, metadata=_help("peak learning rate (after warm-up); try 1e-3 for adamw"))
    momentum: float = field(default=0.9, metadata=_help("SGD momentum (adamw: beta1)"))
    nesterov: bool = field(default=True, metadata=_help("Nesterov momentum (sgd)"))
    weight_decay: float = field(default=5e-4, metadata=_help("weight decay (adamw: decoupled); try 0.05 for adamw"))
    decay_norm_and_bias: bool = field(default=False,
                                      metadata=_help("also decay BatchNorm parameters and biases"))
    warmup_fraction: float = field(default=0.05, metadata=_help("fraction of the steps of linear warm-up"))
    label_smoothing: float = field(default=0.1, metadata=_help("label smoothing of the cross-entropy"))
    crop_padding: int = field(default=4, metadata=_help("zero padding of the random crop (in-memory images)"))
    min_scale: float = field(default=0.08,
                             metadata=_help("smallest area fraction of the random-resized crop (streamed folders)"))
    flip: bool = field(default=True, metadata=_help("random horizontal flip"))
    augment: str = field(default="none", metadata=_help("extra augmentation: none | trivialaugment"))
    cutout: int = field(default=0, metadata=_help("side of the Cutout square in pixels (0: off)"))
    ema_decay: float | None = field(default=None,
                                    metadata=_help("decay of the weights' moving average per step (e.g. 0.999; "
                                                   "none: off); evaluated and saved instead of the raw weights"))
    backbone_lr_scale: float = field(default=1.0,
                                     metadata=_help("learning-rate factor of everything but the classifier "
                                                    "(fine-tuning: e.g. 0.1)"))
    freeze: str = field(default="none",
                        metadata=_help("none | features: train the classifier only (the rest frozen, BN stats "
                                       "too)"))
    seed: int = field(default=0, metadata=_help("seed of initialisation, data order and augmentation"))
    eval_batch_size: int = field(default=500, metadata=_help("minibatch size of evaluation"))

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.steps is None):
            raise ValueError(f"give exactly one of epochs and steps (got epochs={self.epochs}, steps={self.steps})")
        for name in ("epochs", "steps", "batch_size", "eval_batch_size"):
            v = getattr(self, name)
            if v is not None and (not is_int(v) or v < 1):
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("crop_padding", "cutout", "seed"):
            v = getattr(self, name)
            if not is_int(v) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        _number("lr", self.lr, 0.0, math.inf, open_low=True)
        _number("momentum", self.momentum, 0.0, 1.0)
        _number("weight_decay", self.weight_decay, 0.0, math.inf)
        _number("warmup_fraction", self.warmup_fraction, 0.0, 1.0)
        _number("label_smoothing", self.label_smoothing, 0.0, 1.0)
        _number("min_scale", self.min_scale, 0.0, 1.0, open_low=True, closed_high=True)
        _number("backbone_lr_scale", self.backbone_lr_scale, 0.0, math.inf, open_low=True)
        if self.ema_decay is not None:
            _number("ema_decay", self.ema_decay, 0.0, 1.0, open_low=True)
        for name, allowed in (("optimizer", OPTIMIZERS), ("augment", AUGMENTS), ("freeze", FREEZE)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        for name in ("nesterov", "flip", "decay_norm_and_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError("nesterov needs momentum > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Field name -> help text (for command-line flags)."""
        return {f.name: f.metadata["help"] for f in fields(cls)}


def _number(name: str, v: Any, lo: float, hi: float, *, open_low: bool = False, closed_high: bool = False) -> None:
    ok = is_real(v) and math.isfinite(v)
    if ok:
        ok = (v > lo if open_low else v >= lo) and (v <= hi if closed_high else v < hi)
    if not ok:
        low = "(" if open_low else "["
        high = "]" if closed_high else ")"
        raise ValueError(f"{name} must be a number in {low}{lo:g}, {hi:g}{high}, got {v!r}")
