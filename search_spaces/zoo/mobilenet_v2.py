"""MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018).

``mobilenet_v2_100`` reproduces torchvision's ``mobilenet_v2``; the width variants reproduce
timm's ``mobilenetv2_035/050/140`` (channels rounded with ``make_divisible(c * width, 8)``, the
head kept at 1280 unless the width exceeds 1.0).
"""

from __future__ import annotations

from nas.arch import Arch, Block
from search_spaces.ops.layers import make_divisible
from search_spaces.zoo import ZooEntry
from search_spaces.zoo._stages import IMAGENET, Layout, check_width

PAPER = "Sandler et al., MobileNetV2: Inverted Residuals and Linear Bottlenecks, CVPR 2018"

# (expansion, out channels, repeats, first stride) per stage, from the paper's Table 2.
_STAGES = ((6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenet_v2(width: float = 1.0, layout: Layout = IMAGENET) -> Arch:
    """MobileNetV2 at a width multiplier (ReLU6, 1280-wide head for widths <= 1.0).

    Args:
        width: channel multiplier (``make_divisible(c * width, 8)``).
        layout: where the body sits (input size, classes, stem, strides, downsampling, dropout:
            :class:`~search_spaces.zoo._stages.Layout`); dropout 0.2 by default.
    """
    check_width(width)

    def ch(c: int) -> int:
        return make_divisible(c * width)

    blocks = [Block.make("ds", out_chs=ch(16), act="relu6")]
    for exp, out, repeats, stride in _STAGES:
        for i in range(repeats):
            blocks.append(Block.make("ir", out_chs=ch(out), exp_ratio=exp, stride=stride if i == 0 else 1, act="relu6"))
    head = Block.make("hc", out_chs=ch(1280) if width > 1.0 else 1280, act="relu6", dropout=layout.dropout_or(0.2))
    return layout.arch(blocks, stem=layout.stem_block(ch(32), "relu6"), head=head)

ENTRIES = (
    ZooEntry("mobilenet_v2_035", lambda: mobilenet_v2(0.35), PAPER, "timm :: mobilenetv2_035"),
    ZooEntry("mobilenet_v2_050", lambda: mobilenet_v2(0.5), PAPER, "timm :: mobilenetv2_050"),
    ZooEntry("mobilenet_v2_100", lambda: mobilenet_v2(1.0), PAPER, "torchvision.models :: mobilenet_v2"),
    ZooEntry("mobilenet_v2_140", lambda: mobilenet_v2(1.4), PAPER, "timm :: mobilenetv2_140"),
)
