"""The data of the ``mobile`` superspace (:mod:`search_spaces.mobile` explains the space): the
skeleton's stages, the layer templates (core and extra), resolutions, width multipliers, stems
and heads, with the small shape rules every part of the space shares (width scaling, map
shrinking, the stem block), and :class:`MobileView`, what the encoder and the counter read of a
built space.

The tables are :class:`~search_spaces.mobile.MobileSpace`'s constructor defaults; they live
apart so that the encoder (:mod:`search_spaces.mobile_encode`) and the counter
(:mod:`search_spaces.mobile_count`) can use them without importing the space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from search_spaces.ops.layers import make_divisible
from search_spaces.space import Choice
from search_spaces.templates import Template


@dataclass(frozen=True)
class Stage:
    """One stage of the skeleton: core first stride, base width and depths, plus the extra
    (encoding-only) depths, widths and strides the zoo needs there."""

    stride: int
    width: int
    depths: tuple[int, ...]
    extra_depths: tuple[int, ...] = ()
    extra_widths: tuple[int, ...] = ()
    extra_strides: tuple[int, ...] = ()

    @property
    def all_depths(self) -> tuple[int, ...]:
        return self.depths + self.extra_depths

    @property
    def slots(self) -> int:
        return max(self.all_depths)

    def strides(self, small_input: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(core, extra) first strides; at a small input a stage that may start at stride 1
        does (the CIFAR layout, see :mod:`search_spaces.mobile`)."""
        every = (self.stride, *self.extra_strides)
        core = 1 if small_input and 1 in every else self.stride
        return (core,), tuple(s for s in every if s != core)


# Extras name the zoo networks that need them: MBv2/MBv3 = MobileNetV2/V3, A1/B1 = MnasNet,
# ENb0 = EfficientNet-B0, Mix = MixNet-S/M/L, Ghost = GhostNet 0.5/1.0/1.3, SNv2 = ShuffleNetV2
# (x0.5..x2.0, v2b 1.5x), CIFAR = the padding-free paper's CIFAR-100 pairs.
STAGES: tuple[Stage, ...] = (
    # MBv3-S and SNv2 have no stride-1 first stage; widths: MBv2 0.35-1.4, Ghost, Mix-M/L.
    Stage(1, 16, (1,), (0,), (8, 20, 24, 32)),
    # CIFAR MBv3/Ghost keep stride 1 here; CIFAR SNv2 drops the stage (no stem max-pool).
    Stage(2, 24, (1, 2, 3, 4), (0,), (8, 12, 16, 32, 40), (1,)),
    Stage(2, 40, (1, 2, 3, 4), (), (16, 20, 24, 32, 48, 52, 56, 116, 176, 244)),
    # SNv2's second stage has 8 units.
    Stage(2, 80, (1, 2, 3, 4), (5, 6, 7, 8), (24, 32, 40, 64, 88, 96, 104, 232, 352, 488)),
    Stage(1, 112, (1, 2, 3, 4), (0,), (32, 48, 56, 96, 120, 136, 144, 160)),
    # GhostNet's last stage has 5 bottlenecks.
    Stage(2, 160, (1, 2, 3, 4), (5,), (56, 80, 96, 184, 192, 200, 208, 224, 264, 464, 704, 976)),
    # MBv3/Ghost end on a 1x1 conv to 6x the last width; Mix and SNv2 have no such stage.
    Stage(1, 320, (1,), (0,), (112, 160, 352, 448, 480, 576, 960, 1248)),
)

MBCONV_KERNELS: tuple[int | tuple[int, ...], ...] = (3, 5, 7, (3, 5), (3, 5, 7), (3, 5, 7, 9))
MBCONV_EXPANSIONS = (1, 3, 4, 6)
ACTIVATIONS = ("relu", "hswish", "swish")
GHOST_KERNELS = (3, 5)
GHOST_EXPANSIONS = (3, 6)
SHUFFLE_KERNELS = (3, 5)


def _kernel_token(k: int | tuple[int, ...]) -> str:
    return ".".join(map(str, k)) if isinstance(k, tuple) else str(k)


def _core_templates() -> tuple[str, ...]:
    out = []
    for act in ACTIVATIONS:
        for k in MBCONV_KERNELS:
            for e in MBCONV_EXPANSIONS:
                if k == (3, 5, 7) and e in (1, 4):
                    continue  # 3 may not divide make_divisible(in * e, 8) for these
                for se in ("", "_se0.25_sesmbv3"):
                    out.append(f"ir_k{_kernel_token(k)}_e{e}_a{act}{se}")
    for k in GHOST_KERNELS:
        for e in GHOST_EXPANSIONS:
            for se in ("", "_se0.25"):
                out.append(f"ghost_e{e}_k{k}{se}")
    out += [f"shuffle_k{k}" for k in SHUFFLE_KERNELS]
    out.append("skip")
    return tuple(out)


CORE_TEMPLATES = _core_templates()
"""Layer templates sampling draws from (see :mod:`search_spaces.templates` for the notation)."""

