"""Cutting a smaller op's weights out of a larger one's: the slicing rule of weight sharing and of
weight inheritance.

Once-for-All (Cai et al., "Once-for-All: Train One Network and Specialize it for Efficient
Deployment", ICLR 2020) extracts a sub-network from the full one by keeping the *leading*
channels of every channel dimension (elastic width) and the *centre* of every kernel (elastic
kernel). One rule serves two places: the weight-sharing supernet
(:mod:`evaluators.supernet`) cuts each candidate's tensors out of a shared one, and weight
inheritance (:mod:`nas.inherit`) cuts a searched network's tensors out of a trained network's.

A mixed-kernel depthwise conv (:class:`~search_spaces.ops.layers.MixedConv2d`) holds one conv per
channel group; each group is treated as a slice of one depthwise tensor, starting at its group's
first channel (a mixed kernel is a per-channel choice of kernel).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from search_spaces.ops.layers import MixedConv2d

__all__ = ["centred_cut", "fits_inside", "mixed_conv_slot"]


def centred_cut(shape: Sequence[int], full: Sequence[int], *, offset: int = 0) -> tuple[slice, ...]:
    """The slices of a ``full``-shaped tensor that give a ``shape``-shaped one: the leading part of
    the channel dimensions (0 and 1; the first from ``offset``), the centre of the kernel
    dimensions (2 and up)."""
    out = []
    for d, (n, m) in enumerate(zip(shape, full, strict=True)):
        start = (m - n) // 2 if d >= 2 else (offset if d == 0 else 0)
        out.append(slice(start, start + n))
    return tuple(out)


def fits_inside(shape: Sequence[int], full: Sequence[int], *, offset: int = 0) -> bool:
    """Whether :func:`centred_cut` can take ``shape`` out of ``full``: as many dimensions, none
    larger (the first from ``offset``), and every kernel dimension centred exactly (an odd kernel
    inside an odd one, an even inside an even)."""
    if len(shape) != len(full) or offset < 0:
        return False
    for d, (n, m) in enumerate(zip(shape, full, strict=True)):
        if n + (offset if d == 0 else 0) > m or (d >= 2 and (m - n) % 2):
            return False
    return True


def mixed_conv_slot(op: nn.Module, name: str) -> tuple[str, int]:
    """``(shared name, channel offset)`` of tensor ``name`` of module ``op``: a channel group's
    conv of a :class:`MixedConv2d` (``<m>.convs.<g>.weight``) is ``<m>.weight`` from its group's
    first channel; anything else is itself at offset 0."""
    module, _, attr = name.rpartition(".")
    owner, _, group = module.rpartition(".convs.")
    if group.isdigit() and isinstance(mixed := op.get_submodule(owner), MixedConv2d):
        return f"{owner}.{attr}", sum(mixed.splits[:int(group)])
    return name, 0
