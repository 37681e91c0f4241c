"""The hybrid stem of the padding-free paper (``shared/reference/padding_free.md``).

For 32x32 inputs the stem keeps stride 1: conv3x3-BN-act to C channels, then two branches over
its output (depthwise conv3x3-BN-act, and a 3x3 stride-1 max-pool with padding 1), concatenated
to 2C channels and fused back to C by a 1x1 conv-BN-act.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from search_spaces.ops.common import act_field, out_chs_field
from search_spaces.ops.layers import ConvBnAct
from search_spaces.registry import OpContext, OpSpec, register


class HybridStem(nn.Module):
    """conv3x3 -> [depthwise conv3x3 | max-pool 3x3 s1] -> concat -> conv1x1 (all BN + act)."""

    def __init__(self, in_chs: int, out_chs: int, act: str):
        super().__init__()
        self.conv = ConvBnAct(in_chs, out_chs, 3, act=act)
        self.dw = ConvBnAct(out_chs, out_chs, 3, groups=out_chs, act=act)
        self.pool = nn.MaxPool2d(3, 1, 1)
        self.fuse = ConvBnAct(2 * out_chs, out_chs, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.fuse(torch.cat([self.dw(x), self.pool(x)], dim=1))


def _build(ctx: OpContext, a: Mapping[str, Any]) -> nn.Module:
    return HybridStem(ctx.in_chs, a["out_chs"], a["act"])


register(OpSpec(
    name="hybrid",
    summary="hybrid stride-1 stem of the padding-free paper (conv, dw|maxpool, concat, 1x1)",
    roles=frozenset({"stem"}),
    fields=(out_chs_field(), act_field("hswish")),
    build=_build,
    out_chs=lambda in_chs, a: a["out_chs"],
    out_size=lambda size, a: size,
))