EXTRA_TEMPLATES: tuple[str, ...] = (
    "ir_e6_arelu6", "ds_arelu6",  # MBv2
    "ds", "ir_e2.3_ahswish", "ir_e2.5_ahswish", "cn_k1_ahswish",  # MBv3-L (and Mix: ds)
    "ds_se0.25_sesmbv3", "ir_e3.7", "ir_e4.5",  # MBv3-S
    "ds_ns1", "ir_e6_ns1", "ir_e6_se0.25", "ir_k5_e3_se0.25", "ir_k5_e6_se0.25",  # A1/B1
    "ds_aswish_se0.25", "ir_e6_aswish_se0.25", "ir_k5_e6_aswish_se0.25",  # ENb0
    # Mix: grouped 1x1 convs, MixConv kernels, EfficientNet-style squeeze-excite with swish.
    "ir_e3_eg2_pg2", "ir_e6_eg2_pg2", "ir_e6_aswish_se0.5", "ir_k3.5.7_e6_eg2_pg2",
    "ir_k3.5_e6_aswish_se0.25_pg2", "ir_k3.5_e6_aswish_se0.5_eg2_pg2",
    "ir_k3.5.7_e6_aswish_se0.25", "ir_k3.5.7_e6_aswish_se0.25_pg2", "ir_k3.5.7_e6_aswish_se0.5",
    "ir_k3.5.7_e6_aswish_se0.5_eg2_pg2", "ir_k3.5.7.9_e3_aswish_se0.5_eg2_pg2",
    "ir_k3.5.7.9_e6_aswish_se0.25_eg2_pg2", "ir_k3.5.7.9_e6_aswish_se0.5",
    "ir_k3.5.7.9_e6_aswish_se0.5_pg2", "ir_k3.5.7.9.11_e6_aswish_se0.5",
    # Ghost: expansion widths that are not 3x or 6x the input, and the final 1x1 conv.
    "ghost_m8", "ghost_m16", "ghost_m20", "ghost_m64", "ghost_m92", "ghost_m92_k5_se0.25", "ghost_m100",
    "ghost_m184", "ghost_m200", "ghost_m240", "ghost_m260", "ghost_m872_se0.25", "ghost_m872_k5_se0.25",
    "cn_k1",
    "mp", "shuffle_vv2b",  # SNv2: the stem max-pool, pytorchcv's v2b unit
)
"""Layer templates reachable by encoding only: the zoo's block configurations."""

RESOLUTIONS = (64, 96, 128, 160, 192, 224)
SMALL_INPUT = 64
"""A space fixed at an input size below this samples the CIFAR layout (:mod:`search_spaces.mobile`)."""
EXTRA_RESOLUTIONS = (32,)  # CIFAR
WIDTH_MULTIPLIERS = (0.5, 0.75, 1.0, 1.25, 1.5)
STEM_KINDS = ("conv", "hybrid")
EXTRA_STEM_KINDS = ("conv_s1",)  # CIFAR: a plain 3x3 conv at stride 1
STEM_WIDTH = 16
EXTRA_STEM_WIDTHS = (8, 20, 24, 32, 48)  # Ghost 0.5/1.3, SNv2, Mix-M, MBv2 1.0/1.4
STEM_ACTS = ACTIVATIONS
EXTRA_STEM_ACTS = ("relu6",)  # MBv2
HEADS = ("hc_c1280_d0.2", "hc_c1280_ahswish_d0.2", "hc_c1280_aswish_d0.2")
EXTRA_HEADS = (
    "hc_c1280_arelu6_d0.2", "hc_c1792_arelu6_d0.2",  # MBv2 (1.4: 1792)
    "hp_h1280_d0.2", "hp_h1024_d0.2",  # MBv3-L, MBv3-S
    "hc_c1984_d0.2",  # FBNet-C
    "hc_c1536_d0.2", "hc_c1536_d0.25",  # Mix-S, Mix-M/L
    "hp_h1280_arelu_d0.2",  # Ghost
    "hc_c1024", "hc_c2048", "hc_c1553",  # SNv2 (2.0x: 2048, v2b 1.5x: 1553)
)


def scale_width(width: int, multiplier: float) -> int:
    """A listed width under the width multiplier: itself at 1.0, else ``make_divisible(w * m, 8)``."""
    return width if multiplier == 1.0 else make_divisible(width * multiplier, 8)


def shrink(size: int, stride: int, downsample: str) -> int:
    """The map size after a layer (every op of the space shrinks maps alike; checked at setup)."""
    if downsample == "padding_free":
        return (size - 3) // 2 + 1
    return (size - 1) // stride + 1


class MobileView(Protocol):
    """What :class:`~search_spaces.mobile_encode.MobileEncoder` and
    :class:`~search_spaces.mobile_count.MobileCounter` read of a built space
    (:class:`~search_spaces.mobile.MobileSpace` is one; typed by shape so neither imports it)."""

    name: str
    num_classes: int
    stages: tuple[Stage, ...]
    templates: tuple[Template, ...]

    @property
    def choices(self) -> tuple[Choice, ...]: ...

    def choice(self, name: str) -> Choice: ...
