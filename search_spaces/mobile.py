"""The ``mobile`` superspace: MBConv, Ghost and ShuffleNetV2 layers over a seven-stage skeleton,
with padding-free downsampling, a hybrid stem, a width multiplier and the input resolution as
choices, and every chain-structured network of the zoo as a point.

Skeleton (EfficientNet-B0 / MnasNet-A1 / MobileNetV3 layout): a stem, then seven stages with
first strides ``[1, 2, 2, 2, 1, 2, 1]`` and base widths ``[16, 24, 40, 80, 112, 160, 320]``
(times the width multiplier), then a head. A stage is a run of layers of one width, only the
first with the stage's stride; it has as many layer slots as its deepest option, and a ``depth``
choice switches the later slots off (their choices go inactive), so a variable number of layers
is a finite, canonical set of points.

Choices sampling and mutation draw from (the *core*, see :mod:`search_spaces.space`):

- per layer: an MBConv (``ir``) with kernel 3, 5, 7 or mixed {3,5}, {3,5,7}, {3,5,7,9}
  (MixConv, Tan & Le, BMVC 2019), expansion 1, 3, 4 or 6, squeeze-excite off/on
  (MobileNetV3's: 0.25 of the expanded width, hard-sigmoid), activation ReLU, hard-swish or swish
  (Howard et al., ICCV 2019; Ramachandran et al., 2017); a Ghost bottleneck (Han et al.,
  CVPR 2020) with kernel 3/5, expansion 3/6, SE off/on; a ShuffleNetV2 unit (Ma et al.,
  ECCV 2018) with kernel 3/5; or ``skip`` (FBNet's: identity or 1x1 projection). The mixed
  {3,5,7} kernel is offered with expansion 3 and 6 only: its three-way split of the expanded
  width is only guaranteed to divide there (widths are multiples of 8). A ShuffleNetV2 unit keeps
  its width at stride 1, so it is not a core option where a stride-1 stage starts by widening;
- per stride-2 stage: ``standard`` or ``padding_free`` downsampling of the first layer's
  depthwise convs (``shared/reference/padding_free.md``), active when that layer has them;
- per stage: depth 1 to 4 (the first and last stage: 1);
- global: stem ``conv`` (3x3 stride 2) or ``hybrid`` (stride 1, padding-free paper), stem
  activation, width multiplier 0.5 to 1.5 (``make_divisible(w * m, 8)``; 1.0 keeps the listed
  widths as they are), input resolution 64 to 224, a 1280-wide 1x1 conv head.

*Small inputs.* A space fixed at an input size below :data:`SMALL_INPUT` (CIFAR's 32 pixels)
samples the CIFAR layout of the zoo's CIFAR networks (kuangliu/pytorch-cifar's MobileNetV2, the
padding-free paper's CIFAR pairs): a stride-1 stem (``conv_s1`` or ``hybrid``) and the first
downsampling stage at stride 1, so a network downsamples 8x and ends on a 4x4 map. The ImageNet
layout's 32x would end on a 1x1 map: trained on CIFAR-10 such networks reached 23-33% top-1
where the CIFAR fixed points reached 44-62% with the same recipe (``docs/bench_ranking.md``).
The ImageNet values (the stride-2 ``conv`` stem, stride 2 in that stage and its padding-free
downsampling) stay in the space as extra values.

Every core point builds: widths are multiples of 8, and 64 pixels keep a 3x3 map through the
stem and four padding-free downsamplings (the tests check both).

*Extra* values, reachable by encoding only, make every chain-structured zoo network a point: the
zoo's exact block configurations (MobileNetV3's 2.3/2.5/3.7/4.5 expansions, MixNet's grouped
1x1 convs and 5-way kernels, GhostNet's absolute expansion widths, ReLU6, EfficientNet/MnasNet
squeeze-excite, ``ds`` blocks, the max-pool and ``cn`` layers, ShuffleNetV2's ``v2b`` unit), their
widths per stage, stems and heads, the CIFAR resolution 32, a stride-1 first downsampling stage,
and absent or deeper stages. HarDNet is not chain-structured and has its own space
(:mod:`search_spaces.hardnet_space`).

Not every combination of extra values builds (a mixed-kernel split that does not divide a zoo
width, a max-pool asked to change width, padding-free downsampling on a map smaller than 3x3):
those points are invalid, :meth:`MobileSpace.decode` says where, and :meth:`MobileSpace.size`
counts the valid points exactly. Several points can describe the same network (the width
multiplier and the listed widths overlap; a Ghost block can be written with a relative or an
absolute expansion width); :meth:`MobileSpace.encode` returns the first in choice order, with
the width multiplier 1.0 tried first.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nas.arch import Arch, Block
from nas.arch_string import block_to_token, token_to_blocks
from search_spaces.ops.common import DOWNSAMPLE_KINDS
from search_spaces.ops.layers import make_divisible
from search_spaces.registry import OpConfig
from search_spaces.space import Choice, SearchSpace, check_fixed, describe_block
from search_spaces.templates import FitCounter, Template

__all__ = ["Stage", "STAGES", "CORE_TEMPLATES", "EXTRA_TEMPLATES", "MobileSpace", "scale_width"]


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
        does (the CIFAR layout, see the module docstring)."""
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
"""A space fixed at an input size below this samples the CIFAR layout (module docstring)."""
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


