"""EfficientNet (Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks", ICML 2019).

``efficientnet_b0`` reproduces timm's model of that name, a port of the TensorFlow TPU reference:
swish everywhere, squeeze-excite 0.25 in every block (sized from the block input, sigmoid gate),
a 32-channel stem and a 1280-wide 1x1 conv head. The builder scales like the paper's compound
scaling (B1-B7 are ``efficientnet(width, depth, resolution)`` with the paper's coefficients):
channels, stem and head with ``make_divisible(c * width, 8)``, each stage's repeats with
``ceil(r * depth)``.
"""

from __future__ import annotations

from functools import partial

from nas.arch import Arch, Block
from search_spaces.zoo import ZooEntry
from search_spaces.zoo._stages import IMAGENET, Layout, check_width, expand_stages, round_channels

PAPER = "Tan & Le, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks, ICML 2019"

# Stages of (repeats, block token), the paper's Table 1; only the first block of a row keeps the
# stride. Every block gets swish (set below).
_B0 = (
    ((1, "ds_c16_se0.25"),),
    ((2, "ir_c24_s2_e6_se0.25"),),
    ((2, "ir_c40_k5_s2_e6_se0.25"),),
    ((3, "ir_c80_s2_e6_se0.25"),),
    ((3, "ir_c112_k5_e6_se0.25"),),
    ((4, "ir_c192_k5_s2_e6_se0.25"),),
    ((1, "ir_c320_e6_se0.25"),),
)


def efficientnet(
    width: float = 1.0,
    depth: float = 1.0,
    layout: Layout = IMAGENET,
) -> Arch:
    """EfficientNet at width and depth multipliers (B0 at the defaults; timm's layout).

    Args:
        width: channel multiplier (stem, blocks and head).
        depth: repeat multiplier per stage (``ceil``).
        layout: where the body sits (input size, classes, stem, strides, downsampling, dropout:
            :class:`~search_spaces.zoo._stages.Layout`); dropout the paper's 0.2 for B0 by default.
    """
    check_width(width)
    ch = partial(round_channels, width=width)
    blocks = expand_stages(_B0, ch, depth=depth, act="swish")
    return layout.arch(blocks, stem=layout.stem_block(ch(32), "swish"),
                       head=Block.make("hc", out_chs=ch(1280), act="swish", dropout=layout.dropout_or(0.2)))


ENTRIES = (
    ZooEntry("efficientnet_b0", lambda: efficientnet(), PAPER, "timm :: efficientnet_b0"),
)
