"""GhostNet (Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020).

``ghostnet_050/100/130`` reproduce timm's models of those names (``timm/models/ghostnet.py``):
channels ``make_divisible(c * width, 4)``, a stride-2 3x3 conv-BN-ReLU stem, sixteen Ghost
bottlenecks, a 1x1 conv-BN-ReLU to the last expansion width, then pool -> 1x1 conv 1280 with
bias -> ReLU -> dropout 0.2 -> linear. That pooled 1x1 conv is the ``hp`` head's hidden linear
layer (same parameters and MACs on a 1x1 map).

``cifar_ghostnet_100`` and ``cifar_ghostnet_100_pf`` are the CIFAR-100 variants of the
padding-free paper ("Lightweight Deep Neural Network Model With Padding-free Downsampling",
``shared/reference/padding_free.md``); its reference code (``ghostnet.ghostnet`` and
``ghostnet_ours.ghostnet``) keeps the stem at stride 1 *and* runs the second bottleneck (the
first stride-2 one of the ImageNet layout) at stride 1, so a 32x32 input is downsampled three
times (32 -> 16 -> 8 -> 4). The ``_pf`` member makes those three blocks padding-free
(32 -> 15 -> 7 -> 3) and uses the ``hybrid`` stem with ReLU. The reference code also keeps the
unused stem BatchNorm of the standard model (32 parameters), which is not copied.
"""

from __future__ import annotations

from nas.arch import Arch, Block
from search_spaces.ops.layers import make_divisible
from search_spaces.zoo import ZooEntry
from search_spaces.zoo._stages import IMAGENET, Layout, check_width

PAPER = "Han et al., GhostNet: More Features from Cheap Operations, CVPR 2020"
PF_PAPER = "Lightweight Deep Neural Network Model With Padding-free Downsampling (CIFAR-100 variants)"
PF_REF = "reference code of 'Lightweight Deep Neural Network Model With Padding-free Downsampling' (CIFAR-100 variants)"

# (kernel, expansion width, out channels, SE ratio, stride) per bottleneck, the paper's Table 1.
_LAYOUT = (
    (3, 16, 16, 0.0, 1),
    (3, 48, 24, 0.0, 2),
    (3, 72, 24, 0.0, 1),
    (5, 72, 40, 0.25, 2),
    (5, 120, 40, 0.25, 1),
    (3, 240, 80, 0.0, 2),
    (3, 200, 80, 0.0, 1),
    (3, 184, 80, 0.0, 1),
    (3, 184, 80, 0.0, 1),
    (3, 480, 112, 0.25, 1),
    (3, 672, 112, 0.25, 1),
    (5, 672, 160, 0.25, 2),
    (5, 960, 160, 0.0, 1),
    (5, 960, 160, 0.25, 1),
    (5, 960, 160, 0.0, 1),
    (5, 960, 160, 0.25, 1),
)


def ghostnet(width: float = 1.0, layout: Layout = IMAGENET) -> Arch:
    """GhostNet at a width multiplier.

    Args:
        width: channel multiplier (channels rounded to multiples of 4, as timm).
        layout: where the body sits (input size, classes, stem, strides, downsampling, dropout:
            :class:`~search_spaces.zoo._stages.Layout`); dropout 0.2 by default.
    """
    check_width(width)

    def ch(c: float) -> int:
        return make_divisible(c * width, 4)

    blocks = [Block.make("ghost", out_chs=ch(out), mid_chs=ch(exp), kernel=k, stride=stride, se_ratio=se)
              for k, exp, out, se, stride in _LAYOUT]
    return layout.arch(blocks, stem=layout.stem_block(ch(16), "relu"),
                       head=Block.make("hp", hidden=1280, act="relu", dropout=layout.dropout_or(0.2)),
                       tail=(Block.make("cn", out_chs=ch(_LAYOUT[-1][1]), kernel=1, act="relu"),))


def cifar_ghostnet(padding_free: bool = False, width: float = 1.0, num_classes: int = 100) -> Arch:
    """The padding-free paper's CIFAR GhostNet (32x32, stride-1 stem and second bottleneck)."""
    return ghostnet(width, Layout(resolution=32, num_classes=num_classes, stem="hybrid" if padding_free else "conv_s1",
                                  strides=(1, 2, 2, 2), downsample="padding_free" if padding_free else "standard"))


ENTRIES = (
    ZooEntry("ghostnet_050", lambda: ghostnet(0.5), PAPER, "timm :: ghostnet_050"),
    ZooEntry("ghostnet_100", lambda: ghostnet(1.0), PAPER, "timm :: ghostnet_100"),
    ZooEntry("ghostnet_130", lambda: ghostnet(1.3), PAPER, "timm :: ghostnet_130"),
    ZooEntry("cifar_ghostnet_100", lambda: cifar_ghostnet(False), PF_PAPER, f"{PF_REF} :: ghostnet.ghostnet",
             note="32x32, 100 classes; stem and second bottleneck at stride 1 as the reference code"),
    ZooEntry("cifar_ghostnet_100_pf", lambda: cifar_ghostnet(True), PF_PAPER, f"{PF_REF} :: ghostnet_ours.ghostnet",
             note="padding-free stride-2 bottlenecks and hybrid stem; the reference's unused stem "
                  "BatchNorm (32 parameters) is not copied"),
)
