"""Fields, checks and sub-modules shared by several registered ops.

Squeeze-excite comes in the styles of the reference implementations the zoo reproduces; a style
is data (reduce base, rounding, inner activation, gate) in :data:`SE_STYLES`, not an op name.
Padding-free downsampling (see ``shared/reference/padding_free.md``) is the ``downsample`` field
and :class:`DownsampleDW`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from search_spaces.ops.layers import ACTIVATIONS, ConvBnAct, SqueezeExcite, kernel_tuple, make_divisible
from search_spaces.registry import REQUIRED, Field, conv_out_size

DOWNSAMPLE_KINDS = ("standard", "padding_free")


@dataclass(frozen=True)
class SEStyle:
    """How a reference family sizes and gates its squeeze-excite.

    ``base``: ``"in"`` sizes the reduction from the block's input channels (MnasNet, EfficientNet,
    MixNet: ``round(mid * ratio / exp_ratio)`` exactly as timm computes it), ``"mid"`` from the
    expanded channels (MobileNetV3, GhostNet). ``divisor``: 0 rounds to the nearest integer,
    otherwise ``make_divisible(.., divisor)``. ``act``: ``"block"`` reuses the block's activation.
    """

    base: str
    divisor: int
    act: str
    gate: str


SE_STYLES: dict[str, SEStyle] = {
    # Tan et al., MnasNet (CVPR 2019) / EfficientNet (ICML 2019); MixNet uses the same.
    "effnet": SEStyle(base="in", divisor=0, act="block", gate="sigmoid"),
    # Howard et al., "Searching for MobileNetV3" (ICCV 2019).
    "mbv3": SEStyle(base="mid", divisor=8, act="relu", gate="hsigmoid"),
    # Han et al., GhostNet (CVPR 2020): hard-sigmoid gate, reduction rounded to multiples of 4.
    "ghost": SEStyle(base="mid", divisor=4, act="relu", gate="hsigmoid"),
}


def _positive(v: int) -> str | None:
    return None if v > 0 else f"must be > 0, got {v}"


def _stride(v: int) -> str | None:
    return None if v in (1, 2) else f"stride must be 1 or 2, got {v}"


def _odd_kernels(v: Any) -> str | None:
    for k in kernel_tuple(v):
        if k <= 0 or k % 2 == 0:
            return f"kernel sizes must be odd and positive, got {k}"
    if isinstance(v, tuple) and len(set(v)) != len(v):
        return f"mixed kernel sizes must be distinct, got {v}"
    return None


def _se_ratio(v: float) -> str | None:
    return None if v == 0.0 or 0.0 < v <= 1.0 else f"SE ratio must be 0 (off) or in (0, 1], got {v}"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else f"must be >= 0, got {v}"


def _dropout(v: float) -> str | None:
    return None if 0.0 <= v < 1.0 else f"dropout must be in [0, 1), got {v}"


def _groups(v: int) -> str | None:
    return None if v >= 1 else f"groups must be >= 1, got {v}"


def out_chs_field() -> Field:
    return Field("out_chs", "c", "int", doc="output channels", check=_positive, skeleton=True)


def kernel_field(default: Any = 3) -> Field:
    return Field("kernel", "k", "kernel", default, doc="depthwise kernel size, or a list for mixed kernels",
                 check=_odd_kernels)


def stride_field() -> Field:
    return Field("stride", "s", "int", 1, doc="1 or 2", check=_stride, skeleton=True)


def act_field(default: str = "relu") -> Field:
    return Field("act", "a", "str", default, doc="activation", choices=ACTIVATIONS)


def se_fields() -> tuple[Field, Field]:
    return (
        Field("se_ratio", "se", "float", 0.0, doc="squeeze-excite ratio, 0 = no SE", check=_se_ratio),
        Field("se_style", "ses", "str", "effnet", doc="squeeze-excite sizing/gating style",
              choices=tuple(SE_STYLES)),
    )


def noskip_field() -> Field:
    return Field("noskip", "ns", "bool", False, doc="drop the identity shortcut even where shapes allow it")


def downsample_field() -> Field:
    return Field("downsample", "dn", "str", "standard", doc="stride-2 depthwise: standard or padding_free",
                 choices=DOWNSAMPLE_KINDS, skeleton=True)


def groups_field(name: str, abbr: str, doc: str) -> Field:
    return Field(name, abbr, "int", 1, doc=doc, check=_groups)


def dropout_field(default: float = 0.0) -> Field:
    return Field("dropout", "d", "float", default, doc="dropout before the classifier", check=_dropout)


def expansion_field() -> Field:
    def check(v: float) -> str | None:
        return None if v > 0 else f"expansion ratio must be > 0, got {v}"

    return Field("exp_ratio", "e", "float", REQUIRED, doc="expansion ratio", check=check)


def se_module(style: str, ratio: float, mid_chs: int, exp_ratio: float, block_act: str) -> nn.Module:
    """The squeeze-excite module of a block whose depthwise output has ``mid_chs`` channels."""
    st = SE_STYLES[style]
    if st.base == "in":
        # timm divides the ratio by the expansion first, then scales the mid channels.
        rd = mid_chs * (ratio / exp_ratio)
    else:
        rd = mid_chs * ratio
    rd_chs = round(rd) if st.divisor == 0 else make_divisible(rd, st.divisor)
    return SqueezeExcite(mid_chs, max(int(rd_chs), 1), block_act if st.act == "block" else st.act, st.gate)


def check_downsample(args: Mapping[str, Any]) -> str | None:
    """Padding-free downsampling only makes sense on a stride-2 depthwise conv."""
    if args.get("downsample", "standard") == "padding_free" and args["stride"] != 2:
        return "field 'downsample': padding_free needs stride 2"
    return None


def dw_out_size(size: int, args: Mapping[str, Any]) -> int:
    """Spatial size after a depthwise conv with this block's kernel/stride/downsample fields."""
    k = max(kernel_tuple(args["kernel"]))
    if args.get("downsample", "standard") == "padding_free":
        return conv_out_size(size, 3, 2, 0)
    return conv_out_size(size, k, args["stride"], k // 2)


class DownsampleDW(nn.Module):
    """Depthwise conv-BN-act, optionally padding-free.

    Padding-free (``shared/reference/padding_free.md``): the stride-2 depthwise conv loses one
    unit of padding (k3: 0, k5: 1), so a map shrinks as ``floor((H-3)/2)+1``, and a 3x3 stride-2
    max-pool of its input, without padding, is added to its output after BN and activation. The
    shortcut has no parameters.
    """

    def __init__(self, chs: int, kernel: Any, stride: int, act: str, padding_free: bool):
        super().__init__()
        self.dw = ConvBnAct(chs, chs, kernel, stride, groups=chs, act=act, pad_reduce=1 if padding_free else 0)
        self.pool = nn.MaxPool2d(3, 2, 0) if padding_free else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x)
        return y if self.pool is None else y + self.pool(x)
