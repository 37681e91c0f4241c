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
from search_spaces.stems import stem_block
from search_spaces.zoo import ZooEntry

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


def ghostnet(
    width: float = 1.0,
    resolution: int = 224,
    num_classes: int = 1000,
    *,
    first_downsample: bool = True,
    downsample: str = "standard",
    stem: str = "conv",
) -> Arch:
    """GhostNet at a width multiplier.

    Args:
        width: channel multiplier (channels rounded to multiples of 4, as timm).
        resolution, num_classes: input size and classes.
        first_downsample: keep the second bottleneck at stride 2 (``False``: stride 1, the
            CIFAR layout of the padding-free paper's reference code).
        downsample: ``standard`` or ``padding_free`` for every stride-2 bottleneck.
        stem: a kind of :mod:`search_spaces.stems`: ``conv`` (3x3 stride 2), ``conv_s1`` (stride 1,
            for 32x32 inputs) or ``hybrid`` (the padding-free paper's stride-1 stem).
    """

    def ch(c: float) -> int:
        return make_divisible(c * width, 4)

    blocks = []
    for i, (k, exp, out, se, stride) in enumerate(_LAYOUT):
        if i == 1 and not first_downsample:
            stride = 1
        blocks.append(Block.make(
            "ghost", out_chs=ch(out), mid_chs=ch(exp), kernel=k, stride=stride, se_ratio=se,
            downsample=downsample if stride == 2 else "standard",
        ))
    blocks.append(Block.make("cn", out_chs=ch(_LAYOUT[-1][1]), kernel=1, act="relu"))
    return Arch(
        resolution=resolution,
        num_classes=num_classes,
        stem=stem_block(stem, ch(16), "relu"),
        blocks=tuple(blocks),
        head=Block.make("hp", hidden=1280, act="relu", dropout=0.2),
    )


def cifar_ghostnet(padding_free: bool = False, width: float = 1.0, num_classes: int = 100) -> Arch:
    """The padding-free paper's CIFAR GhostNet (32x32, stride-1 stem and second bottleneck)."""
    return ghostnet(
        width, 32, num_classes, first_downsample=False,
        downsample="padding_free" if padding_free else "standard", stem="hybrid" if padding_free else "conv_s1",
    )


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
