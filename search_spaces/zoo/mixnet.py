"""MixNet (Tan & Le, "MixConv: Mixed Depthwise Convolutional Kernels", BMVC 2019).

``mixnet_s``, ``mixnet_m`` and ``mixnet_l`` reproduce timm's models of those names, a port of
the TensorFlow TPU reference: mixed-kernel depthwise convs (a kernel list such as ``k3.5.7``
splits the expanded channels into equal groups, the remainder going to the first), 1x1
expansion/projection convs split into two groups (timm's ``a1.1`` / ``p1.1``, here
``exp_groups=2`` / ``proj_groups=2``), ReLU in the stem, the first two stages and the head,
swish with squeeze-excite (sized from the block input, sigmoid gate) in the later stages, and a
1536-wide 1x1 conv head. MixNet-L is MixNet-M at width 1.3 (``make_divisible(c * 1.3, 8)`` for
the stem and blocks; the head stays 1536).
"""

from __future__ import annotations

from functools import partial

from nas.arch import Arch, Block
from search_spaces.zoo import ZooEntry
from search_spaces.zoo._stages import IMAGENET, Layout, expand_stages, pick_variant, round_channels

PAPER = "Tan & Le, MixConv: Mixed Depthwise Convolutional Kernels, BMVC 2019"

# Stages of (repeats, block token); within a row only the first block keeps the stride.
# MixNet-S, the paper's Figure 8(a).
_S = (
    ((1, "ds_c16"),),
    ((1, "ir_c24_s2_e6_eg2_pg2"), (1, "ir_c24_e3_eg2_pg2")),
    ((1, "ir_c40_k3.5.7_s2_e6_aswish_se0.5"), (3, "ir_c40_k3.5_e6_aswish_se0.5_eg2_pg2")),
    ((1, "ir_c80_k3.5.7_s2_e6_aswish_se0.25_pg2"), (2, "ir_c80_k3.5_e6_aswish_se0.25_pg2")),
    ((1, "ir_c120_k3.5.7_e6_aswish_se0.5_eg2_pg2"), (2, "ir_c120_k3.5.7.9_e3_aswish_se0.5_eg2_pg2")),
    ((1, "ir_c200_k3.5.7.9.11_s2_e6_aswish_se0.5"), (2, "ir_c200_k3.5.7.9_e6_aswish_se0.5_pg2")),
)
# MixNet-M, the paper's Figure 8(b).
_M = (
    ((1, "ds_c24"),),
    ((1, "ir_c32_k3.5.7_s2_e6_eg2_pg2"), (1, "ir_c32_e3_eg2_pg2")),
    ((1, "ir_c40_k3.5.7.9_s2_e6_aswish_se0.5"), (3, "ir_c40_k3.5_e6_aswish_se0.5_eg2_pg2")),
    ((1, "ir_c80_k3.5.7_s2_e6_aswish_se0.25"), (3, "ir_c80_k3.5.7.9_e6_aswish_se0.25_eg2_pg2")),
    ((1, "ir_c120_e6_aswish_se0.5"), (3, "ir_c120_k3.5.7.9_e3_aswish_se0.5_eg2_pg2")),
    ((1, "ir_c200_k3.5.7.9_s2_e6_aswish_se0.5"), (3, "ir_c200_k3.5.7.9_e6_aswish_se0.5_pg2")),
)
# variant: (stages, stem channels, depth truncation)
_VARIANTS = {"s": (_S, 16, "ceil"), "m": (_M, 24, "round")}


def mixnet(
    variant: str = "s",
    width: float = 1.0,
    depth: float = 1.0,
    layout: Layout = IMAGENET,
) -> Arch:
    """MixNet-S or -M at width and depth multipliers (MixNet-L is ``mixnet("m", 1.3)``).

    Args:
        variant: ``"s"`` or ``"m"``.
        width: channel multiplier for the stem and the blocks (the 1536-wide head is fixed).
        depth: repeat multiplier per stage (timm's rule: ``ceil`` for S, ``round`` for M).
        layout: where the body sits (input size, classes, stem, strides, downsampling, dropout:
            :class:`~search_spaces.zoo._stages.Layout`); dropout by default the reference's 0.2 for S,
            0.25 for M and L.
    """
    stages, stem_chs, trunc = pick_variant(_VARIANTS, variant, width)
    ch = partial(round_channels, width=width)
    blocks = expand_stages(stages, ch, depth=depth, depth_trunc=trunc)
    return layout.arch(blocks, stem=layout.stem_block(ch(stem_chs), "relu"),
                       head=Block.make("hc", out_chs=1536, act="relu", dropout=layout.dropout_or(0.2 if variant == "s" else 0.25)))


ENTRIES = (
    ZooEntry("mixnet_s", lambda: mixnet("s"), PAPER, "timm :: mixnet_s"),
    ZooEntry("mixnet_m", lambda: mixnet("m"), PAPER, "timm :: mixnet_m"),
    ZooEntry("mixnet_l", lambda: mixnet("m", 1.3), PAPER, "timm :: mixnet_l"),
)