def _shrink(size: int, stride: int, downsample: str) -> int:
    """The map size after a layer (every op of the space shrinks maps alike; checked at setup)."""
    if downsample == "padding_free":
        return (size - 3) // 2 + 1
    return (size - 1) // stride + 1


class MobileSpace(SearchSpace):
    """The ``mobile`` superspace (see the module docstring).

    Every keyword defaults to this module's table of the same name, so a smaller or larger
    superspace is a constructor call away.

    Args:
        num_classes: classifier outputs of every point.
        resolution: fix the input size to this one value (a search at a given input size);
            ``None`` keeps ``resolutions`` and ``extra_resolutions`` as the resolution choice.
            Below :data:`SMALL_INPUT` the core takes the CIFAR layout (module docstring).
        stages: the skeleton.
        templates, extra_templates: layer templates (core, extra), as tokens.
        resolutions, extra_resolutions: input sizes.
        width_multipliers: the global width multipliers (all core).
        stem_kinds, extra_stem_kinds: ``conv`` (3x3 stride 2), ``hybrid``, ``conv_s1``.
        stem_width, extra_stem_widths: stem widths (times the multiplier).
        stem_acts, extra_stem_acts: stem activations.
        heads, extra_heads: head blocks, as tokens.
    """

    name = "mobile"
    summary = "superspace: MBConv/mixed kernels, Ghost, ShuffleNetV2, skip; padding-free; width and resolution"
    paper = ("MBConv: Sandler et al. CVPR 2018; MixConv: Tan & Le BMVC 2019; MobileNetV3: Howard et al. ICCV 2019; "
             "GhostNet: Han et al. CVPR 2020; ShuffleNetV2: Ma et al. ECCV 2018; FBNet skip: Wu et al. CVPR 2019; "
             "Lightweight Deep Neural Network Model With Padding-free Downsampling")
    always_valid = False
    task_options = ("num_classes",)  # the resolution is a choice

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        resolution: int | None = None,
        stages: Sequence[Stage] = STAGES,
        templates: Sequence[str] = CORE_TEMPLATES,
        extra_templates: Sequence[str] = EXTRA_TEMPLATES,
        resolutions: Sequence[int] = RESOLUTIONS,
        extra_resolutions: Sequence[int] = EXTRA_RESOLUTIONS,
        width_multipliers: Sequence[float] = WIDTH_MULTIPLIERS,
        stem_kinds: Sequence[str] = STEM_KINDS,
        extra_stem_kinds: Sequence[str] = EXTRA_STEM_KINDS,
        stem_width: int = STEM_WIDTH,
        extra_stem_widths: Sequence[int] = EXTRA_STEM_WIDTHS,
        stem_acts: Sequence[str] = STEM_ACTS,
        extra_stem_acts: Sequence[str] = EXTRA_STEM_ACTS,
        heads: Sequence[str] = HEADS,
        extra_heads: Sequence[str] = EXTRA_HEADS,
    ):
        self.num_classes = num_classes
        self.stages = tuple(stages)
        if resolution is not None:
            resolutions, extra_resolutions = (resolution,), ()
        self.small_input = resolution is not None and resolution < SMALL_INPUT
        if self.small_input:  # stride-1 stems only, the plain conv first
            every = (*stem_kinds, *extra_stem_kinds)
            stem_kinds = tuple(sorted((k for k in every if k != "conv"), key=lambda k: k != "conv_s1"))
            extra_stem_kinds = tuple(k for k in every if k == "conv")
        for kind in (*stem_kinds, *extra_stem_kinds):
            if kind not in ("conv", "hybrid", "conv_s1"):
                raise ValueError(f"{self.name}: stem kind must be conv, hybrid or conv_s1, got {kind!r}")
        core_t = [Template.parse(t) for t in templates]
        labels = {t.label for t in core_t}
        extra_t = [t for t in (Template.parse(x) for x in extra_templates) if t.label not in labels]
        self.templates: tuple[Template, ...] = tuple(core_t + extra_t)
        self._n_core_templates = len(core_t)
        self._head_blocks = tuple(token_to_blocks(h)[0] for h in (*heads, *extra_heads))
        for h in self._head_blocks:
            if "head" not in h.spec.roles:
                raise ValueError(f"{self.name}: {h.op!r} is not a head op")

        def choice(name: str, core: Sequence[Any], extra: Sequence[Any] = (), doc: str = "", **kw: Any) -> Choice:
            values = tuple(core) + tuple(v for v in extra if v not in core)
            return Choice(name, values, core=tuple(range(len(core))), doc=doc, **kw)

        choices = [
            choice("resolution", resolutions, extra_resolutions, "input size"),
            choice("width", width_multipliers, (), "width multiplier"),
            choice("stem", stem_kinds, extra_stem_kinds, "stem kind"),
            choice("stem_width", (stem_width,), extra_stem_widths, "stem width (x multiplier)"),
            choice("stem_act", stem_acts, extra_stem_acts, "stem activation"),
        ]
        prev_base = stem_width
        self._slot_core: dict[tuple[int, int], tuple[int, ...]] = {}
        for k, st in enumerate(self.stages):
            where = f"stage {k}"
            depth = choice(f"s{k}.depth", st.depths, st.extra_depths, f"{where}: layers")
            choices.append(depth)
            present = frozenset(i for i, n in enumerate(depth.values) if n > 0)
            core_stride, extra_strides = st.strides(self.small_input)
            if extra_strides:
                choices.append(choice(f"s{k}.stride", core_stride, extra_strides, f"{where}: first stride",
                                      parent=depth.name, when=present))
            choices.append(choice(f"s{k}.width", (st.width,), st.extra_widths, f"{where}: width (x multiplier)",
                                  parent=depth.name, when=present))
            for j in range(st.slots):
                core = self._core_for_slot(core_t, prev_base if j == 0 else st.width, st.width,
                                           core_stride[0] if j == 0 else 1, width_multipliers)
                self._slot_core[(k, j)] = core
                choices.append(Choice(
                    f"s{k}.l{j}", self.templates, labels=tuple(t.label for t in self.templates), core=core,
                    parent=depth.name, when=frozenset(i for i, n in enumerate(depth.values) if n > j),
                    doc=f"{where}, layer {j}",
                ))
            if 2 in (*core_stride, *extra_strides):  # padding-free downsampling is core where stride 2 is
                choices.append(Choice(
                    f"s{k}.downsample", DOWNSAMPLE_KINDS, parent=f"s{k}.l0",
                    core=tuple(range(len(DOWNSAMPLE_KINDS) if core_stride[0] == 2 else 1)),
                    when=frozenset(i for i, t in enumerate(self.templates) if t.has_downsample),
                    doc=f"{where}: downsampling of the first layer",
                ))
            prev_base = st.width
        choices.append(Choice("head", self._head_blocks, labels=tuple(block_to_token(h) for h in self._head_blocks),
                              core=tuple(range(len(heads))), doc="head"))
        super().__init__(choices)
        self._check_setup()
        self._by_label = {t.label: i for i, t in enumerate(self.templates) if not t.mid_ratio}
        self._relative = tuple(i for i, t in enumerate(self.templates) if t.mid_ratio)
        self._fitter = FitCounter(self.templates)
        self._first_memo: dict[tuple[int, int, int, int, bool], dict[str, list[int]]] = {}
        self._later_memo: dict[tuple[int, int, int, bool], list[int]] = {}
        self._counts: dict[bool, int] = {}

    # ------------------------------------------------------------------------------- setup
    def _core_for_slot(self, core_t: Sequence[Template], in_base: int, out_base: int, stride: int,
                       multipliers: Sequence[float]) -> tuple[int, ...]:
        """Core templates that fit a slot of the core skeleton at every width multiplier and
        with either downsampling kind (a ShuffleNetV2 unit cannot widen at stride 1)."""
        kinds = DOWNSAMPLE_KINDS if stride == 2 else ("standard",)
        return tuple(
            i for i, t in enumerate(core_t)
            if all(t.fits(scale_width(in_base, m), scale_width(out_base, m), stride, ds if t.has_downsample else
                          "standard") for m in multipliers for ds in kinds)
        )

    def _check_setup(self) -> None:
        """Reject a skeleton slot that no core template fits (sampling could not fill it)."""
        for (k, j), core in self._slot_core.items():
            if not core:
                raise ValueError(f"{self.name}: stage {k}, layer {j}: no core template fits the skeleton")

    # ------------------------------------------------------------------------------ blocks
    def _stem(self, kind: str, width: int, act: str) -> Block:
        if kind == "hybrid":
            return Block.make("hybrid", out_chs=width, act=act)
        return Block.make("cn", out_chs=width, kernel=3, stride=1 if kind == "conv_s1" else 2, act=act)

    def _decode(self, values: Mapping[str, Any]) -> Arch:
        mult = values["width"]
        stem = self._stem(values["stem"], scale_width(values["stem_width"], mult), values["stem_act"])
        chs = stem["out_chs"]
        blocks: list[Block] = []
        for k, st in enumerate(self.stages):
            n = values[f"s{k}.depth"]
            if n == 0:
                continue
            stride = values.get(f"s{k}.stride", st.stride)
            width = scale_width(values[f"s{k}.width"], mult)
            downsample = values.get(f"s{k}.downsample", "standard")
            for j in range(n):
                t: Template = values[f"s{k}.l{j}"]
                try:
                    blocks.append(t.block(chs, width, stride if j == 0 else 1, downsample if j == 0 else "standard"))
                except ValueError as exc:
                    raise ValueError(f"stage {k}, layer {j} (block {len(blocks)}): {exc}") from None
                chs = width
        return Arch(values["resolution"], self.num_classes, stem, tuple(blocks), values["head"])

    # ------------------------------------------------------------------------------ encode
    def _encode(self, arch: Arch) -> dict[str, int]:
        check_fixed(self.name, arch, num_classes=self.num_classes, in_chans=3)
        out = {"resolution": self._value_index("resolution", arch.resolution, "resolution")}
        head = self.choice("head")
        if arch.head not in head.values:
            raise ValueError(f"{self.name}: head {describe_block(arch.head)} is not one of {', '.join(head.labels)}")
        out["head"] = head.values.index(arch.head)
        stem = arch.stem
        kind = "hybrid" if stem.op == "hybrid" else "conv_s1" if stem.kwargs.get("stride") == 1 else "conv"
        if stem.op not in ("cn", "hybrid") or stem != self._stem(kind, stem["out_chs"], stem["act"]):
            raise ValueError(f"{self.name}: stem {describe_block(stem)} is neither a 3x3 conv-BN-act (stride 1 or 2) "
                             f"nor the hybrid stem")
        out["stem"] = self._value_index("stem", kind, "stem kind")
        out["stem_act"] = self._value_index("stem_act", stem["act"], "stem activation")
        widths = self.choice("width")
        deepest: list[Any] = [-1, f"stem width {stem['out_chs']} is not a stem width of this space at any width "
                                  f"multiplier"]
        for m in sorted(range(len(widths)), key=lambda i: abs(widths.values[i] - 1.0)):  # 1.0 first
            mult = widths.values[m]
            sw = [i for i, w in enumerate(self.choice("stem_width").values) if scale_width(w, mult) == stem["out_chs"]]
            found = self._align(arch.blocks, 0, 0, stem["out_chs"], mult, deepest) if sw else None
            if found is not None:
                return {**out, "width": m, "stem_width": sw[0], **found}
        where, why = deepest
        raise ValueError(f"{self.name}: {why}" if where < 0 else f"{self.name}: block {where}: {why}")

    def _value_index(self, name: str, value: Any, what: str) -> int:
        c = self.choice(name)
        if value not in c.values:
            raise ValueError(f"{self.name}: {what} {value!r} is not one of {', '.join(c.labels)}")
        return c.values.index(value)

    def _match(self, block: Block, in_chs: int) -> int | None:
        """The first template (core before extra) that ``block`` is in a layer from ``in_chs``."""
        found = [i for i in self._relative if self.templates[i].matches(block, in_chs)]
        i = self._by_label.get(Template.of_block(block).label)
        if i is not None and self.templates[i].matches(block, in_chs):
            found.append(i)
        return min(found, default=None)

    def _align(self, blocks: Sequence[Block], k: int, i: int, chs: int, mult: float,
               deepest: list[Any]) -> dict[str, int] | None:
        """Indices of stages ``k..`` for ``blocks[i:]`` entering with ``chs`` channels (depth
        first, options in choice order); records the furthest failure in ``deepest``."""

        def fail(at: int, why: str) -> None:
            if at >= deepest[0]:  # ties: the later option, a longer stage, reads better
                deepest[:] = [at, why]

        if k == len(self.stages):
            if i == len(blocks):
                return {}
            fail(i, f"{describe_block(blocks[i])} is past the last stage")
            return None
        depth = self.choice(f"s{k}.depth")
        for d, n in enumerate(depth.values):
            if n == 0:
                rest = self._align(blocks, k + 1, i, chs, mult, deepest)
                if rest is not None:
                    return {depth.name: d, **rest}
                continue
            if i + n > len(blocks):
                fail(len(blocks), f"stage {k} takes {n} more layer(s), the network has {len(blocks) - i}")
                continue
            got = self._stage(blocks[i:i + n], k, i, chs, mult, fail)
            if got is None:
                continue
            width = scale_width(self.choice(f"s{k}.width").values[got[f"s{k}.width"]], mult)
            rest = self._align(blocks, k + 1, i + n, width, mult, deepest)
            if rest is not None:
                return {depth.name: d, **got, **rest}
        return None

    def _stage(self, run: Sequence[Block], k: int, i: int, chs: int, mult: float,
               fail: Callable[[int, str], None]) -> dict[str, int] | None:
        """Indices of stage ``k``'s choices for the blocks ``run`` (``None`` after ``fail``)."""
        st = self.stages[k]
        first = run[0]
        a = first.kwargs
        out: dict[str, int] = {}
        stride = a.get("stride", 1)
        strides = (st.stride, *st.extra_strides)
        if stride not in strides:
            fail(i, f"stage {k} starts with stride {' or '.join(map(str, strides))}, {describe_block(first)} has {stride}")
            return None
        if st.extra_strides:
            out[f"s{k}.stride"] = self.choice(f"s{k}.stride").values.index(stride)
        width = a.get("out_chs", chs)
        wc = self.choice(f"s{k}.width")
        widths = [j for j, w in enumerate(wc.values) if scale_width(w, mult) == width]
        if not widths:
            listed = ", ".join(str(scale_width(w, mult)) for w in wc.values)
            fail(i, f"width {width} is not a width of stage {k} at width multiplier {mult} ({listed})")
            return None
        out[wc.name] = widths[0]
        downsample = a.get("downsample", "standard")
        in_chs = chs
        for j, block in enumerate(run):
            if j > 0 and (block.kwargs.get("stride", 1) != 1 or block.kwargs.get("out_chs", width) != width):
                fail(i + j, f"stage {k}, layer {j}: {describe_block(block)} is not a stride-1 layer of width {width}")
                return None
            t = self._match(block, in_chs)
            if t is None:
                fail(i + j, f"stage {k}, layer {j}: {describe_block(block)} (template "
                            f"{Template.of_block(block).label}) is not a layer template of this space")
                return None
            out[f"s{k}.l{j}"] = t
            in_chs = width
        if f"s{k}.downsample" in self._index and self.templates[out[f"s{k}.l0"]].has_downsample:
            out[f"s{k}.downsample"] = DOWNSAMPLE_KINDS.index(downsample)
        elif downsample != "standard":
            fail(i, f"stage {k} has no downsampling choice, {describe_block(first)} is {downsample}")
            return None
        return out

    # ---------------------------------------------------------------------------- counting
    def _options(self, name: str, core_only: bool) -> list[tuple[int, Any]]:
        c = self.choice(name)
        return [(i, c.values[i]) for i in (c.core if core_only else range(len(c)))]

    def _first_layers(self, k: int, in_chs: int, out_chs: int, stride: int, core_only: bool) -> dict[str, list[int]]:
        """Per downsampling kind, the templates of stage ``k``'s first layer that fit
        ``in_chs -> out_chs`` at ``stride`` (templates without the choice count as standard)."""
        key = (k, in_chs, out_chs, stride, core_only)
        got = self._first_memo.get(key)
        if got is None:
            options = tuple(i for i, _ in self._options(f"s{k}.l0", core_only))
            with_ds = tuple(i for i in options if self.templates[i].has_downsample)
            has_choice = f"s{k}.downsample" in self._index
            kinds = [v for _, v in self._options(f"s{k}.downsample", core_only)] if has_choice else ["standard"]
            got = {ds: self._fitter.fitting(with_ds, in_chs, out_chs, stride, ds) for ds in kinds}
            without = tuple(i for i in options if not self.templates[i].has_downsample)
            got["standard"] = sorted(got.get("standard", []) + self._fitter.fitting(without, in_chs, out_chs, stride,
                                                                                    "standard"))
            got = self._first_memo[key] = {ds: ts for ds, ts in got.items() if ts}
        return got

    def _later_layers(self, k: int, j: int, width: int, core_only: bool) -> list[int]:
        """The templates of stage ``k``'s layer ``j > 0`` that fit a stride-1 layer of ``width``."""
        key = (k, j, width, core_only)
        got = self._later_memo.get(key)
        if got is None:
            options = tuple(i for i, _ in self._options(f"s{k}.l{j}", core_only))
            got = self._later_memo[key] = self._fitter.fitting(options, width, width, 1, "standard")
        return got

    def _stage_step(self, k: int, mult: float, states: Counter[tuple[int, int]], core_only: bool,
                    configs: set[OpConfig] | None = None, seen: set[tuple[Any, ...]] | None = None,
                    ) -> Counter[tuple[int, int]]:
        """Prefix counts per (channels, map size) after stage ``k`` from those before it; with
        ``configs``, also collects the op configurations the stage's layers take."""
        st = self.stages[k]
        depths = [n for _, n in self._options(f"s{k}.depth", core_only)]
        strides = [v for _, v in self._options(f"s{k}.stride", core_only)] if st.extra_strides else [st.stride]
        widths = [scale_width(w, mult) for _, w in self._options(f"s{k}.width", core_only)]
        # Ways to fill layers 1..n-1 of the stage, per width and depth n.
        later: dict[tuple[int, int], int] = {}
        for width in set(widths):
            counts = [len(self._later_layers(k, j, width, core_only)) for j in range(1, st.slots)]
            for n in depths:
                if n > 0:
                    later[(width, n)] = math.prod(counts[:n - 1])
        new: Counter[tuple[int, int]] = Counter()
        for (chs, size), count in states.items():
            if 0 in depths:
                new[(chs, size)] += count
            for stride in strides:
                for width in widths:
                    for ds, fitting in self._first_layers(k, chs, width, stride, core_only).items():
                        out_size = _shrink(size, stride, ds)
                        if out_size < 1:
                            continue
                        rest = sum(later[(width, n)] for n in depths if n > 0)
                        new[(width, out_size)] += count * len(fitting) * rest
                        if configs is not None:
                            self._collect(k, chs, width, size, out_size, stride, ds, fitting, depths, core_only,
                                          configs, seen)
        return new

    def _collect(self, k: int, chs: int, width: int, size: int, out_size: int, stride: int, ds: str,
                 fitting: Sequence[int], depths: Sequence[int], core_only: bool, configs: set[OpConfig],
                 seen: set[tuple[Any, ...]]) -> None:
        """Add the configurations of stage ``k``'s layers for one (input, width, stride, kind)."""
        if (k, chs, width, size, stride, ds) not in seen:
            seen.add((k, chs, width, size, stride, ds))
            for t in fitting:
                template = self.templates[t]
                configs.add(_config(template, chs, width, stride, ds if template.has_downsample else "standard", size))
        if (k, width, out_size) not in seen:
            seen.add((k, width, out_size))
            for j in range(1, max(depths)):
                for t in self._later_layers(k, j, width, core_only):
                    configs.add(_config(self.templates[t], width, width, 1, "standard", out_size))

    def _walk(self, resolutions: Sequence[int], core_only: bool,
              configs: set[OpConfig] | None = None) -> int:
        """Valid points over ``resolutions`` (one head), collecting configurations if asked."""
        total = 0
        seen: set[tuple[Any, ...]] = set()  # (stage, shapes) whose configurations are collected
        for res in resolutions:
            for _, mult in self._options("width", core_only):
                states: Counter[tuple[int, int]] = Counter()
                for _, kind in self._options("stem", core_only):
                    for _, sw in self._options("stem_width", core_only):
                        for _, act in self._options("stem_act", core_only):
                            stem = self._stem(kind, scale_width(sw, mult), act)
                            size = _shrink(res, stem.kwargs.get("stride", 1), "standard")
                            states[(stem["out_chs"], size)] += 1
                            if configs is not None:
                                configs.add(OpConfig(stem.op, stem.args, 3, res))
                for k in range(len(self.stages)):
                    states = self._stage_step(k, mult, states, core_only, configs, seen)
                total += sum(states.values())
                if configs is not None:
                    for (chs, size) in states:
                        for _, head in self._options("head", core_only):
                            configs.add(OpConfig(head.op, head.args, chs, size, self.num_classes))
        return total

    def size(self, core_only: bool = False) -> int:
        """Exact number of valid points: a dynamic programme over the stages whose state is the
        (channels, map size) a prefix of the network ends with."""
        if core_only not in self._counts:
            res = [r for _, r in self._options("resolution", core_only)]
            self._counts[core_only] = self._walk(res, core_only) * len(self._options("head", core_only))
        return self._counts[core_only]

    def op_configs(self, resolution: int | None = None, *, core_only: bool = False) -> list[OpConfig]:
        """Every op configuration of the valid points at ``resolution`` (default: every
        resolution of the space); ``core_only``: of the points sampling can reach."""
        res = [r for _, r in self._options("resolution", core_only)] if resolution is None else [resolution]
        configs: set[OpConfig] = set()
        self._walk(res, core_only, configs)
        return sorted(configs, key=OpConfig.key)

    def skeleton(self) -> list[str]:
        stems = self.choice("stem")
        lines = [f"input: resolution choice, 3 channels, {self.num_classes} classes",
                 f"stem: {' or '.join(stems.labels[i] for i in stems.core)} (conv: 3x3 stride 2, conv_s1: stride 1, "
                 f"hybrid: stride 1), base width {self.choice('stem_width').values[0]}"]
        for k, st in enumerate(self.stages):
            extra = f"; extra depths {list(st.extra_depths)}" if st.extra_depths else ""
            lines.append(f"stage {k}: first stride {st.strides(self.small_input)[0][0]}, base width {st.width}, depth "
                         f"{'/'.join(map(str, st.depths))}{extra}; {st.slots} layer slot(s)")
        lines.append(f"head: one of {len(self._head_blocks)} heads "
                     f"({len(self.choice('head').core)} core: 1x1 conv 1280, pool, linear)")
        lines.append(f"layer templates: {self._n_core_templates} core, "
                     f"{len(self.templates) - self._n_core_templates} extra")
        return lines


def _config(t: Template, in_chs: int, out_chs: int, stride: int, downsample: str, size: int) -> OpConfig:
    """The op configuration of template ``t`` in a layer (without building a block)."""
    raw = t.raw_args(in_chs, out_chs, stride, downsample)
    return OpConfig(t.op, tuple((f.name, raw[f.name]) for f in t.spec.fields), in_chs, size)
