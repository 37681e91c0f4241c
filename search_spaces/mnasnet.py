"""The MnasNet factorized hierarchical search space (Tan et al., "MnasNet: Platform-Aware Neural
Architecture Search for Mobile", CVPR 2019, Section 4.1 and Figure 4).

The network is a fixed sequence of seven stages ("blocks" in the paper) over MobileNetV2's
skeleton (Sandler et al., CVPR 2018), which the paper uses as the reference for the layer counts
and widths: depths ``[1, 2, 3, 4, 3, 3, 1]``, widths ``[16, 24, 32, 64, 96, 160, 320]``, first
strides ``[1, 2, 2, 2, 1, 2, 1]``, after a 3x3 stride-2 conv stem with 32 channels and before a
1x1 conv to 1280 channels, pooling and a linear classifier. Every stage searches, for all its
layers at once (the layers of a stage are identical, only the first one has the stride):

- ``op``: regular conv (``cn``), depthwise-separable conv (``ds``) or MBConv (``ir``);
- ``kernel``: 3 or 5;
- ``se``: squeeze-excite ratio 0 or 0.25 (sized from the block input, as the reference);
- ``skip``: ``none`` or an ``identity`` residual (where the shape allows one);
- ``expansion``: 3 or 6 (MBConv only);
- ``layers``: the base depth -1, +0 or +1 (at least 1);
- ``width``: the base width x0.75, x1.0 or x1.25 rounded to a multiple of 8.

ReLU throughout. The registry's plain conv has neither squeeze-excite nor a residual, so ``se``
and ``skip`` are active for ``ds`` and ``ir`` only (the paper's pooling skip op is left out).

MnasNet-A1 and -B1 (zoo ``mnasnet_a1``, ``mnasnet_b1``) are points once two widths the relative
grid misses are added as extra values: 112 in stage 4 (A1; 1.25 x 96 rounds to 120) and 192 in
stage 5 (B1; 1.25 x 160 is 200). Their first block, a depthwise-separable conv without residual,
is ``op=ds, skip=none`` of stage 0.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from typing import Any

from nas.arch import Arch, Block
from search_spaces.ops.layers import make_divisible
from search_spaces.registry import OpConfig, get_op
from search_spaces.space import Choice, SearchSpace, check_fixed, describe_block
from search_spaces.stems import stem_block

__all__ = ["BASE_STAGES", "EXTRA_WIDTHS", "MnasNetSpace"]

# (depth, width, first stride) per stage: MobileNetV2's skeleton, the paper's reference.
BASE_STAGES: tuple[tuple[int, int, int], ...] = (
    (1, 16, 1), (2, 24, 2), (3, 32, 2), (4, 64, 2), (3, 96, 1), (3, 160, 2), (1, 320, 1),
)
WIDTH_MULTIPLIERS = (0.75, 1.0, 1.25)
LAYER_OFFSETS = (-1, 0, 1)
# Widths of MnasNet-A1/B1 the relative grid misses: stage -> (width, which net).
EXTRA_WIDTHS: dict[int, tuple[tuple[int, str], ...]] = {4: ((112, "A1"),), 5: ((192, "B1"),)}
STEM_CHS = 32
HEAD_CHS = 1280
OPS = ("conv", "dwconv", "mbconv")
_REGISTRY_OP = {"conv": "cn", "dwconv": "ds", "mbconv": "ir"}
# Stage choices that set one argument of the block: choice -> (the registry field, choice value ->
# argument, argument -> choice value). A choice is active for the ops whose registry entry has the
# field, so which op takes squeeze-excite, a residual or an expansion is the registry's word.
_ARGUMENT_CHOICES: dict[str, tuple[str, Callable[[Any], Any], Callable[[Any], Any]]] = {
    "se": ("se_ratio", lambda v: v, lambda a: a),
    "skip": ("noskip", lambda v: v == "none", lambda a: "none" if a else "identity"),
    "expansion": ("exp_ratio", lambda v: v, lambda a: a),
}
_CHOICE_VALUES = {"se": (0.0, 0.25), "skip": ("none", "identity"), "expansion": (3, 6)}


def _has_field(op: str, field: str) -> bool:
    """Whether the registry op behind the space's op label ``op`` has the argument ``field``."""
    return field in get_op(_REGISTRY_OP[op]).field_by_name


def _ops_with(field: str) -> frozenset[int]:
    """The indices of the space's ops that take the argument ``field``."""
    return frozenset(i for i, op in enumerate(OPS) if _has_field(op, field))


