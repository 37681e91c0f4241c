"""ShuffleNetV2 (Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
Design", ECCV 2018), on ImageNet and as the CIFAR-100 pairs of the padding-free paper
("Lightweight Deep Neural Network Model With Padding-free Downsampling", see
``shared/reference/padding_free.md``).

Layout (the paper's Table 5): conv3x3 s2 24ch, max-pool 3x3 s2, three stages of 4/8/4 ``shuffle``
units (the first of each with stride 2), conv 1x1 to 1024 (2048 at 2.0x), pool, fc.

- ``shufflenet_v2_x*``: torchvision's ``shufflenet_v2_x0_5/x1_0/x1_5/x2_0`` (``variant="v2"``).
- ``shufflenetv2b_w3d2``: pytorchcv's ``shufflenetv2b_w3d2`` (``variant="v2b"``): stage widths
  ``int(c * 44 / 29)`` and, since that width exceeds 1.5, a head of ``int(1024 * 44 / 29)``.
- ``cifar_*``: 32x32 inputs, 100 classes. The standard member is the ImageNet layout with the
  stem at stride 1 and no stem max-pool; the ``_pf`` member replaces the stem with the ``hybrid``
  stem op and makes every stride-2 unit padding-free.
"""

from __future__ import annotations

from nas.arch import Arch, Block
from search_spaces.zoo import ZooEntry
from search_spaces.zoo._stages import IMAGENET, Layout

PAPER = "Ma et al., ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design, ECCV 2018"
PF_PAPER = PAPER + "; Lightweight Deep Neural Network Model With Padding-free Downsampling"

STAGE_REPEATS = (4, 8, 4)

# torchvision's stages_out_channels: stem, three stages, head.
_TORCHVISION_WIDTHS = {
    "x0_5": (24, 48, 96, 192, 1024),
    "x1_0": (24, 116, 232, 464, 1024),
    "x1_5": (24, 176, 352, 704, 1024),
    "x2_0": (24, 244, 488, 976, 2048),
}


def shufflenet_v2(widths: tuple[int, int, int, int, int], layout: Layout = IMAGENET, *, variant: str = "v2",
                  stem_pool: bool = True) -> Arch:
    """A ShuffleNetV2 with ``widths`` = (stem, stage 1, stage 2, stage 3, head) channels.

    Args:
        widths: channels of the stem, the three stages and the head.
        layout: where the body sits (input size, classes, stem, strides, downsampling, dropout:
            :class:`~search_spaces.zoo._stages.Layout`); no dropout by default.
        variant: ``v2`` (the paper's, torchvision's channel arithmetic) or ``v2b`` (pytorchcv's).
        stem_pool: the 3x3 stride-2 max-pool after the stem (the CIFAR variants have none).
    """
    stem_chs, *stage_chs, head_chs = widths
    blocks = [Block.make("mp", kernel=3, stride=2)] if stem_pool else []
    for chs, repeats in zip(stage_chs, STAGE_REPEATS, strict=True):
        blocks.append(Block.make("shuffle", out_chs=chs, stride=2, variant=variant))
        blocks += [Block.make("shuffle", out_chs=chs, variant=variant)] * (repeats - 1)
    return layout.arch(blocks, stem=layout.stem_block(stem_chs, "relu"),
                       head=Block.make("hc", out_chs=head_chs, dropout=layout.dropout_or(0.0)))

def _pytorchcv_v2b_widths(width_scale: float) -> tuple[int, int, int, int, int]:
    """pytorchcv ``get_shufflenetv2b``: ``int(c * scale)`` stages, head scaled above 1.5."""
    stages = tuple(int(c * width_scale) for c in (116, 232, 464))
    head = int(1024 * width_scale) if width_scale > 1.5 else 1024
    return (24, *stages, head)


def _cifar(width: str, padding_free: bool) -> Arch:
    """The padding-free paper's CIFAR-100 ShuffleNetV2: stride-1 (or hybrid) stem, no stem max-pool."""
    layout = Layout(resolution=32, num_classes=100, stem="hybrid" if padding_free else "conv_s1",
                    downsample="padding_free" if padding_free else "standard")
    return shufflenet_v2(_TORCHVISION_WIDTHS[width], layout, stem_pool=False)


_PF_CODE = "reference code of the padding-free paper (CIFAR-100 variants)"

ENTRIES = (
    *(
        ZooEntry(f"shufflenet_v2_{w}", (lambda w=w: shufflenet_v2(_TORCHVISION_WIDTHS[w])), PAPER,
                 f"torchvision.models :: shufflenet_v2_{w}")
        for w in ("x0_5", "x1_0", "x1_5", "x2_0")
    ),
    ZooEntry("shufflenetv2b_w3d2", lambda: shufflenet_v2(_pytorchcv_v2b_widths(44.0 / 29.0), variant="v2b"),
             PAPER, "pytorchcv (osmr/imgclsmob) :: shufflenetv2b_w3d2",
             note="v2b channel arithmetic; head int(1024 * 44/29) = 1553"),
    ZooEntry("cifar_shufflenet_v2_x1_0", lambda: _cifar("x1_0", False), PF_PAPER,
             f"{_PF_CODE} :: shufflenet_v2.shufflenet_v2_x1_0", note="stem stride 1, no stem max-pool"),
    ZooEntry("cifar_shufflenet_v2_x1_0_pf", lambda: _cifar("x1_0", True), PF_PAPER,
             f"{_PF_CODE} :: shufflenet_v2_ours.shufflenet_v2_x1_0",
             note="hybrid stem, padding-free stride-2 units"),
    ZooEntry("cifar_shufflenet_v2_x0_5", lambda: _cifar("x0_5", False), PF_PAPER,
             f"{_PF_CODE} :: shufflenet_v2.shufflenet_v2_x0_5", note="stem stride 1, no stem max-pool"),
    ZooEntry("cifar_shufflenet_v2_x0_5_pf", lambda: _cifar("x0_5", True), PF_PAPER,
             f"{_PF_CODE} :: shufflenet_v2_ours.shufflenet_v2_x0_5",
             note="hybrid stem, padding-free stride-2 units"),
)
