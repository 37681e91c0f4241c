"""Plain ops: conv-BN-act, skip (identity or a 1x1 projection) and max-pool.

``skip`` follows the FBNet builder (Wu et al., "FBNet: Hardware-Aware Efficient ConvNet Design
via Differentiable Neural Architecture Search", CVPR 2019): where the layer keeps its shape it is
the identity, otherwise a 1x1 conv-BN-ReLU projection, so "skip" is a candidate in every layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from search_spaces.ops.common import act_field, groups_field, out_chs_field, stride_field
from search_spaces.ops.layers import ConvBnAct
from search_spaces.registry import Field, OpContext, OpSpec, conv_out_size, register


def _single_odd_kernel(v: int) -> str | None:
    return None if v > 0 and v % 2 == 1 else f"kernel size must be odd and positive, got {v}"


def _check_cn(in_chs: int, args: Mapping[str, Any]) -> str | None:
    g = args["groups"]
    if in_chs % g or args["out_chs"] % g:
        return f"field 'groups': {g} does not divide in_chs {in_chs} and out_chs {args['out_chs']}"
    return None


def _build_cn(ctx: OpContext, a: Mapping[str, Any]) -> nn.Module:
    return ConvBnAct(ctx.in_chs, a["out_chs"], a["kernel"], a["stride"], a["groups"], a["act"])


register(OpSpec(
    name="cn",
    summary="conv-BN-act (stems, final 1x1 convs)",
    roles=frozenset({"stem", "block"}),
    fields=(
        out_chs_field(),
        Field("kernel", "k", "int", 3, doc="kernel size", check=_single_odd_kernel),
        stride_field(),
        act_field("relu"),
        groups_field("groups", "g", "convolution groups"),
    ),
    build=_build_cn,
    out_chs=lambda in_chs, a: a["out_chs"],
    out_size=lambda size, a: conv_out_size(size, a["kernel"], a["stride"], a["kernel"] // 2),
    check=_check_cn,
))


def _build_skip(ctx: OpContext, a: Mapping[str, Any]) -> nn.Module:
    if ctx.in_chs == a["out_chs"] and a["stride"] == 1:
        return nn.Identity()
    return ConvBnAct(ctx.in_chs, a["out_chs"], 1, a["stride"], act="relu")


register(OpSpec(
    name="skip",
    summary="identity, or a 1x1 conv-BN-ReLU projection where channels or stride change (FBNet)",
    roles=frozenset({"block"}),
    fields=(out_chs_field(), stride_field()),
    build=_build_skip,
    out_chs=lambda in_chs, a: a["out_chs"],
    out_size=lambda size, a: conv_out_size(size, 1, a["stride"], 0),
))


register(OpSpec(
    name="mp",
    summary="max-pool (ShuffleNetV2 stem)",
    roles=frozenset({"block"}),
    fields=(
        Field("kernel", "k", "int", 3, doc="window size", check=_single_odd_kernel),
        Field("stride", "s", "int", 2, doc="1 or 2", skeleton=True,
              check=lambda v: None if v in (1, 2) else f"stride must be 1 or 2, got {v}"),
    ),
    build=lambda ctx, a: nn.MaxPool2d(a["kernel"], a["stride"], a["kernel"] // 2),
    out_chs=lambda in_chs, a: in_chs,
    out_size=lambda size, a: conv_out_size(size, a["kernel"], a["stride"], a["kernel"] // 2),
))
