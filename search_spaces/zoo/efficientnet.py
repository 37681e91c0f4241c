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

from collections.abc import Sequence
from functools import partial

from nas.arch import Arch, Block
from search_spaces.zoo import ZooEntry
from search_spaces.zoo._stages import (
    assemble,
    check_width,
    expand_stages,
    make_stem,
    round_channels,
)

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
    resolution: int = 224,
    num_classes: int = 1000,
    *,
    stem: str = "conv",
    stem_stride: int = 2,
    strides: Sequence[int] | None = None,
    downsample: str | Sequence[str] = "standard",
    dropout: float = 0.2,
) -> Arch:
    """EfficientNet at width and depth multipliers (B0 at the defaults; timm's layout).

    Args:
        width: channel multiplier (stem, blocks and head).
        depth: repeat multiplier per stage (``ceil``).
        resolution: input size; ``num_classes``: classifier outputs.
        stem: ``"conv"`` (3x3 conv-BN-swish) or ``"hybrid"`` (stride-1 stem of the padding-free
            paper; needs ``stem_stride=1``).
        stem_stride: 2 for ImageNet, 1 for small inputs.
        strides: the strides of the layout's stride-2 blocks, in order (``None`` keeps them).
        downsample: ``"standard"`` or ``"padding_free"`` for every (remaining) stride-2 block, or
            one kind per stride-2 block in order.
        dropout: before the classifier (the paper's 0.2 for B0).
    """
    check_width(width)
    ch = partial(round_channels, width=width)
    blocks = expand_stages(_B0, ch, depth=depth, act="swish")
    return assemble(blocks, stem=make_stem(stem, ch(32), stem_stride, "swish"),
                    head=Block.make("hc", out_chs=ch(1280), act="swish", dropout=dropout),
                    resolution=resolution, num_classes=num_classes, strides=strides, downsample=downsample)


ENTRIES = (
    ZooEntry("efficientnet_b0", lambda: efficientnet(), PAPER, "timm :: efficientnet_b0"),
)
