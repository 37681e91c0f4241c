"""MBConv family: depthwise-separable conv and inverted residual with optional squeeze-excite,
mixed kernels, grouped pointwise convs and padding-free downsampling.

- Depthwise-separable conv: Howard et al., "MobileNets", 2017.
- Inverted residual / linear bottleneck: Sandler et al., "MobileNetV2", CVPR 2018.
- Squeeze-excite in the block: Tan et al., "MnasNet", CVPR 2019; Howard et al., "Searching for
  MobileNetV3", ICCV 2019 (hard-sigmoid gate).
- Mixed kernels and grouped pointwise convs: Tan & Le, "MixConv", BMVC 2019.
- Grouped 1x1 convs with channel shuffle: the ``g2`` candidates of FBNet (Wu et al., CVPR 2019).
- Padding-free downsampling: ``shared/reference/padding_free.md``.
- Fused inverted residual (Fused-MBConv, op ``er`` as timm's EdgeResidual): Tan & Le,
  "EfficientNetV2: Smaller Models and Faster Training", ICML 2021; Gupta & Tan, "EfficientNet-EdgeTPU",
  2019. Its KxK expansion conv replaces the 1x1 expansion and the depthwise conv: more MACs, but
  one dense conv runs faster than two thin ones on early, large feature maps of many devices.

Channel arithmetic follows timm, whose implementations the zoo reproduces: the expanded width is
``make_divisible(in_chs * exp_ratio, 8)``.

Every block takes its arguments by keyword in the ``(in_chs, out_chs, stride, **kwargs)`` shape of
mobile-vision's primitives, with the registry fields' names and defaults; the registry passes a
description's normalised arguments to it as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from search_spaces.ops.common import (
    DownsampleDW,
    act_field,
    check_downsample,
    downsample_field,
    dw_out_size,
    expansion_field,
    groups_field,
    kernel_field,
    noskip_field,
    out_chs_field,
    se_fields,
    se_module,
    stride_field,
)
from search_spaces.ops.layers import ChannelShuffle, ConvBnAct, kernel_tuple, make_divisible
from search_spaces.registry import Field, OpSpec, register


def mid_channels(in_chs: int, exp_ratio: float) -> int:
    """Expanded width of an inverted residual (timm's rule)."""
    return make_divisible(in_chs * exp_ratio)


def _check_mixed_split(chs: int, kernel: Any, what: str) -> str | None:
    n = len(kernel_tuple(kernel))
    if n > 1 and chs % n:
        return f"field 'kernel': {n} mixed kernels do not divide the {chs} {what} channels"
    return None


class _Residual(nn.Module):
    """Adds the block input to the block output when ``has_skip`` (a plain bool attribute,
    left unannotated so that TorchScript infers it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.has_skip else y


class DepthwiseSeparable(_Residual):
    """Depthwise conv-BN-act, optional SE, pointwise conv-BN (act only with ``pw_act``)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, *, kernel: int | tuple[int, ...] = 3,
                 act: str = "relu", se_ratio: float = 0.0, se_style: str = "effnet", pw_act: bool = False,
                 noskip: bool = False, downsample: str = "standard"):
        super().__init__()
        layers = [DownsampleDW(in_chs, kernel, stride, act, downsample == "padding_free")]
        if se_ratio:
            layers.append(se_module(se_style, se_ratio, in_chs, 1.0, act))
        layers.append(ConvBnAct(in_chs, out_chs, 1, act=act if pw_act else "none"))
        self.body = nn.Sequential(*layers)
        self.has_skip = stride == 1 and in_chs == out_chs and not noskip


class InvertedResidual(_Residual):
    """1x1 expand conv-BN-act [shuffle], depthwise conv-BN-act, optional SE, 1x1 project conv-BN."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, *, exp_ratio: float,
                 kernel: int | tuple[int, ...] = 3, act: str = "relu", se_ratio: float = 0.0,
                 se_style: str = "effnet", exp_groups: int = 1, proj_groups: int = 1, shuffle: bool = False,
                 noskip: bool = False, downsample: str = "standard"):
        super().__init__()
        mid = mid_channels(in_chs, exp_ratio)
        layers: list[nn.Module] = [ConvBnAct(in_chs, mid, 1, groups=exp_groups, act=act)]
        if shuffle and exp_groups > 1:
            layers.append(ChannelShuffle(exp_groups))
        layers.append(DownsampleDW(mid, kernel, stride, act, downsample == "padding_free"))
        if se_ratio:
            layers.append(se_module(se_style, se_ratio, mid, exp_ratio, act))
        layers.append(ConvBnAct(mid, out_chs, 1, groups=proj_groups, act="none"))
        self.body = nn.Sequential(*layers)
        self.has_skip = stride == 1 and in_chs == out_chs and not noskip


class FusedInvertedResidual(_Residual):
    """KxK expand conv-BN-act (the stride is here), optional SE, 1x1 project conv-BN."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, *, exp_ratio: float, kernel: int = 3,
                 act: str = "relu", se_ratio: float = 0.0, se_style: str = "effnet", noskip: bool = False):
        super().__init__()
        mid = mid_channels(in_chs, exp_ratio)
        layers: list[nn.Module] = [ConvBnAct(in_chs, mid, kernel, stride, act=act)]
        if se_ratio:
            layers.append(se_module(se_style, se_ratio, mid, exp_ratio, act))
        layers.append(ConvBnAct(mid, out_chs, 1, act="none"))
        self.body = nn.Sequential(*layers)
        self.has_skip = stride == 1 and in_chs == out_chs and not noskip


