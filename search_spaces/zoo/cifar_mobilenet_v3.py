"""MobileNetV3-Large on CIFAR-100, standard and padding-free (Howard et al., "Searching for
MobileNetV3", ICCV 2019; "Lightweight Deep Neural Network Model With Padding-free Downsampling",
``shared/reference/padding_free.md``).

Both entries are torchvision's ``mobilenet_v3_large`` layout (built by
:func:`search_spaces.zoo.mobilenet_v3.mobilenet_v3`) for 32x32 inputs and 100 classes, as in the
padding-free paper's reference code (``mobilenet_v3.mobilenet_v3_large`` and
``mobilenet_v3_ours.mobilenet_v3_large``): the stem runs at stride 1 and so does the second
block (16 -> 24, the first stride-2 block of the ImageNet layout), so a 32x32 input is
downsampled three times (32 -> 16 -> 8 -> 4). The ``_pf`` member makes those three blocks
padding-free (32 -> 15 -> 7 -> 3) and uses the ``hybrid`` stem with hard-swish.
"""

from __future__ import annotations

from nas.arch import Arch
from search_spaces.zoo import ZooEntry
from search_spaces.zoo._stages import Layout
from search_spaces.zoo.mobilenet_v3 import mobilenet_v3

PAPER = ("Howard et al., Searching for MobileNetV3, ICCV 2019; "
         "Lightweight Deep Neural Network Model With Padding-free Downsampling (CIFAR-100 variants)")
PF_REF = "reference code of 'Lightweight Deep Neural Network Model With Padding-free Downsampling' (CIFAR-100 variants)"


def cifar_mobilenet_v3_large(padding_free: bool = False, num_classes: int = 100) -> Arch:
    """MobileNetV3-Large for 32x32 inputs: stride-1 stem and second block, optionally padding-free
    on the three remaining stride-2 blocks with the hybrid stem."""
    kind = "padding_free" if padding_free else "standard"
    # The reference keeps the first stride-2 block (16 -> 24) at stride 1 on CIFAR.
    return mobilenet_v3("large", 1.0, Layout(resolution=32, num_classes=num_classes, stem="hybrid" if padding_free
                                             else "conv_s1", strides=(1, 2, 2, 2), downsample=kind))


ENTRIES = (
    ZooEntry("cifar_mobilenet_v3_large", lambda: cifar_mobilenet_v3_large(False), PAPER,
             f"{PF_REF} :: mobilenet_v3.mobilenet_v3_large",
             note="32x32, 100 classes; stem and second block at stride 1 as the reference code"),
    ZooEntry("cifar_mobilenet_v3_large_pf", lambda: cifar_mobilenet_v3_large(True), PAPER,
             f"{PF_REF} :: mobilenet_v3_ours.mobilenet_v3_large",
             note="padding-free stride-2 blocks and hybrid stem"),
)
