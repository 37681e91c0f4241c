"""MnasNet (Tan et al., "MnasNet: Platform-Aware Neural Architecture Search for Mobile", CVPR 2019).

``mnasnet_a1`` (with squeeze-excite) and ``mnasnet_b1`` (without) reproduce timm's
``semnasnet_100`` / ``mnasnet_100`` (registered earlier as ``mnasnet_a1`` / ``mnasnet_b1``), a
port of the TensorFlow TPU reference: ReLU throughout, a 32-channel stem, a depthwise-separable
first block without shortcut, inverted residuals whose squeeze-excite is sized from the block
input (``round(mid * 0.25 / exp_ratio)``, sigmoid gate) and a 1280-wide 1x1 conv head. With
``width`` the stem and block widths are ``make_divisible(c * width, 8)``; the head stays 1280.
"""

from __future__ import annotations

from functools import partial

from nas.arch import Arch, Block
from search_spaces.zoo import ZooEntry
from search_spaces.zoo._stages import IMAGENET, Layout, expand_stages, pick_variant, round_channels

PAPER = "Tan et al., MnasNet: Platform-Aware Neural Architecture Search for Mobile, CVPR 2019"

# Stages of (repeats, block token); within a row only the first block keeps the stride.
# MnasNet-A1, the paper's Figure 7.
_A1 = (
    ((1, "ds_c16_ns1"),),
    ((2, "ir_c24_s2_e6"),),
    ((3, "ir_c40_k5_s2_e3_se0.25"),),
    ((4, "ir_c80_s2_e6"),),
    ((2, "ir_c112_e6_se0.25"),),
    ((3, "ir_c160_k5_s2_e6_se0.25"),),
    ((1, "ir_c320_e6"),),
)
# MnasNet-B1, the TF reference's "mnasnet-b1" (no squeeze-excite).
_B1 = (
    ((1, "ds_c16_ns1"),),
    ((3, "ir_c24_s2_e3"),),
    ((3, "ir_c40_k5_s2_e3"),),
    ((3, "ir_c80_k5_s2_e6"),),
    ((2, "ir_c96_e6"),),
    ((4, "ir_c192_k5_s2_e6"),),
    ((1, "ir_c320_e6_ns1"),),
)
_VARIANTS = {"a1": _A1, "b1": _B1}


def mnasnet(
    variant: str = "a1",
    width: float = 1.0,
    layout: Layout = IMAGENET,
) -> Arch:
    """MnasNet-A1 or -B1 at a width multiplier (timm's layout).

    Args:
        variant: ``"a1"`` or ``"b1"``.
        width: channel multiplier for the stem and the blocks (the 1280-wide head is fixed).
        layout: where the body sits (input size, classes, stem, strides, downsampling, dropout:
            :class:`~search_spaces.zoo._stages.Layout`); dropout 0.2 by default.
    """
    stages = pick_variant(_VARIANTS, variant, width)
    ch = partial(round_channels, width=width)
    blocks = expand_stages(stages, ch)
    return layout.arch(blocks, stem=layout.stem_block(ch(32), "relu"),
                       head=Block.make("hc", out_chs=1280, act="relu", dropout=layout.dropout_or(0.2)))


ENTRIES = (
    ZooEntry("mnasnet_a1", lambda: mnasnet("a1"), PAPER, "timm :: mnasnet_a1 (semnasnet_100)"),
    ZooEntry("mnasnet_b1", lambda: mnasnet("b1"), PAPER, "timm :: mnasnet_b1 (mnasnet_100)"),
)
