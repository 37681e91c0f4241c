"""Shared steps of the zoo's family builders: stage tables, depth scaling, stems, downsampling.

A family lists its body as stages of ``(repeats, token)`` rows, where a token is the compact
block form of :mod:`nas.arch_string` (``ir_c40_k3.5.7_s2_e6_aswish_se0.5``). Decoding follows
timm's ``decode_arch_def`` in small pure steps: scale the repeats of each stage
(:func:`scale_stage_depth`), expand each row into blocks where only the first copy keeps the
row's stride, round the output channels with the family's width rule (:func:`expand_stages`).

Every chain-structured family builder takes a :class:`Layout` (input size, classes, stem kind,
strides and downsampling of its stride-2 blocks, dropout), so the padding-free paper's CIFAR
variants are layouts of the ImageNet builders rather than builders of their own. HarDNet, whose
blocks are not a chain of layers, builds its own stages (:mod:`search_spaces.zoo.hardnet`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from nas.arch import Arch, Block
from nas.arch_string import token_to_blocks
from nas.checks import is_real
from search_spaces.ops.layers import make_divisible
from search_spaces.stems import stem_block

T = TypeVar("T")

Row = tuple[int, str]
Stage = Sequence[Row]



def round_channels(chs: float, width: float = 1.0, divisor: int = 8) -> int:
    """timm's ``round_channels``: ``make_divisible(chs * width, divisor)``."""
    return make_divisible(chs * width, divisor)


def scale_stage_depth(repeats: Sequence[int], multiplier: float, trunc: str = "ceil") -> list[int]:
    """Scale the repeats of one stage's rows by ``multiplier`` (timm's rule).

    The stage total is scaled (``ceil``, or ``round`` with a floor of 1) and handed back to the
    rows from the last to the first in proportion to their share, so later rows absorb the
    rounding.
    """
    if multiplier <= 0:
        raise ValueError(f"depth multiplier must be > 0, got {multiplier}")
    if trunc not in ("ceil", "round"):
        raise ValueError(f"depth truncation must be 'ceil' or 'round', got {trunc!r}")
    total = sum(repeats)
    target = max(1, round(total * multiplier)) if trunc == "round" else math.ceil(total * multiplier)
    out: list[int] = []
    for r in reversed(repeats):
        scaled = max(1, round(r / total * target))
        out.append(scaled)
        total -= r
        target -= scaled
    return out[::-1]


def expand_stages(
    stages: Sequence[Stage],
    round_chs: Callable[[int], int],
    depth: float = 1.0,
    depth_trunc: str = "ceil",
    **overrides: Any,
) -> list[Block]:
    """Blocks of a stage table: repeats scaled by ``depth``, only each row's first block keeps
    its stride, ``out_chs`` passed through ``round_chs``, ``overrides`` set on every block."""
    blocks: list[Block] = []
    for stage in stages:
        counts = scale_stage_depth([r for r, _ in stage], depth, depth_trunc)
        for count, (_, token) in zip(counts, stage, strict=True):
            (block,) = token_to_blocks(token)
            block = block.replace(out_chs=round_chs(block["out_chs"]), **overrides)
            blocks.append(block)
            if count > 1:
                blocks.extend([block.replace(stride=1)] * (count - 1))
    return blocks


def set_strides(blocks: Sequence[Block], strides: Sequence[int] | None) -> list[Block]:
    """Give the layout's stride-2 body blocks, in order, the strides ``strides`` (``None``: keep).

    The CIFAR variants of the padding-free paper keep the first one at stride 1, for example.
    """
    out = list(blocks)
    if strides is None:
        return out
    stride2 = [i for i, b in enumerate(blocks) if b.kwargs.get("stride") == 2]
    strides = list(strides)
    if len(strides) != len(stride2):
        raise ValueError(f"strides: expected one stride per stride-2 block ({len(stride2)}), got {len(strides)}")
    for i, s in zip(stride2, strides, strict=True):
        if s not in (1, 2):
            raise ValueError(f"strides: each stride must be 1 or 2, got {s!r}")
        out[i] = out[i].replace(stride=s)
    return out


