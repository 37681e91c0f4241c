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

The view decodes its candidates through the space itself (so every block is built by the same
op registry) and checks that each layer's shapes do not depend on the choices: a view that is
not shape-fixed is a ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nas.arch import Arch, Block
from search_spaces.fbnet import FBNetSpace
from search_spaces.mobile import MobileSpace
from search_spaces.registry import OpConfig
from search_spaces.space import Choice, Point, SearchSpace

__all__ = ["SearchedLayer", "LayerwiseView", "ViewSpace", "layerwise_view", "supported_spaces"]


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
    searched ones. ``coverage`` says in one line which part of the space the view spans.
    """

    space: SearchSpace
    base: Point
    layers: tuple[SearchedLayer, ...]
    stem: OpConfig
    head: OpConfig
    coverage: str

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
                coverage: str) -> LayerwiseView:
    """Decode the candidates of every layer at once, ``max(len(options))`` architectures in all
    (layer ``l`` takes option ``k mod n_l`` in the ``k``-th), and check the shapes are fixed."""
    where = _positions(space)
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
    return LayerwiseView(space, tuple(base), tuple(layers), stem, head, coverage)  # type: ignore[arg-type]


def _positions(space: SearchSpace) -> dict[str, int]:
    return {c.name: i for i, c in enumerate(space.choices)}


def _fbnet_view(space: FBNetSpace) -> LayerwiseView:
    choices = [c.name for c in space.choices]
    return _build_view(space, (0,) * len(choices), choices, [space.choice(c).core for c in choices],
                       f"the whole fbnet space: {len(choices)} layers x 9 candidates")


def _index_of(space: SearchSpace, name: str, value: object) -> int:
    c = space.choice(name)
    if value not in c.values:
        raise ValueError(f"{space.name}: {c.where} has no value {value!r}, which the supernet fixes")
    return c.values.index(value)


def _mobile_view(space: MobileSpace) -> LayerwiseView:
    if len(space.choice("resolution").values) != 1:
        raise ValueError("mobile: a supernet needs one input size; build the space with resolution=N "
                         "(a search does so with the latency table's or --resolution)")
    fixed = {
        "resolution": 0,
        "width": _index_of(space, "width", 1.0),
        "stem": space.choice("stem").core[0],
        "stem_width": space.choice("stem_width").core[0],
        "stem_act": space.choice("stem_act").core[0],
        "head": space.choice("head").core[0],
    }
    where = _positions(space)
    searched: list[str] = []
    for k in range(len(space.stages)):
        depth = space.choice(f"s{k}.depth")
        d = max(depth.core, key=lambda i: depth.values[i])
        fixed[depth.name] = d
        for name in (f"s{k}.stride", f"s{k}.width", f"s{k}.downsample"):
            if name in where:
                fixed[name] = space.choice(name).core[0]
        searched += [f"s{k}.l{j}" for j in range(depth.values[d])]
    base = [0] * len(space.choices)
    for name, value in fixed.items():
        base[where[name]] = value
    options = [space.choice(c).core for c in searched]
    coverage = (f"mobile at {space.choice('resolution').values[0]}px, width 1.0, "
                f"{space.choice('stem').labels[fixed['stem']]} stem, deepest core depth "
                f"per stage, standard downsampling, head {space.choice('head').labels[fixed['head']]}: "
                f"{len(searched)} layers x {min(map(len, options))}-{max(map(len, options))} core templates")
    return _build_view(space, tuple(base), searched, options, coverage)


_VIEWS: dict[type[SearchSpace], Callable[..., LayerwiseView]] = {
    FBNetSpace: _fbnet_view,
    MobileSpace: _mobile_view,
}


def supported_spaces() -> list[str]:
    """Names of the spaces a supernet can be built from."""
    return [cls.name for cls in _VIEWS]


def layerwise_view(space: SearchSpace) -> LayerwiseView:
    """The supernet's view of ``space`` (see the module docstring); ``ValueError`` for a space
    without a layer-wise view."""
    make = _VIEWS.get(type(space))
    if make is None:
        raise ValueError(f"a supernet needs a layer-wise space ({', '.join(supported_spaces())}); "
                         f"got {space.name!r}")
    return make(space)


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

    def skeleton(self) -> list[str]:
        return [f"stem {self.view.stem.key()}", *(f"{layer.choice}: {len(layer)} candidates, "
                                                   f"{layer.in_chs}x{layer.in_size} -> {layer.out_chs}x{layer.out_size}"
                                                   for layer in self.view.layers), f"head {self.view.head.key()}"]
