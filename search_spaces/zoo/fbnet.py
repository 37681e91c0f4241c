"""FBNet (Wu et al., "FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable Neural
Architecture Search", CVPR 2019).

``fbnet_c`` reproduces timm's ``fbnetc_100``, FBNet-C as read from the paper's Figure 4: a
16-channel stem, inverted residuals (an expansion of 1 still has its 1x1 expansion conv), ReLU
throughout, no squeeze-excite and a 1984-wide 1x1 conv head. Its 22 searched layers are kept as
the paper and mobile-vision's ``fbnet_c`` list them: the second layer of the 24-channel stage is
the ``skip`` candidate (an identity there, no parameters), which timm leaves out; the network is
the same and it is the point of the ``fbnet`` search space. With ``width`` the stem and
block widths are ``make_divisible(c * width, 8)``; the head stays 1984.
"""

from __future__ import annotations

from functools import partial

from nas.arch import Arch, Block
from search_spaces.zoo import ZooEntry
from search_spaces.zoo._stages import IMAGENET, Layout, check_width, expand_stages, round_channels

PAPER = ("Wu et al., FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable Neural "
         "Architecture Search, CVPR 2019")

# Stages of (repeats, block token); within a row only the first block keeps the stride.
_FBNET_C = (
    ((1, "ir_c16_e1"),),
    ((1, "ir_c24_s2_e6"), (1, "skip_c24"), (2, "ir_c24_e1")),
    ((1, "ir_c32_k5_s2_e6"), (1, "ir_c32_k5_e3"), (1, "ir_c32_k5_e6"), (1, "ir_c32_e6")),
    ((1, "ir_c64_k5_s2_e6"), (1, "ir_c64_k5_e3"), (2, "ir_c64_k5_e6")),
    ((3, "ir_c112_k5_e6"), (1, "ir_c112_k5_e3")),
    ((4, "ir_c184_k5_s2_e6"),),
    ((1, "ir_c352_e6"),),
)


def fbnet(
    variant: str = "c",
    width: float = 1.0,
    layout: Layout = IMAGENET,
) -> Arch:
    """FBNet-C at a width multiplier (timm's layout).

    Args:
        variant: ``"c"`` (the one published layout timm carries).
        width: channel multiplier for the stem and the blocks (the 1984-wide head is fixed).
        layout: where the body sits (input size, classes, stem, strides, downsampling, dropout:
            :class:`~search_spaces.zoo._stages.Layout`); dropout 0.2 by default.
    """
    if variant != "c":
        raise ValueError(f"variant must be 'c', got {variant!r}")
    check_width(width)
    ch = partial(round_channels, width=width)
    blocks = expand_stages(_FBNET_C, ch)
    return layout.arch(blocks, stem=layout.stem_block(ch(16), "relu"),
                       head=Block.make("hc", out_chs=1984, act="relu", dropout=layout.dropout_or(0.2)))


ENTRIES = (
    ZooEntry("fbnet_c", lambda: fbnet("c"), PAPER, "timm :: fbnetc_100"),
)