def apply_downsample(blocks: Sequence[Block], downsample: str | Sequence[str]) -> list[Block]:
    """Set the ``downsample`` field of the stride-2 body blocks.

    ``downsample`` is one kind for all of them (``"standard"`` or ``"padding_free"``) or one
    kind per stride-2 block, in order. Raises ``ValueError`` on a wrong count or a stride-2
    block whose op has no such field.
    """
    stride2 = [i for i, b in enumerate(blocks) if b.kwargs.get("stride") == 2]
    kinds = [downsample] * len(stride2) if isinstance(downsample, str) else list(downsample)
    if len(kinds) != len(stride2):
        raise ValueError(f"downsample: expected one kind per stride-2 block ({len(stride2)}), got {len(kinds)}")
    out = list(blocks)
    for i, kind in zip(stride2, kinds, strict=True):
        if "downsample" not in out[i].spec.field_by_name:
            if kind != "standard":
                raise ValueError(f"downsample: block {i} ({out[i].op}) has no padding-free variant")
            continue
        out[i] = out[i].replace(downsample=kind)
    return out


def pick_variant(variants: Mapping[str, T], variant: str, width: float) -> T:
    """The published ``variant`` of a family (``ValueError`` listing the known ones) after
    checking its ``width`` multiplier (:func:`check_width`)."""
    if variant not in variants:
        raise ValueError(f"variant must be one of {', '.join(variants)}, got {variant!r}")
    check_width(width)
    return variants[variant]


def check_width(width: float) -> None:
    """Reject a non-positive width multiplier up front."""
    if not is_real(width) or not width > 0:
        raise ValueError(f"width multiplier must be > 0, got {width!r}")


@dataclass(frozen=True)
class Layout:
    """Where a family's published body sits in a network: the options every family builder takes
    (the defaults are the ImageNet reference's; the padding-free paper's CIFAR variants change them).

    Attributes:
        resolution: input size.
        num_classes: classifier outputs.
        stem: a kind of :mod:`search_spaces.stems`: ``"conv"`` (3x3 conv-BN-act at stride 2, the
            ImageNet stem), ``"conv_s1"`` (at stride 1, for small inputs) or ``"hybrid"`` (the
            padding-free paper's stride-1 stem).
        strides: the strides of the layout's stride-2 blocks, in order (``None`` keeps them).
        downsample: ``"standard"`` or ``"padding_free"`` for every (remaining) stride-2 block, or
            one kind per stride-2 block in order.
        dropout: before the classifier (``None``: the family's reference value).
    """

    resolution: int = 224
    num_classes: int = 1000
    stem: str = "conv"
    strides: Sequence[int] | None = None
    downsample: str | Sequence[str] = "standard"
    dropout: float | None = None

    def stem_block(self, out_chs: int, act: str) -> Block:
        """The stem this layout asks for, ``out_chs`` wide with activation ``act``."""
        return stem_block(self.stem, out_chs, act)

    def dropout_or(self, reference: float) -> float:
        """The classifier's dropout: this layout's, else the family's ``reference`` value."""
        return reference if self.dropout is None else self.dropout

    def arch(self, blocks: Sequence[Block], *, stem: Block, head: Block, tail: Sequence[Block] = ()) -> Arch:
        """The network: ``strides`` and ``downsample`` applied to the stride-2 ``blocks``, then
        ``tail`` blocks (a final 1x1 conv), between ``stem`` and ``head``."""
        body = apply_downsample(set_strides(blocks, self.strides), self.downsample) + list(tail)
        return Arch(resolution=self.resolution, num_classes=self.num_classes, stem=stem, blocks=tuple(body),
                    head=head)


IMAGENET = Layout()
"""The reference layout of the ImageNet families: 224 px, 1000 classes, 3x3 stride-2 conv stem."""
