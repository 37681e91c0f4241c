"""Exact counting of the ``mobile`` superspace's valid points, enumeration of the op
configurations they use, and the least total of any additive per-op cost (a latency table's
prediction) over them: one dynamic programme over the stages whose state is the (channels, map
size) a prefix of the network ends with, the templates that fit each layer memoised.

It reads a built space only through :class:`~search_spaces.mobile_tables.MobileView`, so that
:class:`~search_spaces.mobile.MobileSpace` owns one counter and this module needs nothing of it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from search_spaces.mobile_tables import MobileView, scale_width, shrink
from search_spaces.registry import OpConfig
from search_spaces.stems import stem_block
from search_spaces.templates import FitCounter, Template


class MobileCounter:
    """Counts the valid points of ``space`` and collects their op configurations (memoised:
    the space's choices must not change after it is built)."""

    def __init__(self, space: MobileView) -> None:
        self.space = space
        self._names = frozenset(c.name for c in space.choices)
        self._fitter = FitCounter(space.templates)
        self._first_memo: dict[tuple[int, int, int, int, bool], dict[str, list[int]]] = {}
        self._later_memo: dict[tuple[int, int, int, bool], list[int]] = {}
        self._counts: dict[bool, int] = {}

    def _options(self, name: str, core_only: bool) -> list[tuple[int, Any]]:
        c = self.space.choice(name)
        return [(i, c.values[i]) for i in (c.core if core_only else range(len(c)))]

    def _first_layers(self, k: int, in_chs: int, out_chs: int, stride: int, core_only: bool) -> dict[str, list[int]]:
        """Per downsampling kind, the templates of stage ``k``'s first layer that fit
        ``in_chs -> out_chs`` at ``stride`` (templates without the choice count as standard)."""
        key = (k, in_chs, out_chs, stride, core_only)
        got = self._first_memo.get(key)
        if got is None:
            options = tuple(i for i, _ in self._options(f"s{k}.l0", core_only))
            with_ds = tuple(i for i in options if self.space.templates[i].has_downsample)
            has_choice = f"s{k}.downsample" in self._names
            kinds = [v for _, v in self._options(f"s{k}.downsample", core_only)] if has_choice else ["standard"]
            got = {ds: self._fitter.fitting(with_ds, in_chs, out_chs, stride, ds) for ds in kinds}
            without = tuple(i for i in options if not self.space.templates[i].has_downsample)
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

    def _stage_options(self, k: int, mult: float, core_only: bool) -> tuple[list[int], list[int], list[int]]:
        """Stage ``k``'s depths, first strides and (scaled) widths."""
        st = self.space.stages[k]
        depths = [n for _, n in self._options(f"s{k}.depth", core_only)]
        strides = [v for _, v in self._options(f"s{k}.stride", core_only)] if st.extra_strides else [st.stride]
        widths = [scale_width(w, mult) for _, w in self._options(f"s{k}.width", core_only)]
        return depths, strides, widths

    def _transitions(self, k: int, chs: int, size: int, strides: Sequence[int], widths: Sequence[int],
                     core_only: bool) -> Iterator[tuple[int, int, str, list[int], int]]:
        """Every way stage ``k``'s first layer can take a ``chs`` x ``size`` input:
        ``(stride, width, downsampling kind, fitting templates, output size)``."""
        for stride in strides:
            for width in widths:
                for ds, fitting in self._first_layers(k, chs, width, stride, core_only).items():
                    out_size = shrink(size, stride, ds)
                    if out_size >= 1:
                        yield stride, width, ds, fitting, out_size

    def _stems(self, res: int, mult: float, core_only: bool) -> Iterator[tuple[OpConfig, tuple[int, int]]]:
        """Every stem at input ``res`` and width multiplier ``mult``: its op configuration and the
        (channels, map size) it ends with."""
        for _, kind in self._options("stem", core_only):
            for _, sw in self._options("stem_width", core_only):
                for _, act in self._options("stem_act", core_only):
                    stem = stem_block(kind, scale_width(sw, mult), act)
                    yield (OpConfig(stem.op, stem.args, 3, res),
                           (stem["out_chs"], shrink(res, stem.kwargs.get("stride", 1), "standard")))

    def _stage_step(self, k: int, mult: float, states: Counter[tuple[int, int]], core_only: bool,
                    configs: set[OpConfig] | None = None, seen: set[tuple[Any, ...]] | None = None,
                    ) -> Counter[tuple[int, int]]:
        """Prefix counts per (channels, map size) after stage ``k`` from those before it; with
        ``configs``, also collects the op configurations the stage's layers take."""
        st = self.space.stages[k]
        depths, strides, widths = self._stage_options(k, mult, core_only)
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
            for stride, width, ds, fitting, out_size in self._transitions(k, chs, size, strides, widths, core_only):
                rest = sum(later[(width, n)] for n in depths if n > 0)
                new[(width, out_size)] += count * len(fitting) * rest
                if configs is not None:
                    self._collect(k, chs, width, size, out_size, stride, ds, fitting, depths, core_only, configs, seen)
        return new

    def _collect(self, k: int, chs: int, width: int, size: int, out_size: int, stride: int, ds: str,
                 fitting: Sequence[int], depths: Sequence[int], core_only: bool, configs: set[OpConfig],
                 seen: set[tuple[Any, ...]]) -> None:
        """Add the configurations of stage ``k``'s layers for one (input, width, stride, kind)."""
        if (k, chs, width, size, stride, ds) not in seen:
            seen.add((k, chs, width, size, stride, ds))
            for t in fitting:
                template = self.space.templates[t]
                configs.add(_config(template, chs, width, stride, ds if template.has_downsample else "standard", size))
        if (k, width, out_size) not in seen:
            seen.add((k, width, out_size))
            for j in range(1, max(depths)):
                for t in self._later_layers(k, j, width, core_only):
                    configs.add(_config(self.space.templates[t], width, width, 1, "standard", out_size))

    def _walk(self, resolutions: Sequence[int], core_only: bool,
              configs: set[OpConfig] | None = None) -> int:
        """Valid points over ``resolutions`` (one head), collecting configurations if asked."""
        total = 0
        seen: set[tuple[Any, ...]] = set()  # (stage, shapes) whose configurations are collected
        for res in resolutions:
            for _, mult in self._options("width", core_only):
                states: Counter[tuple[int, int]] = Counter()
                for stem, state in self._stems(res, mult, core_only):
                    states[state] += 1
                    if configs is not None:
                        configs.add(stem)
                for k in range(len(self.space.stages)):
                    states = self._stage_step(k, mult, states, core_only, configs, seen)
                total += sum(states.values())
                if configs is not None:
                    for (chs, size) in states:
                        for _, head in self._options("head", core_only):
                            configs.add(OpConfig(head.op, head.args, chs, size, self.space.num_classes))
        return total

    def _stage_min(self, k: int, mult: float, states: dict[tuple[int, int], float], core_only: bool,
                   cost: Callable[[OpConfig], float]) -> dict[tuple[int, int], float]:
        """The least cost of a prefix ending in each (channels, map size) after stage ``k``, from
        those before it (the min-plus twin of :meth:`_stage_step`)."""
        depths, strides, widths = self._stage_options(k, mult, core_only)
        new: dict[tuple[int, int], float] = {}

        def keep(state: tuple[int, int], value: float) -> None:
            if value < new.get(state, math.inf):
                new[state] = value

        for (chs, size), before in states.items():
            if 0 in depths:
                keep((chs, size), before)
            for stride, width, ds, fitting, out_size in self._transitions(k, chs, size, strides, widths, core_only):
                first = min(cost(_config(self.space.templates[t], chs, width, stride,
                                         ds if self.space.templates[t].has_downsample else "standard", size))
                            for t in fitting)
                keep((width, out_size), before + first + self._cheapest_rest(k, width, out_size, depths, core_only, cost))
        return new

    def _cheapest_rest(self, k: int, width: int, size: int, depths: Sequence[int], core_only: bool,
                       cost: Callable[[OpConfig], float]) -> float:
        """The least cost of stage ``k``'s layers after its first, over its non-zero depths
        (``inf`` where no depth can be filled)."""
        per_layer = [min((cost(_config(self.space.templates[t], width, width, 1, "standard", size))
                          for t in self._later_layers(k, j, width, core_only)), default=math.inf)
                     for j in range(1, max(depths))]
        return min((sum(per_layer[:n - 1]) for n in depths if n > 0), default=math.inf)

    def min_cost(self, cost: Callable[[OpConfig], float], resolution: int | None = None, *,
                 core_only: bool = False) -> float:
        """The least ``sum of cost(op configuration)`` over the valid points at ``resolution``
        (default: every resolution of the space), stem and head included; ``cost`` must not be
        negative (a latency table's per-op prediction)."""
        resolutions = [r for _, r in self._options("resolution", core_only)] if resolution is None else [resolution]
        best = math.inf
        for res in resolutions:
            for _, mult in self._options("width", core_only):
                states: dict[tuple[int, int], float] = {}
                for stem, state in self._stems(res, mult, core_only):
                    states[state] = min(states.get(state, math.inf), cost(stem))
                for k in range(len(self.space.stages)):
                    states = self._stage_min(k, mult, states, core_only, cost)
                for (chs, size), before in states.items():
                    for _, head in self._options("head", core_only):
                        best = min(best, before + cost(OpConfig(head.op, head.args, chs, size, self.space.num_classes)))
        return best

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


def _config(t: Template, in_chs: int, out_chs: int, stride: int, downsample: str, size: int) -> OpConfig:
    """The op configuration of template ``t`` in a layer (without building a block)."""
    raw = t.raw_args(in_chs, out_chs, stride, downsample)
    return OpConfig(t.op, tuple((f.name, raw[f.name]) for f in t.spec.fields), in_chs, size)
