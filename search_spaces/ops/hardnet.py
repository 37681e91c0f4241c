"""Harmonic dense block (HarDNet): Chao et al., "HarDNet: A Low Memory Traffic Network", ICCV 2019.

One registered op, ``hardnet``: the harmonic dense block alone, whose output is the concatenation
of some of its layers. The 1x1 transition conv-BN-act that follows each block in the reference is
the ``cn`` op, and the stride-2 downsampling of the depthwise-separable nets (a depthwise 3x3
conv-BN without activation) is ``cn`` with ``groups`` equal to the channels and ``act=none``, so
a HarDNet is a flat sequence of registered ops (see :mod:`search_spaces.zoo.hardnet`).

The link pattern and channel arithmetic follow the reference implementations exactly (PingoLH's
``HarDBlock.get_link`` and pytorchcv's ``calc_blocks_params``; osmr/imgclsmob is the reference of
the zoo entries):

- Layers are numbered ``1..n``; layer ``0`` is the block input. Layer ``k`` reads the outputs of
  layers ``k - 2**i`` for every ``2**i`` dividing ``k`` (``i < 10``), concatenated nearest first.
- Its width starts at the growth rate and is multiplied by the growth multiplier once per link
  beyond the first, then rounded to an even number (``int(int(w + 1) / 2) * 2``).
- The block outputs the concatenation of the odd layers and the last one (the input is not kept),
  so the output width depends on ``growth``, ``mult`` and ``layers`` only.

A layer is, by the ``layer`` field, ``ds`` (the depthwise-separable flavour of HarDNet-39DS/68DS:
1x1 conv-BN-act then depthwise 3x3 conv-BN, no activation) or ``conv`` (the original 3x3
conv-BN-act of HarDNet-68/85).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import torch
from torch import nn

from search_spaces.ops.common import act_field
from search_spaces.ops.layers import ConvBnAct
from search_spaces.registry import Field, OpContext, OpSpec, register

__all__ = [
    "LAYER_KINDS",
    "MAX_LAYERS",
    "HarmonicBlock",
    "hardnet_links",
    "hardnet_layer_widths",
    "hardnet_in_widths",
    "hardnet_out_layers",
    "hardnet_out_chs",
]

LAYER_KINDS = ("ds", "conv")
MAX_LAYERS = 1023
"""The reference looks for links ``k - 2**i`` with ``i < 10`` only; up to 1023 layers every
power of two dividing ``k`` is below ``2**10``, so the pattern stays the harmonic one."""


def hardnet_links(k: int) -> tuple[int, ...]:
    """The layers that layer ``k`` (``>= 1``) reads, nearest first; ``0`` is the block input.

    ``hardnet_links(1) == (0,)``, ``hardnet_links(4) == (3, 2, 0)``, ``hardnet_links(6) == (5, 4)``.
    """
    if k < 1:
        raise ValueError(f"layer index must be >= 1, got {k}")
    return tuple(k - 2**i for i in range(10) if k % 2**i == 0)


@cache
def hardnet_layer_widths(growth: int, mult: float, layers: int) -> tuple[int, ...]:
    """Output widths of layers ``1..layers``: ``growth * mult**(links - 1)``, rounded to even as
    the reference does (same float operations, same order, so the same integers)."""
    widths = []
    for k in range(1, layers + 1):
        w: float = growth
        for _ in hardnet_links(k)[1:]:
            w *= mult
        widths.append(int(int(w + 1) / 2) * 2)
    return tuple(widths)


def hardnet_in_widths(in_chs: int, growth: int, mult: float, layers: int) -> tuple[int, ...]:
    """Input widths of layers ``1..layers`` (the sum of the widths of the layers each one reads)."""
    widths = (in_chs, *hardnet_layer_widths(growth, mult, layers))
    return tuple(sum(widths[t] for t in hardnet_links(k)) for k in range(1, layers + 1))


def hardnet_out_layers(layers: int) -> tuple[int, ...]:
    """The layers whose outputs the block concatenates: the odd ones and the last one."""
    return tuple(k for k in range(1, layers + 1) if k % 2 == 1 or k == layers)


def hardnet_out_chs(growth: int, mult: float, layers: int) -> int:
    """Output channels of a block (independent of its input channels)."""
    widths = hardnet_layer_widths(growth, mult, layers)
    return sum(widths[k - 1] for k in hardnet_out_layers(layers))


class HarmonicBlock(nn.Module):
    """The harmonic dense block: ``layers`` conv layers linked as in :func:`hardnet_links`,
    output the concatenation of the layers :func:`hardnet_out_layers` names."""

    def __init__(self, in_chs: int, growth: int, mult: float, layers: int, layer: str = "ds", act: str = "relu6"):
        super().__init__()
        self.links = tuple(hardnet_links(k) for k in range(1, layers + 1))
        self.keep = hardnet_out_layers(layers)
        outs = hardnet_layer_widths(growth, mult, layers)
        ins = hardnet_in_widths(in_chs, growth, mult, layers)
        self.layers = nn.ModuleList(_layer(i, o, layer, act) for i, o in zip(ins, outs, strict=True))
        self.out_chs = sum(outs[k - 1] for k in self.keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x]
        for links, layer in zip(self.links, self.layers, strict=True):
            inp = [outs[t] for t in links]
            outs.append(layer(inp[0] if len(inp) == 1 else torch.cat(inp, dim=1)))
        return torch.cat([outs[k] for k in self.keep], dim=1)


def _layer(in_chs: int, out_chs: int, kind: str, act: str) -> nn.Module:
    if kind == "ds":
        # pytorchcv's invdwsconv3x3_block: 1x1 conv-BN-act, then depthwise 3x3 conv-BN, no act.
        return nn.Sequential(
            ConvBnAct(in_chs, out_chs, 1, act=act),
            ConvBnAct(out_chs, out_chs, 3, groups=out_chs, act="none"),
        )
    return ConvBnAct(in_chs, out_chs, 3, act=act)


def _build(ctx: OpContext, a: Mapping[str, Any]) -> nn.Module:
    return HarmonicBlock(ctx.in_chs, a["growth"], a["mult"], a["layers"], a["layer"], a["act"])


register(OpSpec(
    name="hardnet",
    summary="harmonic dense block (HarDNet): links k-2^i, output = odd layers + last",
    roles=frozenset({"block"}),
    fields=(
        Field("growth", "g", "int", doc="growth rate: width of a layer with one link",
              check=lambda v: None if v > 0 else f"must be > 0, got {v}"),
        Field("mult", "m", "float", doc="growth multiplier per extra link (1.6 in HarDNet-39DS, 1.7 in 68DS)",
              check=lambda v: None if v > 0 else f"must be > 0, got {v}"),
        Field("layers", "n", "int", doc="number of layers in the block",
              check=lambda v: None if 1 <= v <= MAX_LAYERS else f"must be in 1..{MAX_LAYERS}, got {v}"),
        Field("layer", "l", "str", "ds", doc="layer type: ds (1x1 conv-BN-act, dw 3x3 conv-BN) or conv (3x3)",
              choices=LAYER_KINDS),
        act_field("relu6"),
    ),
    build=_build,
    out_chs=lambda in_chs, a: hardnet_out_chs(a["growth"], a["mult"], a["layers"]),
    out_size=lambda size, a: size,
))
