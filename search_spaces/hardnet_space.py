"""The ``hardnet`` search space: growth rate and block depth per stage of a HarDNet-DS skeleton
(Chao et al., "HarDNet: A Low Memory Traffic Network", ICCV 2019).

HarDNet is not chain-structured inside its blocks (a harmonic dense block concatenates the
outputs of selected layers), so it is not a point of ``mobile``. Here the skeleton is one of the
two published depthwise-separable templates, HarDNet-39DS (4 stages) or HarDNet-68DS (5 stages),
with their stems, growth multipliers, transition widths and downsampling pattern
(:data:`search_spaces.zoo.hardnet.HARDNET39DS` / ``HARDNET68DS``). The choices:

- ``template``: ``hardnet39ds`` or ``hardnet68ds``;
- per stage of the chosen template: the block's growth rate, the published one times 0.5,
  0.75, 1, 1.25 or 1.5 rounded to an even number (layer widths are even in the reference), and
  its depth, 4, 8 or 16 layers (powers of two keep the harmonic link pattern whole, as in every
  published HarDNet).

Both zoo networks are points (every published growth and depth is on the grid).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from nas.arch import Arch
from search_spaces.registry import OpConfig
from search_spaces.space import Choice, SearchSpace, check_fixed
from search_spaces.zoo.hardnet import HARDNET39DS, HARDNET68DS, HarDNetDef

__all__ = ["TEMPLATES", "GROWTH_MULTIPLIERS", "DEPTHS", "HarDNetSpace"]

TEMPLATES: dict[str, HarDNetDef] = {"hardnet39ds": HARDNET39DS, "hardnet68ds": HARDNET68DS}
GROWTH_MULTIPLIERS = (0.5, 0.75, 1.0, 1.25, 1.5)
DEPTHS = (4, 8, 16)


def _growths(growth: int) -> tuple[int, ...]:
    return tuple(sorted({max(2, 2 * round(growth * m / 2)) for m in GROWTH_MULTIPLIERS}))


class HarDNetSpace(SearchSpace):
    """Per-stage growth rate and depth over the HarDNet-39DS and -68DS templates.

    Args:
        resolution: input size of every point (224 in the paper).
        num_classes: classifier outputs.
    """

    name = "hardnet"
    summary = "HarDNet-DS: template (39DS/68DS) x per-stage growth rate and block depth"
    paper = "Chao et al., HarDNet: A Low Memory Traffic Network, ICCV 2019"

    def __init__(self, *, resolution: int = 224, num_classes: int = 1000):
        self.resolution, self.num_classes = resolution, num_classes
        names = tuple(TEMPLATES)
        choices = [Choice("template", names, doc="skeleton")]
        for t, (name, d) in enumerate(TEMPLATES.items()):
            for i, s in enumerate(d.stages):
                where = f"{name}, stage {i}: {s.out_chs} ch transition{', downsample' if s.downsample else ''}"
                choices += [
                    Choice(f"{name}.s{i}.growth", _growths(s.growth), parent="template", when=frozenset({t}), doc=where),
                    Choice(f"{name}.s{i}.layers", DEPTHS, parent="template", when=frozenset({t}), doc=where),
                ]
        super().__init__(choices)
        for d in TEMPLATES.values():
            d.arch(resolution, num_classes)  # reject bad arguments up front

    def _definition(self, values: Mapping[str, Any]) -> HarDNetDef:
        name = values["template"]
        d = TEMPLATES[name]
        n = range(len(d.stages))
        return d.replace_stages(growth=[values[f"{name}.s{i}.growth"] for i in n],
                                layers=[values[f"{name}.s{i}.layers"] for i in n])

    def _decode(self, values: Mapping[str, Any]) -> Arch:
        return self._definition(values).arch(self.resolution, self.num_classes)

    def _encode(self, arch: Arch) -> dict[str, int]:
        check_fixed(self.name, arch, resolution=self.resolution, num_classes=self.num_classes, in_chans=3)
        try:
            d = HarDNetDef.from_arch(arch)
        except ValueError as exc:
            raise ValueError(f"{self.name}: {exc}") from None
        for t, (name, template) in enumerate(TEMPLATES.items()):
            if len(d.stages) != len(template.stages) or template.replace_stages(growth=d.growth, layers=d.depths) != d:
                continue
            out = {"template": t}
            for i, s in enumerate(d.stages):
                for field, value in (("growth", s.growth), ("layers", s.layers)):
                    c = self.choice(f"{name}.s{i}.{field}")
                    if value not in c.values:
                        raise ValueError(f"{self.name}: {c.where}: {field} {value} is not one of "
                                         f"{', '.join(c.labels)}")
                    out[c.name] = c.values.index(value)
            return out
        raise ValueError(f"{self.name}: the stem, multiplier, transitions or downsampling match neither template "
                         f"({', '.join(TEMPLATES)}); only growth rates and depths vary")

    def op_configs(self, resolution: int | None = None, *, core_only: bool = False) -> list[OpConfig]:
        res = self.resolution if resolution is None else resolution
        configs: set[OpConfig] = set()
        for name, d in TEMPLATES.items():
            # A stage's choices change its own block and the next transition's input only.
            for i in range(len(d.stages)):
                for g in self.choice(f"{name}.s{i}.growth").values:
                    for n in DEPTHS:
                        growth = [*d.growth[:i], g, *d.growth[i + 1:]]
                        layers = [*d.depths[:i], n, *d.depths[i + 1:]]
                        arch = d.replace_stages(growth=growth, layers=layers).arch(res, self.num_classes)
                        configs.update(arch.op_configs())
        return sorted(configs, key=OpConfig.key)

    def cheapest_values(self, cost: Callable[[OpConfig], float], resolution: int | None = None) -> dict[str, Any]:
        """The choice values of the point with the least ``sum of cost(op configuration)``. Within
        a template the stages are separable: a stage's growth and depth change its own block and
        the next transition's input only, so each stage takes its cheapest pair with the others at
        the published ones, and the cheaper template wins."""
        res = self.resolution if resolution is None else resolution

        def total(d: HarDNetDef, growth: list[int], layers: list[int]) -> float:
            return sum(cost(c) for c in d.replace_stages(growth=growth, layers=layers).arch(res, self.num_classes)
                       .op_configs())

        best: tuple[float, dict[str, Any]] = (math.inf, {})
        for name, d in TEMPLATES.items():
            base = total(d, list(d.growth), list(d.depths))
            found, values = base, {"template": name}
            for i in range(len(d.stages)):
                options = [(total(d, [*d.growth[:i], g, *d.growth[i + 1:]], [*d.depths[:i], n, *d.depths[i + 1:]]), g, n)
                           for g in self.choice(f"{name}.s{i}.growth").values for n in DEPTHS]
                stage_total, g, n = min(options)
                found += stage_total - base
                values.update({f"{name}.s{i}.growth": g, f"{name}.s{i}.layers": n})
            best = min(best, (found, values), key=lambda b: b[0])
        return best[1]

    def min_cost(self, cost: Callable[[OpConfig], float], resolution: int | None = None, *,
                 core_only: bool = False) -> float:
        """The least total per-op cost of a point (the network of :meth:`cheapest_values`)."""
        values = self.cheapest_values(cost, resolution)
        arch = self._definition(values).arch(self.resolution if resolution is None else resolution, self.num_classes)
        return sum(cost(c) for c in arch.op_configs())

    def skeleton(self) -> list[str]:
        lines = [f"input {self.resolution}x{self.resolution}x3, {self.num_classes} classes"]
        for name, d in TEMPLATES.items():
            stages = ", ".join(f"{s.out_chs}{'/2' if s.downsample else ''}" for s in d.stages)
            lines.append(f"{name}: stem {d.stem_chs} ch, growth multiplier {d.mult}, {d.act}, "
                         f"transitions {stages} ('/2': downsample), head pool + dropout {d.dropout} + linear")
        return lines
