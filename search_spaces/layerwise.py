"""The layer-wise part of a search space that a supernet can hold: a fixed stem and head, and a
chain of searched layers, each an independent categorical choice whose candidates all take the
same input shape and give the same output shape (FBNet's formulation, Wu et al., CVPR 2019,
``a = {a_l}``, one candidate block per layer).

:func:`layerwise_view` makes one for a space:

- ``fbnet``: the whole space. Every one of the 22 layers is a choice among the 9 candidates; the
  stem, head and shapes are fixed by the space.
- ``mobile``: the sub-space where every global and per-stage choice is fixed and only the layer
  templates are searched. Fixed: the input resolution (the space must be built with one, as a
  search does), width multiplier 1.0, the first core stem (the ``conv`` 3x3 stride 2; below 64
  pixels the stride-1 ``conv_s1`` of the CIFAR layout) with the base stem width and the first core
  stem activation (ReLU), every stage at its deepest core depth (1 for the first and last stage,
  4 otherwise) with its core stride and base width, ``standard``
  downsampling, and the first core head (1x1 conv to 1280, pool, dropout 0.2, linear). Searched:
  each layer slot over its core templates (MBConv kernels/expansions/SE/activations, Ghost,
  ShuffleNetV2 where it fits, and ``skip``, which in a later layer of a stage is the identity, so
  a shallower stage is reached through it). Extra (encoding-only) values, other widths,
  resolutions, stems, heads and padding-free downsampling stay with the other strategies.

Each space declares its part (:meth:`~search_spaces.space.SearchSpace.layerwise_part`); this
module knows no space by name. The view decodes its candidates through the space itself (so every
block is built by the same op registry) and checks that each layer's shapes do not depend on the
choices: a view that is not shape-fixed is a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nas.arch import Arch, Block
from search_spaces.registry import OpConfig
from search_spaces.space import Choice, LayerwisePart, Point, SearchSpace

__all__ = ["SearchedLayer", "LayerwiseView", "ViewSpace", "layerwise_view"]


@dataclass(frozen=True)
class SearchedLayer:
    """One searched layer: the space choice it decides (and its position in a point), the choice
    indices offered (in candidate order), their labels, blocks and op configurations at the
    layer's input shape, and the shapes."""

    choice: str
    position: int
    options: tuple[int, ...]
    labels: tuple[str, ...]
    blocks: tuple[Block, ...]
    configs: tuple[OpConfig, ...]
    in_chs: int
    in_size: int
    out_chs: int
    out_size: int

    def __len__(self) -> int:
        return len(self.options)


@dataclass(frozen=True)
class LayerwiseView:
    """A space seen as ``stem -> searched layers -> head`` (see the module docstring).

    ``base`` is a point of ``space`` that holds every fixed choice; :meth:`point` sets the
    searched ones. ``coverage`` says in one line which part of the space the view spans, ``whole``
    whether that part is the whole space.
    """

    space: SearchSpace
    base: Point
    layers: tuple[SearchedLayer, ...]
    stem: OpConfig
    head: OpConfig
    coverage: str
    whole: bool = False

    def min_cost(self, cost: Callable[[OpConfig], float]) -> float:
        """The least ``sum of cost(op configuration)`` of a network of the view: stem, head and
        every layer at its cheapest candidate (layers do not constrain each other's shapes)."""
        return cost(self.stem) + cost(self.head) + sum(min(cost(c) for c in layer.configs) for layer in self.layers)

    def point(self, indices: Sequence[int]) -> Point:
        """The space point whose layer ``l`` takes candidate ``indices[l]``."""
        if len(indices) != len(self.layers):
            raise ValueError(f"expected {len(self.layers)} candidate indices (one per layer), got {len(indices)}")
        point = list(self.base)
        for layer, k in zip(self.layers, indices, strict=True):
            if isinstance(k, bool) or not 0 <= int(k) < len(layer):
                raise ValueError(f"{layer.choice}: candidate index {k!r} is out of range 0..{len(layer) - 1}")
            point[layer.position] = layer.options[int(k)]
        return tuple(point)

    def arch(self, indices: Sequence[int]) -> Arch:
        """The architecture whose layer ``l`` takes candidate ``indices[l]``."""
        return self.space.decode(self.point(indices))

    def indices(self, arch: Arch) -> tuple[int, ...]:
        """The candidate index of every layer of ``arch``; ``ValueError`` naming the first choice
        where ``arch`` leaves the view (a depth, width or stem the supernet fixes otherwise)."""
        point = self.space.encode(arch)
        searched = {layer.position for layer in self.layers}
        for i, (got, want) in enumerate(zip(point, self.base, strict=True)):
            if i not in searched and got != want and self.space.active(point)[i]:
                c = self.space.choices[i]
                raise ValueError(f"{self.space.name}: {c.where} is {c.labels[got]!r}, the supernet fixes "
                                 f"{c.labels[want]!r} ({self.coverage})")
        out = []
        for layer in self.layers:
            if point[layer.position] not in layer.options:
                label = self.space.choices[layer.position].labels[point[layer.position]]
                raise ValueError(f"{self.space.name}: {layer.choice} is {label!r}, not one of the supernet's "
                                 f"candidates ({', '.join(layer.labels)})")
            out.append(layer.options.index(point[layer.position]))
        return tuple(out)