def _ds_roles(a: Mapping[str, Any]) -> dict[str, str]:
    """The parts of :class:`DepthwiseSeparable`'s body, in its order."""
    parts = ["dw", *(["se"] if a["se_ratio"] else []), "pw"]
    return {f"body.{i}.": role for i, role in enumerate(parts)}


def _ir_roles(a: Mapping[str, Any]) -> dict[str, str]:
    """The parts of :class:`InvertedResidual`'s body, in its order."""
    parts = ["expand", *(["shuffle"] if a["shuffle"] and a["exp_groups"] > 1 else []), "dw",
             *(["se"] if a["se_ratio"] else []), "proj"]
    return {f"body.{i}.": role for i, role in enumerate(parts)}


def _er_roles(a: Mapping[str, Any]) -> dict[str, str]:
    """The parts of :class:`FusedInvertedResidual`'s body, in its order."""
    parts = ["expand", *(["se"] if a["se_ratio"] else []), "proj"]
    return {f"body.{i}.": role for i, role in enumerate(parts)}


def _one_odd_kernel(v: int) -> str | None:
    return None if v > 0 and v % 2 else f"the expansion conv's kernel must be odd and positive, got {v}"


def _check_ds(in_chs: int, a: Mapping[str, Any]) -> str | None:
    return check_downsample(a) or _check_mixed_split(in_chs, a["kernel"], "input")


def _check_ir(in_chs: int, a: Mapping[str, Any]) -> str | None:
    mid = mid_channels(in_chs, a["exp_ratio"])
    if in_chs % a["exp_groups"] or mid % a["exp_groups"]:
        return f"field 'exp_groups': {a['exp_groups']} does not divide in_chs {in_chs} and expanded {mid}"
    if mid % a["proj_groups"] or a["out_chs"] % a["proj_groups"]:
        return f"field 'proj_groups': {a['proj_groups']} does not divide expanded {mid} and out_chs {a['out_chs']}"
    return check_downsample(a) or _check_mixed_split(mid, a["kernel"], "expanded")


register(OpSpec(
    name="ds",
    summary="depthwise-separable conv (MobileNet), optional SE and residual",
    roles=frozenset({"block"}),
    fields=(
        out_chs_field(), kernel_field(), stride_field(), act_field("relu"), *se_fields(),
        Field("pw_act", "pa", "bool", False, doc="activation after the pointwise conv"),
        noskip_field(), downsample_field(),
    ),
    build=lambda ctx, a: DepthwiseSeparable(ctx.in_chs, **a),
    out_chs=lambda in_chs, a: a["out_chs"],
    out_size=dw_out_size,
    check=_check_ds,
    weight_roles=_ds_roles,
))

register(OpSpec(
    name="ir",
    summary="inverted residual / MBConv (MobileNetV2), optional SE, mixed kernels, grouped 1x1",
    roles=frozenset({"block"}),
    fields=(
        out_chs_field(), kernel_field(), stride_field(), expansion_field(), act_field("relu"), *se_fields(),
        groups_field("exp_groups", "eg", "groups of the 1x1 expansion conv"),
        groups_field("proj_groups", "pg", "groups of the 1x1 projection conv"),
        Field("shuffle", "sh", "bool", False, doc="channel shuffle after a grouped expansion (FBNet)"),
        noskip_field(), downsample_field(),
    ),
    build=lambda ctx, a: InvertedResidual(ctx.in_chs, **a),
    out_chs=lambda in_chs, a: a["out_chs"],
    out_size=dw_out_size,
    check=_check_ir,
    weight_roles=_ir_roles,
))

register(OpSpec(
    name="er",
    summary="fused inverted residual / Fused-MBConv (EfficientNetV2): KxK expansion conv, optional SE, 1x1 projection",
    roles=frozenset({"block"}),
    fields=(
        out_chs_field(),
        Field("kernel", "k", "int", 3, doc="kernel size of the expansion conv", check=_one_odd_kernel),
        stride_field(), expansion_field(), act_field("relu"), *se_fields(), noskip_field(),
    ),
    build=lambda ctx, a: FusedInvertedResidual(ctx.in_chs, **a),
    out_chs=lambda in_chs, a: a["out_chs"],
    out_size=dw_out_size,
    weight_roles=_er_roles,
))
