"""Classifier heads.

- ``hc``: 1x1 conv-BN-act to ``out_chs`` features at full resolution, global average pool,
  dropout, linear (MobileNetV2, MnasNet, EfficientNet, MixNet, FBNet, ShuffleNetV2).
- ``hp``: global average pool, then an optional hidden linear layer with bias and activation,
  dropout, linear (MobileNetV3's efficient last stage, Howard et al., ICCV 2019; GhostNet).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from search_spaces.ops.common import act_field, dropout_field, out_chs_field
from search_spaces.ops.layers import ConvBnAct, create_act
from search_spaces.registry import Field, OpContext, OpSpec, register


class ClassifierHead(nn.Module):
    """``pre`` (features at full resolution) -> global average pool -> ``hidden`` -> dropout -> fc.

    ``num_classes == 0`` leaves the classifier out (the head then returns pooled features).
    """

    def __init__(self, pre: nn.Module, hidden: nn.Module, features: int, dropout: float, num_classes: int):
        super().__init__()
        self.pre = pre
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.hidden = hidden
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.num_features = features
        self.classifier = nn.Linear(features, num_classes) if num_classes > 0 else nn.Identity()

    def reset(self, num_classes: int) -> None:
        """Replace the final linear layer with a fresh one for ``num_classes`` classes."""
        self.classifier = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.pre(x)).flatten(1)
        return self.classifier(self.dropout(self.hidden(x)))


def _build_hc(ctx: OpContext, a: Mapping[str, Any]) -> nn.Module:
    pre = ConvBnAct(ctx.in_chs, a["out_chs"], 1, act=a["act"])
    return ClassifierHead(pre, nn.Identity(), a["out_chs"], a["dropout"], ctx.num_classes)


def _build_hp(ctx: OpContext, a: Mapping[str, Any]) -> nn.Module:
    if a["hidden"]:
        hidden = nn.Sequential(nn.Linear(ctx.in_chs, a["hidden"]), create_act(a["act"]))
        features = a["hidden"]
    else:
        hidden, features = nn.Identity(), ctx.in_chs
    return ClassifierHead(nn.Identity(), hidden, features, a["dropout"], ctx.num_classes)


register(OpSpec(
    name="hc",
    summary="head: 1x1 conv-BN-act, pool, dropout, linear",
    roles=frozenset({"head"}),
    fields=(out_chs_field(), act_field("relu"), dropout_field()),
    build=_build_hc,
    out_chs=lambda in_chs, a: a["out_chs"],
    out_size=lambda size, a: 1,
))

register(OpSpec(
    name="hp",
    summary="head: pool, optional hidden linear+act, dropout, linear",
    roles=frozenset({"head"}),
    fields=(
        Field("hidden", "h", "int", 0, doc="hidden width, 0 = none",
              check=lambda v: None if v >= 0 else f"must be >= 0, got {v}"),
        act_field("hswish"),
        dropout_field(),
    ),
    build=_build_hp,
    out_chs=lambda in_chs, a: a["hidden"] or in_chs,
    out_size=lambda size, a: 1,
))
