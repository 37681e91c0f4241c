"""Ghost bottleneck (Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020).

A ghost module makes ``out`` channels from ``ceil(out / ratio)`` "intrinsic" ones: a primary
1x1 conv-BN-[act] produces them, a cheap depthwise ``cheap_kernel`` conv-BN-[act] derives
``ratio - 1`` "ghost" maps from each, and the concatenation is sliced to ``out`` channels.

The bottleneck (timm's ``GhostBottleneck``, which the zoo's ``ghostnet_*`` entries reproduce):
ghost module (in -> mid, with act), a depthwise conv-BN on stride 2 (no act), optional
squeeze-excite (GhostNet style: hard-sigmoid gate, reduction ``make_divisible(mid * ratio, 4)``),
ghost module (mid -> out, no act), plus a shortcut: the identity where the shape is kept,
otherwise depthwise conv k/s-BN then 1x1 conv-BN.

Padding-free downsampling (``shared/reference/padding_free.md``, ``downsample="padding_free"``)
changes both stride-2 depthwise convs of the block: the one between the ghost modules loses one
unit of padding and gains a parameter-free 3x3 stride-2 max-pool shortcut of its input, added
after its BN (:class:`~search_spaces.ops.common.DownsampleDW`); the one on the shortcut branch
only loses the unit of padding (no max-pool), so both branches shrink to ``floor((H-3)/2)+1``.
(The paper's reference code pools with a 5x5 window, padding 1, after a 5x5 depthwise conv; the
output size, parameters and MACs are those of the 3x3 window used here.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from search_spaces.ops.common import (
    SE_STYLES,
    DownsampleDW,
    act_field,
    check_downsample,
    downsample_field,
    dw_out_size,
    out_chs_field,
    se_module,
    stride_field,
)
from search_spaces.ops.layers import ConvBnAct
from search_spaces.registry import REQUIRED, Field, OpSpec, Relative, register


def _odd_kernel(v: int) -> str | None:
    return None if v > 0 and v % 2 == 1 else f"kernel size must be odd and positive, got {v}"


def _positive(v: int) -> str | None:
    return None if v > 0 else f"must be > 0, got {v}"


def _ratio(v: int) -> str | None:
    return None if v >= 2 else f"ghost ratio must be >= 2, got {v}"


def _se_ratio(v: float) -> str | None:
    return None if v == 0.0 or 0.0 < v <= 1.0 else f"SE ratio must be 0 (off) or in (0, 1], got {v}"


class GhostModule(nn.Module):
    """Primary 1x1 conv-BN-act to ``ceil(out/ratio)`` channels, cheap depthwise conv-BN-act to
    ``(ratio-1)`` times as many, concatenated and sliced to ``out_chs``."""

    def __init__(self, in_chs: int, out_chs: int, act: str, ratio: int = 2, cheap_kernel: int = 3):
        super().__init__()
        self.out_chs = out_chs
        init_chs = math.ceil(out_chs / ratio)
        self.primary_conv = ConvBnAct(in_chs, init_chs, 1, act=act)
        self.cheap_operation = ConvBnAct(init_chs, init_chs * (ratio - 1), cheap_kernel, groups=init_chs, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary_conv(x)
        out = torch.cat([x1, self.cheap_operation(x1)], dim=1)
        return out[:, : self.out_chs]


class GhostBottleneck(nn.Module):
    """Ghost module, [depthwise conv-BN on stride 2], [SE], ghost module (linear), + shortcut."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, *, mid_chs: int, kernel: int = 3,
                 act: str = "relu", se_ratio: float = 0.0, se_style: str = "ghost", ratio: int = 2,
                 cheap_kernel: int = 3, downsample: str = "standard"):
        super().__init__()
        mid, out, k = mid_chs, out_chs, kernel
        padding_free = downsample == "padding_free"
        self.ghost1 = GhostModule(in_chs, mid, act, ratio, cheap_kernel)
        self.conv_dw = DownsampleDW(mid, k, stride, "none", padding_free) if stride > 1 else None
        self.se = se_module(se_style, se_ratio, mid, mid / in_chs, act) if se_ratio else None
        self.ghost2 = GhostModule(mid, out, "none", ratio, cheap_kernel)
        if in_chs == out and stride == 1:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                ConvBnAct(in_chs, in_chs, k, stride, groups=in_chs, act="none", pad_reduce=1 if padding_free else 0),
                ConvBnAct(in_chs, out, 1, act="none"),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ghost1(x)
        if self.conv_dw is not None:
            y = self.conv_dw(y)
        if self.se is not None:
            y = self.se(y)
        return self.ghost2(y) + self.shortcut(x)


def _roles(a: Mapping[str, Any]) -> dict[str, str]:
    """The parts of :class:`GhostBottleneck` (named by their role already)."""
    return {f"{part}.": part for part in ("ghost1", "conv_dw", "se", "ghost2", "shortcut")}


def _check(in_chs: int, a: Mapping[str, Any]) -> str | None:
    return check_downsample(a)


register(OpSpec(
    name="ghost",
    summary="Ghost bottleneck (GhostNet): ghost modules, dw on stride 2, optional SE, shortcut",
    roles=frozenset({"block"}),
    fields=(
        out_chs_field(),
        Field("mid_chs", "m", "int", REQUIRED, doc="width between the two ghost modules", check=_positive,
              relative=Relative("e", 4)),  # GhostNet's expansion, rounded to multiples of 4
        Field("kernel", "k", "int", 3, doc="depthwise kernel size (stride-2 and shortcut convs)", check=_odd_kernel),
        stride_field(),
        act_field("relu"),
        Field("se_ratio", "se", "float", 0.0, doc="squeeze-excite ratio of mid_chs, 0 = no SE", check=_se_ratio),
        Field("se_style", "ses", "str", "ghost", doc="squeeze-excite sizing/gating style",
              choices=tuple(SE_STYLES)),
        Field("ratio", "gr", "int", 2, doc="ghost ratio: output maps per intrinsic map", check=_ratio),
        Field("cheap_kernel", "ck", "int", 3, doc="kernel of the cheap depthwise operation", check=_odd_kernel),
        downsample_field(),
    ),
    build=lambda ctx, a: GhostBottleneck(ctx.in_chs, **a),
    weight_roles=_roles,
    out_chs=lambda in_chs, a: a["out_chs"],
    out_size=dw_out_size,
    check=_check,
))


__all__ = ["GhostModule", "GhostBottleneck"]