class MnasNetSpace(SearchSpace):
    """MnasNet's per-stage factorized space over MobileNetV2's seven stages.

    Args:
        resolution: input size of every point (224 in the paper).
        num_classes: classifier outputs.
        dropout: before the classifier (0.2, as the zoo's MnasNets).
    """

    name = "mnasnet"
    summary = "MnasNet: 7 stages x (op, kernel, SE, skip, expansion, layers, width)"
    paper = "Tan et al., MnasNet: Platform-Aware Neural Architecture Search for Mobile, CVPR 2019"

    def __init__(self, *, resolution: int = 224, num_classes: int = 1000, dropout: float = 0.2):
        self.resolution, self.num_classes, self.dropout = resolution, num_classes, dropout
        choices: list[Choice] = []
        self._widths: list[tuple[int, ...]] = []
        self._depths: list[tuple[int, ...]] = []
        for k, (depth, width, stride) in enumerate(BASE_STAGES):
            where = f"stage {k}: base {depth} x {width} ch, stride {stride}"
            grid: dict[int, str] = {}
            for m in sorted(WIDTH_MULTIPLIERS, key=lambda m: abs(m - 1.0)):  # x1.0 names a shared width
                grid.setdefault(make_divisible(width * m), f"x{m}")
            extras = {w: net for w, net in EXTRA_WIDTHS.get(k, ())}
            widths = tuple(sorted({*grid, *extras}))
            depths = tuple(sorted({max(1, depth + d) for d in LAYER_OFFSETS}))
            self._widths.append(widths)
            self._depths.append(depths)
            choices += [
                Choice(f"s{k}.op", OPS, doc=where),
                Choice(f"s{k}.kernel", (3, 5), doc=where),
                *(Choice(f"s{k}.{name}", _CHOICE_VALUES[name], parent=f"s{k}.op", when=_ops_with(field), doc=where)
                  for name, (field, _, _) in _ARGUMENT_CHOICES.items()),
                Choice(f"s{k}.layers", depths, labels=tuple(f"{n} ({n - depth:+d})" for n in depths), doc=where),
                Choice(f"s{k}.width", widths, labels=tuple(f"{w} ({grid.get(w) or extras[w]})" for w in widths),
                       doc=where),
            ]
        super().__init__(choices)
        self._stem = stem_block("conv", STEM_CHS)
        self._head = Block.make("hc", out_chs=HEAD_CHS, act="relu", dropout=dropout)
        Arch(resolution, num_classes, self._stem, (), self._head)  # reject bad arguments up front

    @staticmethod
    def _block(v: Mapping[str, Any], k: int, stride: int) -> Block:
        """The block of stage ``k``'s choices ``v`` (keys without the stage prefix)."""
        op = v["op"]
        args: dict[str, Any] = {"out_chs": v["width"], "kernel": v["kernel"], "stride": stride, "act": "relu"}
        for name, (field, to_argument, _) in _ARGUMENT_CHOICES.items():
            if _has_field(op, field):
                args[field] = to_argument(v[name])
        return Block.make(_REGISTRY_OP[op], args)

    def _stage_values(self, values: Mapping[str, Any], k: int) -> dict[str, Any]:
        prefix = f"s{k}."
        return {name[len(prefix):]: v for name, v in values.items() if name.startswith(prefix)}

    def _stage_blocks(self, v: Mapping[str, Any], k: int) -> list[Block]:
        first = self._block(v, k, BASE_STAGES[k][2])
        return [first] + [first.replace(stride=1)] * (v["layers"] - 1)

    def _decode(self, values: Mapping[str, Any]) -> Arch:
        blocks: list[Block] = []
        for k in range(len(BASE_STAGES)):
            blocks += self._stage_blocks(self._stage_values(values, k), k)
        return Arch(self.resolution, self.num_classes, self._stem, tuple(blocks), self._head)

    def _encode(self, arch: Arch) -> dict[str, int]:
        check_fixed(self.name, arch, resolution=self.resolution, num_classes=self.num_classes, in_chans=3,
                    stem=self._stem, head=self._head)
        out: dict[str, int] = {}
        i = 0
        for k, (_, _, stride) in enumerate(BASE_STAGES):
            if i >= len(arch.blocks):
                raise ValueError(f"{self.name}: stage {k}: no blocks left ({len(arch.blocks)} in all)")
            first = arch.blocks[i]
            v = self._read_block(first, k, i, stride)
            n = 1
            while i + n < len(arch.blocks) and arch.blocks[i + n] == first.replace(stride=1) and n < max(self._depths[k]):
                n += 1
            if n not in self._depths[k]:
                raise ValueError(f"{self.name}: stage {k} (blocks {i}..{i + n - 1}): {n} identical layers, "
                                 f"the stage takes {' or '.join(map(str, self._depths[k]))}")
            v["layers"] = n
            for name, value in v.items():
                c = self.choice(f"s{k}.{name}")
                out[c.name] = c.values.index(value)
            i += n
        if i != len(arch.blocks):
            raise ValueError(f"{self.name}: block {i} ({describe_block(arch.blocks[i])}) is past the last stage")
        return out

    def _read_block(self, block: Block, k: int, i: int, stride: int) -> dict[str, Any]:
        """The stage choices (other than ``layers``) that make ``block`` the first of stage ``k``."""
        where = f"{self.name}: stage {k}, block {i} ({describe_block(block)})"
        ops = {reg: op for op, reg in _REGISTRY_OP.items()}
        if block.op not in ops:
            raise ValueError(f"{where}: op {block.op!r} is not a candidate (cn, ds, ir)")
        a = block.kwargs
        v: dict[str, Any] = {"op": ops[block.op], "kernel": a["kernel"], "width": a["out_chs"]}
        for name, (field, _, to_choice) in _ARGUMENT_CHOICES.items():
            if field in a:
                v[name] = to_choice(a[field])
        for name, value in v.items():
            if value not in self.choice(f"s{k}.{name}").values:
                raise ValueError(f"{where}: {name} {value!r} is not one of {self.choice(f's{k}.{name}').values}")
        if block != self._block(v, k, stride):
            raise ValueError(f"{where}: differs from stage {k}'s candidate {describe_block(self._block(v, k, stride))}")
        return v

    def _stage_variants(self, k: int) -> list[dict[str, Any]]:
        """Every combination of stage ``k``'s op choices (without ``layers``)."""
        out = []
        for op in OPS:
            # an argument choice the op does not take has one (unused) value
            taken = {name: _CHOICE_VALUES[name] if _has_field(op, field) else (_CHOICE_VALUES[name][0],)
                     for name, (field, _, _) in _ARGUMENT_CHOICES.items()}
            for kernel, width, *values in itertools.product((3, 5), self._widths[k], *taken.values()):
                out.append({"op": op, "kernel": kernel, "width": width, **dict(zip(taken, values, strict=True))})
        return out

    def op_configs(self, resolution: int | None = None, *, core_only: bool = False) -> list[OpConfig]:
        res = self.resolution if resolution is None else resolution
        size = self._stem.spec.out_size(res, self._stem.kwargs)
        configs = {OpConfig(self._stem.op, self._stem.args, 3, res)}
        in_widths: tuple[int, ...] = (STEM_CHS,)
        for k, (_, _, stride) in enumerate(BASE_STAGES):
            out_size = size
            for v in self._stage_variants(k):
                first = self._block(v, k, stride)
                out_size = first.spec.out_size(size, first.kwargs)
                configs.update(OpConfig(first.op, first.args, c, size) for c in in_widths)
                if max(self._depths[k]) > 1:
                    rest = first.replace(stride=1)
                    configs.add(OpConfig(rest.op, rest.args, v["width"], out_size))
            size, in_widths = out_size, self._widths[k]
        configs.update(OpConfig(self._head.op, self._head.args, c, size, self.num_classes) for c in in_widths)
        return sorted(configs, key=OpConfig.key)

    def cheapest_values(self, cost: Callable[[OpConfig], float]) -> dict[str, Any]:
        """The choice values of the point with the least ``sum of cost(op configuration)``: a
        dynamic programme over the stages whose state is the previous stage's width (the only
        thing one stage's cost takes from the stages before it)."""
        size = self._stem.spec.out_size(self.resolution, self._stem.kwargs)
        # width the prefix ends with -> (least cost of the prefix, its choice values)
        states: dict[int, tuple[float, dict[str, Any]]] = {
            STEM_CHS: (cost(OpConfig(self._stem.op, self._stem.args, 3, self.resolution)), {})}
        for k, (_, _, stride) in enumerate(BASE_STAGES):
            new: dict[int, tuple[float, dict[str, Any]]] = {}
            out_size = size
            for v in self._stage_variants(k):
                first = self._block(v, k, stride)
                out_size = first.spec.out_size(size, first.kwargs)
                rest = first.replace(stride=1)
                per_rest = cost(OpConfig(rest.op, rest.args, v["width"], out_size)) if max(self._depths[k]) > 1 else 0.0
                layers = min(self._depths[k], key=lambda n, c=per_rest: (n - 1) * c)
                for in_chs, (before, values) in states.items():
                    total = before + cost(OpConfig(first.op, first.args, in_chs, size)) + (layers - 1) * per_rest
                    if total < new.get(v["width"], (math.inf, {}))[0]:
                        new[v["width"]] = (total, {**values, **{f"s{k}.{n}": x for n, x in v.items()},
                                                   f"s{k}.layers": layers})
            size, states = out_size, new
        head = {c: cost(OpConfig(self._head.op, self._head.args, c, size, self.num_classes)) for c in states}
        return min(states.items(), key=lambda item: item[1][0] + head[item[0]])[1][1]

    def min_cost(self, cost: Callable[[OpConfig], float], resolution: int | None = None, *,
                 core_only: bool = False) -> float:
        """The least total per-op cost of a point (the network of :meth:`cheapest_values`). Every
        width counts, the extra ones (MnasNet-A1/B1's) included: over core points only, the
        least is this or more."""
        space = self if resolution in (None, self.resolution) else MnasNetSpace(
            resolution=resolution, num_classes=self.num_classes, dropout=self.dropout)
        return sum(cost(c) for c in space._decode(space.cheapest_values(cost)).op_configs())

    def skeleton(self) -> list[str]:
        return self._conv_skeleton(STEM_CHS, [f"stage {k}: base {depth} layer(s) x {width} ch, first stride {stride}"
                                              for k, (depth, width, stride) in enumerate(BASE_STAGES)], HEAD_CHS,
                                   self.dropout)
