"""MobileNetV3 (Howard et al., "Searching for MobileNetV3", ICCV 2019).

``mobilenet_v3_large`` and ``mobilenet_v3_small`` reproduce torchvision's models: hard-swish
stem, inverted residuals with the MobileNetV3 squeeze-excite (``make_divisible(mid / 4, 8)``
channels, ReLU, hard-sigmoid gate), a block whose expansion equals its input written as a
depthwise-separable ``ds`` (torchvision drops the expansion conv there), a 1x1 conv to six times
the last width, then the efficient last stage (pool, hidden linear with hard-swish, dropout,
linear). With ``width`` every channel count, the expanded ones included, is
``make_divisible(c * width, 8)`` as in torchvision.

The builder also takes the CIFAR settings of the padding-free paper
(``shared/reference/padding_free.md``): a stride-1 stem (``conv_s1`` or ``hybrid``) and
``downsample="padding_free"`` for the stride-2 depthwise convs.
"""

from __future__ import annotations

from nas.arch import Arch, Block
from search_spaces.ops.layers import make_divisible
from search_spaces.zoo import ZooEntry
from search_spaces.zoo._stages import IMAGENET, Layout, pick_variant

PAPER = "Howard et al., Searching for MobileNetV3, ICCV 2019"

# (kernel, expanded, out, squeeze-excite, activation, stride) per block, the paper's Tables 1-2.
_LARGE = (
    (3, 16, 16, False, "relu", 1),
    (3, 64, 24, False, "relu", 2),
    (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2),
    (5, 120, 40, True, "relu", 1),
    (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hswish", 2),
    (3, 200, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1),
    (3, 184, 80, False, "hswish", 1),
    (3, 480, 112, True, "hswish", 1),
    (3, 672, 112, True, "hswish", 1),
    (5, 672, 160, True, "hswish", 2),
    (5, 960, 160, True, "hswish", 1),
    (5, 960, 160, True, "hswish", 1),
)
_SMALL = (
    (3, 16, 16, True, "relu", 2),
    (3, 72, 24, False, "relu", 2),
    (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hswish", 2),
    (5, 240, 40, True, "hswish", 1),
    (5, 240, 40, True, "hswish", 1),
    (5, 120, 48, True, "hswish", 1),
    (5, 144, 48, True, "hswish", 1),
    (5, 288, 96, True, "hswish", 2),
    (5, 576, 96, True, "hswish", 1),
    (5, 576, 96, True, "hswish", 1),
)
# variant: (blocks, stem channels, hidden width of the last stage)
_VARIANTS = {"large": (_LARGE, 16, 1280), "small": (_SMALL, 16, 1024)}


def _exp_ratio(in_chs: int, mid_chs: int) -> float:
    """The shortest decimal expansion ratio whose ``make_divisible(in * ratio, 8)`` is ``mid_chs``
    (so a listed width such as 88 over 24 reads ``e3.7``)."""
    for digits in range(1, 7):
        ratio = round(mid_chs / in_chs, digits)
        if make_divisible(in_chs * ratio) == mid_chs:
            return ratio
    return mid_chs / in_chs


def mobilenet_v3(
    variant: str = "large",
    width: float = 1.0,
    layout: Layout = IMAGENET,
) -> Arch:
    """MobileNetV3-Large or -Small at a width multiplier (torchvision's layout).

    Args:
        variant: ``"large"`` or ``"small"``.
        width: channel multiplier (``make_divisible(c * width, 8)`` everywhere).
        layout: where the body sits (input size, classes, stem, strides, downsampling, dropout:
            :class:`~search_spaces.zoo._stages.Layout`); dropout 0.2 by default.
    """
    table, stem_chs, hidden = pick_variant(_VARIANTS, variant, width)

    def ch(c: int) -> int:
        return make_divisible(c * width)

    in_chs = ch(stem_chs)
    blocks = []
    for kernel, mid, out, se, act, stride in table:
        mid, out = ch(mid), ch(out)
        common = dict(out_chs=out, kernel=kernel, stride=stride, act=act)
        if se:
            common.update(se_ratio=0.25, se_style="mbv3")
        if mid == in_chs:
            blocks.append(Block.make("ds", **common))
        else:
            blocks.append(Block.make("ir", exp_ratio=_exp_ratio(in_chs, mid), **common))
        in_chs = out
    return layout.arch(blocks, stem=layout.stem_block(ch(stem_chs), "hswish"),
                       head=Block.make("hp", hidden=ch(hidden), act="hswish", dropout=layout.dropout_or(0.2)),
                       tail=(Block.make("cn", out_chs=6 * in_chs, kernel=1, act="hswish"),))


ENTRIES = (
    ZooEntry("mobilenet_v3_large", lambda: mobilenet_v3("large"), PAPER,
             "torchvision.models :: mobilenet_v3_large"),
    ZooEntry("mobilenet_v3_small", lambda: mobilenet_v3("small"), PAPER,
             "torchvision.models :: mobilenet_v3_small"),
)
