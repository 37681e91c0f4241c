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

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nas.arch import Arch, Block
from nas.arch_string import block_to_token, token_to_blocks
from search_spaces import stems
from search_spaces.mobile_count import MobileCounter
from search_spaces.mobile_encode import MobileEncoder
from search_spaces.mobile_tables import (
    CORE_TEMPLATES,
    EXTRA_HEADS,
    EXTRA_RESOLUTIONS,
    EXTRA_STEM_ACTS,
    EXTRA_STEM_KINDS,
    EXTRA_STEM_WIDTHS,
    EXTRA_TEMPLATES,
    HEADS,
    RESOLUTIONS,
    SMALL_INPUT,
    STAGES,
    STEM_ACTS,
    STEM_KINDS,
    STEM_WIDTH,
    WIDTH_MULTIPLIERS,
    Stage,
    scale_width,
)
from search_spaces.ops.common import DOWNSAMPLE_KINDS
from search_spaces.registry import OpConfig
from search_spaces.space import Choice, LayerwisePart, SearchSpace
from search_spaces.templates import Template

__all__ = ["Stage", "STAGES", "CORE_TEMPLATES", "EXTRA_TEMPLATES", "MobileSpace", "scale_width"]


class MobileSpace(SearchSpace):
    """The ``mobile`` superspace (see the module docstring).

    Every keyword defaults to the table of the same name in :mod:`search_spaces.mobile_tables`,
    so a smaller or larger superspace is a constructor call away.

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
    ) -> None:
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
            if kind not in stems.STEM_KINDS:
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
        self._encoder = MobileEncoder(self)
        self._counter = MobileCounter(self)

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
    def _decode(self, values: Mapping[str, Any]) -> Arch:
        mult = values["width"]
        stem = stems.stem_block(values["stem"], scale_width(values["stem_width"], mult), values["stem_act"])
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

    # -------------------------------------------------------------------- encode and count
    def _encode(self, arch: Arch) -> dict[str, int]:
        return self._encoder.encode(arch)

    def size(self, core_only: bool = False) -> int:
        """Exact number of valid points (:meth:`MobileCounter.size`)."""
        return self._counter.size(core_only)

    def op_configs(self, resolution: int | None = None, *, core_only: bool = False) -> list[OpConfig]:
        """Every op configuration of the valid points (:meth:`MobileCounter.op_configs`)."""
        return self._counter.op_configs(resolution, core_only=core_only)

    def min_cost(self, cost: Callable[[OpConfig], float], resolution: int | None = None, *,
                 core_only: bool = False) -> float:
        """The least total per-op cost of a valid point (:meth:`MobileCounter.min_cost`)."""
        return self._counter.min_cost(cost, resolution, core_only=core_only)

    def layerwise_part(self) -> LayerwisePart:
        """The layer templates of every slot, everything else fixed (a supernet's part, see
        :mod:`search_spaces.layerwise`): the one input size, width 1.0, the first core stem and
        head, each stage at its deepest core depth with its core stride, width and standard
        downsampling. ``ValueError`` for a space built without one input size."""
        if len(self.choice("resolution").values) != 1:
            raise ValueError("mobile: a supernet needs one input size; build the space with resolution=N "
                             "(a search does so with the latency table's or --resolution)")
        if 1.0 not in self.choice("width").values:
            raise ValueError(f"{self.name}: the width multiplier has no value 1.0, which the supernet fixes")
        fixed = {"resolution": 0, "width": self.choice("width").values.index(1.0),
                 **{name: self.choice(name).core[0] for name in ("stem", "stem_width", "stem_act", "head")}}
        names = {c.name for c in self.choices}
        searched: list[str] = []
        for k in range(len(self.stages)):
            depth = self.choice(f"s{k}.depth")
            d = max(depth.core, key=lambda i: depth.values[i])
            fixed[depth.name] = d
            fixed.update({name: self.choice(name).core[0] for name in (f"s{k}.stride", f"s{k}.width",
                                                                        f"s{k}.downsample") if name in names})
            searched += [f"s{k}.l{j}" for j in range(depth.values[d])]
        position = {c.name: i for i, c in enumerate(self.choices)}
        base = [0] * len(self.choices)
        for name, value in fixed.items():
            base[position[name]] = value
        options = tuple(tuple(self.choice(c).core) for c in searched)
        coverage = (f"mobile at {self.choice('resolution').values[0]}px, width 1.0, "
                    f"{self.choice('stem').labels[fixed['stem']]} stem, deepest core depth per stage, standard "
                    f"downsampling, head {self.choice('head').labels[fixed['head']]}: {len(searched)} layers x "
                    f"{min(map(len, options))}-{max(map(len, options))} core templates")
        return LayerwisePart(tuple(base), tuple(searched), options, coverage, whole=False)

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