def _build_view(space: SearchSpace, base: Point, choices: Sequence[str], options: Sequence[Sequence[int]],
                coverage: str, whole: bool) -> LayerwiseView:
    """Decode the candidates of every layer at once, ``max(len(options))`` architectures in all
    (layer ``l`` takes option ``k mod n_l`` in the ``k``-th), and check the shapes are fixed."""
    where = {c.name: i for i, c in enumerate(space.choices)}
    positions = [where[c] for c in choices]
    width = max(len(o) for o in options)
    blocks: list[list[Block | None]] = [[None] * len(o) for o in options]
    shapes: list[tuple[int, int, int, int] | None] = [None] * len(choices)
    stem = head = None
    for k in range(width):
        point = list(base)
        for pos, opts in zip(positions, options, strict=True):
            point[pos] = opts[k % len(opts)]
        arch = space.decode(point)
        if len(arch.blocks) != len(choices):
            raise ValueError(f"{space.name}: the view's networks have {len(arch.blocks)} blocks, "
                             f"{len(choices)} searched layers (every block must be searched)")
        stem_info, *body, head_info = arch.layers()
        configs = arch.op_configs()
        if stem is None:
            stem, head = configs[0], configs[-1]
        elif (configs[0], configs[-1]) != (stem, head):
            raise ValueError(f"{space.name}: the stem or head changes with the searched choices")
        for i, (info, opts) in enumerate(zip(body, options, strict=True)):
            shape = (info.in_chs, info.in_size, info.out_chs, info.out_size)
            if shapes[i] is None:
                shapes[i] = shape
            elif shapes[i] != shape:
                raise ValueError(f"{space.name}: {choices[i]}: the layer's shapes depend on the choices "
                                 f"({shapes[i]} vs {shape}); a supernet needs fixed shapes")
            blocks[i][k % len(opts)] = info.block
    layers = []
    for name, opts, bl, shape in zip(choices, options, blocks, shapes, strict=True):
        in_chs, in_size, out_chs, out_size = shape  # type: ignore[misc]
        labels = space.choice(name).labels
        layers.append(SearchedLayer(
            name, where[name], tuple(opts), tuple(labels[o] for o in opts), tuple(bl),  # type: ignore[arg-type]
            tuple(OpConfig(b.op, b.args, in_chs, in_size) for b in bl),  # type: ignore[union-attr]
            in_chs, in_size, out_chs, out_size,
        ))
    return LayerwiseView(space, tuple(base), tuple(layers), stem, head, coverage, whole)  # type: ignore[arg-type]


def layerwise_view(space: SearchSpace) -> LayerwiseView:
    """The supernet's view of ``space``: the layer-wise part the space declares
    (:meth:`~search_spaces.space.SearchSpace.layerwise_part`); ``ValueError`` for a space without
    one."""
    part = space.layerwise_part()
    if part is None:
        raise ValueError(f"a supernet needs a layer-wise space (fbnet, mobile); {space.name!r} has no "
                         "layer-wise part")
    return _build_view(space, part.base, part.searched, part.options, part.coverage, part.whole)


class ViewSpace(SearchSpace):
    """The part of a space that a supernet holds, as a search space of its own: one choice per
    searched layer (the parent's name and labels, its core candidates), everything else fixed at
    the view's base. A search scored by a supernet proposes exactly the networks it can score."""

    def __init__(self, view: LayerwiseView):
        self.view = view
        self.name = f"{view.space.name}-supernet"
        self.summary = f"the supernet's part of {view.space.name}: {view.coverage}"
        self.paper = view.space.paper
        super().__init__([Choice(layer.choice, tuple(layer.options), labels=layer.labels,
                                 doc=view.space.choice(layer.choice).doc) for layer in view.layers])

    def _decode(self, values: Mapping[str, Any]) -> Arch:
        point = list(self.view.base)
        for layer in self.view.layers:
            point[layer.position] = values[layer.choice]
        return self.view.space.decode(point)

    def _encode(self, arch: Arch) -> Mapping[str, int]:
        return {layer.choice: k for layer, k in zip(self.view.layers, self.view.indices(arch), strict=True)}

    def op_configs(self, resolution: int | None = None, *, core_only: bool = False) -> list[OpConfig]:
        configs = {self.view.stem, self.view.head, *(c for layer in self.view.layers for c in layer.configs)}
        return sorted(configs, key=lambda c: c.key())

    def min_cost(self, cost: Callable[[OpConfig], float], resolution: int | None = None, *,
                 core_only: bool = False) -> float:
        """The least total per-op cost of a point (:meth:`LayerwiseView.min_cost`)."""
        return self.view.min_cost(cost)

    def layerwise_part(self) -> LayerwisePart:
        """All of it (its choices are the view's layers): bounds over it bound every point."""
        names = tuple(c.name for c in self.choices)
        return LayerwisePart((0,) * len(names), names, tuple(tuple(self.choice(c).core) for c in names),
                             f"the supernet's part of {self.view.space.name}: {self.view.coverage}", whole=True)

    def skeleton(self) -> list[str]:
        return [f"stem {self.view.stem.key()}", *(f"{layer.choice}: {len(layer)} candidates, "
                                                   f"{layer.in_chs}x{layer.in_size} -> {layer.out_chs}x{layer.out_size}"
                                                   for layer in self.view.layers), f"head {self.view.head.key()}"]
