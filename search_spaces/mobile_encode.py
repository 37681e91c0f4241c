"""The backtracking encoder of the ``mobile`` superspace: an architecture to the indices of a
point, or a ``ValueError`` naming the furthest block no option of the space explains.

It reads a built space only through :class:`~search_spaces.mobile_tables.MobileView`, so that
:class:`~search_spaces.mobile.MobileSpace` owns one encoder and this module needs nothing of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nas.arch import Arch, Block
from search_spaces.mobile_tables import MobileView, scale_width
from search_spaces.ops.common import DOWNSAMPLE_KINDS
from search_spaces.space import check_fixed, describe_block
from search_spaces.stems import stem_kind
from search_spaces.templates import Template


class MobileEncoder:
    """Encodes architectures into points of ``space``: the first point in choice order, with the
    width multiplier 1.0 tried first, stage by stage, depth first."""

    def __init__(self, space: MobileView) -> None:
        self.space = space
        self._by_label = {t.label: i for i, t in enumerate(space.templates) if not t.ratios}
        self._relative = tuple(i for i, t in enumerate(space.templates) if t.ratios)
        self._names = frozenset(c.name for c in space.choices)

    def encode(self, arch: Arch) -> dict[str, int]:
        """Indices of ``arch``'s point, by choice name (``ValueError`` where no point is ``arch``)."""
        check_fixed(self.space.name, arch, num_classes=self.space.num_classes, in_chans=3)
        out = {"resolution": self._value_index("resolution", arch.resolution, "resolution")}
        head = self.space.choice("head")
        if arch.head not in head.values:
            raise ValueError(f"{self.space.name}: head {describe_block(arch.head)} is not one of "
                             f"{', '.join(head.labels)}")
        out["head"] = head.values.index(arch.head)
        stem = arch.stem
        kind = stem_kind(stem)
        if kind is None:
            raise ValueError(f"{self.space.name}: stem {describe_block(stem)} is neither a 3x3 conv-BN-act "
                             f"(stride 1 or 2) nor the hybrid stem")
        out["stem"] = self._value_index("stem", kind, "stem kind")
        out["stem_act"] = self._value_index("stem_act", stem["act"], "stem activation")
        widths = self.space.choice("width")
        deepest: list[Any] = [-1, f"stem width {stem['out_chs']} is not a stem width of this space at any width "
                                  f"multiplier"]
        for m in sorted(range(len(widths)), key=lambda i: abs(widths.values[i] - 1.0)):  # 1.0 first
            mult = widths.values[m]
            sw = [i for i, w in enumerate(self.space.choice("stem_width").values)
                  if scale_width(w, mult) == stem["out_chs"]]
            found = self._align(arch.blocks, 0, 0, stem["out_chs"], mult, deepest) if sw else None
            if found is not None:
                return {**out, "width": m, "stem_width": sw[0], **found}
        where, why = deepest
        raise ValueError(f"{self.space.name}: {why}" if where < 0 else f"{self.space.name}: block {where}: {why}")

    def _value_index(self, name: str, value: Any, what: str) -> int:
        c = self.space.choice(name)
        if value not in c.values:
            raise ValueError(f"{self.space.name}: {what} {value!r} is not one of {', '.join(c.labels)}")
        return c.values.index(value)

    def _match(self, block: Block, in_chs: int) -> int | None:
        """The first template (core before extra) that ``block`` is in a layer from ``in_chs``."""
        found = [i for i in self._relative if self.space.templates[i].matches(block, in_chs)]
        i = self._by_label.get(Template.of_block(block).label)
        if i is not None and self.space.templates[i].matches(block, in_chs):
            found.append(i)
        return min(found, default=None)

    def _align(self, blocks: Sequence[Block], k: int, i: int, chs: int, mult: float,
               deepest: list[Any]) -> dict[str, int] | None:
        """Indices of stages ``k..`` for ``blocks[i:]`` entering with ``chs`` channels (depth
        first, options in choice order); records the furthest failure in ``deepest``."""

        def fail(at: int, why: str) -> None:
            if at >= deepest[0]:  # ties: the later option, a longer stage, reads better
                deepest[:] = [at, why]

        if k == len(self.space.stages):
            if i == len(blocks):
                return {}
            fail(i, f"{describe_block(blocks[i])} is past the last stage")
            return None
        depth = self.space.choice(f"s{k}.depth")
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
            width = scale_width(self.space.choice(f"s{k}.width").values[got[f"s{k}.width"]], mult)
            rest = self._align(blocks, k + 1, i + n, width, mult, deepest)
            if rest is not None:
                return {depth.name: d, **got, **rest}
        return None

    def _stage(self, run: Sequence[Block], k: int, i: int, chs: int, mult: float,
               fail: Callable[[int, str], None]) -> dict[str, int] | None:
        """Indices of stage ``k``'s choices for the blocks ``run`` (``None`` after ``fail``)."""
        st = self.space.stages[k]
        first = run[0]
        a = first.kwargs
        out: dict[str, int] = {}
        stride = a.get("stride", 1)
        strides = (st.stride, *st.extra_strides)
        if stride not in strides:
            fail(i, f"stage {k} starts with stride {' or '.join(map(str, strides))}, {describe_block(first)} has {stride}")
            return None
        if st.extra_strides:
            out[f"s{k}.stride"] = self.space.choice(f"s{k}.stride").values.index(stride)
        width = a.get("out_chs", chs)
        wc = self.space.choice(f"s{k}.width")
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
        if f"s{k}.downsample" in self._names and self.space.templates[out[f"s{k}.l0"]].has_downsample:
            out[f"s{k}.downsample"] = DOWNSAMPLE_KINDS.index(downsample)
        elif downsample != "standard":
            fail(i, f"stage {k} has no downsampling choice, {describe_block(first)} is {downsample}")
            return None
        return out
