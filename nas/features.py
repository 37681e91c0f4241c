"""Where a network's multi-scale feature maps are, read off its description: what a detection or
segmentation head sitting on it (a backbone) needs to know.

The convention is timm's ``features_only`` / ``feature_info`` (Wightman, "PyTorch Image Models"):
a feature point is the last layer of the stem and blocks at each *reduction* (input size over
map size, the product of the strides so far), described by its channel count, its reduction and
the module that computes it. MobileNetV2 at 224 px gives five, at reductions 2, 4, 8, 16 and 32
(``blocks.0``, ``blocks.2``, ``blocks.5``, ``blocks.12``, ``blocks.16``); the head's 1x1 conv is
no feature point, as in timm.
"""

from __future__ import annotations

from typing import Any

from nas.arch import Arch

__all__ = ["feature_info", "feature_layers", "feature_take_indices", "FeatureInfo"]


def _trunk(arch: Arch) -> list[tuple[str, int, int]]:
    """``(module name, output channels, reduction)`` of the stem and every block, in order."""
    out, reduction = [], 1
    for info in arch.layers():
        if info.role == "head":
            break
        reduction *= info.block.kwargs.get("stride", 1)
        out.append(("stem" if info.role == "stem" else f"blocks.{info.index}", info.out_chs, reduction))
    return out


def feature_layers(arch: Arch) -> list[int]:
    """Positions in the trunk (0: the stem, ``i + 1``: block ``i``) of the feature points: the last
    layer at each reduction."""
    trunk = _trunk(arch)
    return [p for p in range(len(trunk)) if p == len(trunk) - 1 or trunk[p + 1][2] > trunk[p][2]]


def feature_info(arch: Arch) -> list[dict[str, Any]]:
    """timm's ``feature_info`` of ``arch``: per feature point, ``num_chs``, ``reduction`` and
    ``module`` (the state-dict prefix of the layer whose output it is)."""
    trunk = _trunk(arch)
    return [{"num_chs": trunk[p][1], "reduction": trunk[p][2], "module": trunk[p][0]} for p in feature_layers(arch)]


def feature_take_indices(num: int, indices: int | list[int] | None = None) -> list[int]:
    """The feature points ``indices`` selects among ``num``, ascending: ``None``, all of them; an
    int ``n``, the last ``n``; a list, those (negative ones count from the end). Out of range:
    ``ValueError``. (Torch-only and scriptable: exported networks call it.)"""
    if indices is None:
        return list(range(num))
    if isinstance(indices, int):
        if indices < 1 or indices > num:
            raise ValueError(f"take the last n of {num} feature maps: n must be in 1..{num}")
        return list(range(num - indices, num))
    take: list[int] = []
    for i in indices:
        j = i + num if i < 0 else i
        if j < 0 or j >= num:
            raise ValueError(f"feature index {i} out of range for {num} feature maps")
        if j not in take:
            take.append(j)
    return sorted(take)


class FeatureInfo(list):
    """The ``feature_info`` of a features-only network: the list of dicts, plus timm's accessors."""

    def channels(self) -> list[int]:
        """Channels of each feature map."""
        return [f["num_chs"] for f in self]

    def reduction(self) -> list[int]:
        """Reduction (input size over map size) of each feature map."""
        return [f["reduction"] for f in self]

    def module_name(self) -> list[str]:
        """Module computing each feature map."""
        return [f["module"] for f in self]
