"""A layer-wise litenas search space as an NNI model space, and NNI samples as litenas
architectures (the optional extra ``litenas[nni]``).

NNI (Microsoft's Neural Network Intelligence, 3.0; archived in 2024) describes a space as a
PyTorch ``ModelSpace`` whose mutable parts are labelled choices, explores it with a strategy and
names every explored network by a *sample*, ``{label: chosen value}``. Here:

- :class:`LitenasModelSpace` is ``stem -> one LayerChoice per searched layer -> head`` of a
  space's layer-wise view (:func:`search_spaces.layerwise.layerwise_view`: all of ``fbnet``;
  the layer templates of ``mobile`` with its global and per-stage choices fixed), every candidate
  built through the op registry, as :func:`nas.builder.build_model` builds it. Each choice is
  labelled with the litenas choice name (``s1.l0``) and its values are the candidates' litenas
  labels (``k3_e1``), so an NNI sample reads like a litenas point.
- :func:`arch_from_sample` and :func:`sample_from_arch` convert between NNI samples (a frozen
  sample, or the architecture dict NNI strategies export) and :class:`~nas.arch.Arch`; the round
  trip is lossless and the frozen NNI model is the network ``build_model`` builds.

Importing this module imports NNI; without it the :class:`ImportError` says how to install it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

try:
    from nni.nas.nn.pytorch import LayerChoice, ModelSpace
except ImportError as exc:  # pragma: no cover - exercised only where the extra is missing
    raise ImportError("NNI interoperability needs NNI 3.0: pip install 'litenas[nni]' "
                      f"(importing nni.nas.nn.pytorch failed: {exc})") from exc

from nas.arch import Arch
from nas.builder import build_model, init_weights
from nas.checks import is_int
from search_spaces.layerwise import LayerwiseView, SearchedLayer, layerwise_view
from search_spaces.space import SearchSpace
from search_spaces.spaces import get_space

__all__ = ["LitenasModelSpace", "candidate_key", "indices_from_sample", "arch_from_sample", "sample_from_arch",
           "state_dict_from_frozen", "view_of"]


def candidate_key(label: str) -> str:
    """The submodule name of a candidate: its litenas label with dots (which PyTorch forbids in
    module names) as underscores."""
    return label.replace(".", "_")


def view_of(space: SearchSpace | str, resolution: int | None = None, num_classes: int | None = None) -> LayerwiseView:
    """The layer-wise view of ``space`` (a space, or its name built with ``resolution`` and
    ``num_classes``); ``ValueError`` for a space that has none."""
    if isinstance(space, str):
        options = {k: v for k, v in (("resolution", resolution), ("num_classes", num_classes)) if v is not None}
        space = get_space(space, **options)
    return layerwise_view(space)


class LitenasModelSpace(ModelSpace):
    """The NNI model space of a litenas space's layer-wise view (see the module docstring).

    Args:
        space: a layer-wise litenas space (``fbnet``, ``mobile``), or its name.
        resolution: input size a space given by name is built at (``mobile`` needs one).
        num_classes: classifier outputs of a space given by name.

    Give the space by name where NNI must re-create the model space from its arguments (its
    ``SimplifiedModelSpace`` and remote trials trace them). Weights are initialised as
    :func:`nas.builder.build_model` initialises a network.
    """

    def __init__(self, space: SearchSpace | str, resolution: int | None = None, num_classes: int | None = None):
        super().__init__()
        view = view_of(space, resolution, num_classes)
        self.stem = view.stem.build()
        self.layers = nn.Sequential(*(self._layer_choice(layer) for layer in view.layers))
        self.head = view.head.build()
        init_weights(self)

    @staticmethod
    def _layer_choice(layer: SearchedLayer) -> LayerChoice:
        keys = [candidate_key(label) for label in layer.labels]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{layer.choice}: candidate labels {list(layer.labels)} collide as module names")
        return LayerChoice({k: cfg.build() for k, cfg in zip(keys, layer.configs, strict=True)}, label=layer.choice)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


def _candidate_index(layer: SearchedLayer, value: Any) -> int:
    keys = [candidate_key(label) for label in layer.labels]
    for names in (keys, list(layer.labels)):
        if value in names:
            return names.index(value)
    if is_int(value) and 0 <= value < len(layer):
        return value  # NNI's index form of a choice
    raise ValueError(f"NNI sample: layer {layer.choice!r} has no candidate {value!r} "
                     f"(its candidates: {', '.join(keys)})")


def indices_from_sample(view: LayerwiseView, sample: Mapping[str, Any]) -> list[int]:
    """The candidate index per searched layer of an NNI sample, ``{layer label: candidate}`` with
    one entry per searched layer (candidates by module name, litenas label or index). A missing or
    unknown layer, or an unknown candidate, is a ``ValueError`` naming it."""
    if not isinstance(sample, Mapping):
        raise ValueError(f"NNI sample: expected a mapping of layer labels to candidates, got {type(sample).__name__}")
    labels = [layer.choice for layer in view.layers]
    unknown = sorted(set(sample) - set(labels))
    if unknown:
        raise ValueError(f"NNI sample: unknown layer label(s) {', '.join(map(repr, unknown))} "
                         f"(the space's: {labels[0]} ... {labels[-1]})")
    missing = [label for label in labels if label not in sample]
    if missing:
        raise ValueError(f"NNI sample: no candidate for layer(s) {', '.join(missing)}")
    return [_candidate_index(layer, sample[layer.choice]) for layer in view.layers]


def arch_from_sample(view: LayerwiseView, sample: Mapping[str, Any]) -> Arch:
    """The litenas architecture an NNI sample names (see :func:`indices_from_sample`)."""
    return view.arch(indices_from_sample(view, sample))


def sample_from_arch(view: LayerwiseView, arch: Arch) -> dict[str, str]:
    """The NNI sample of ``arch`` (candidate module names as values); ``ValueError`` when ``arch``
    is not a point of the view."""
    point = view.space.encode(arch)
    indices = []
    for layer in view.layers:
        if point[layer.position] not in layer.options:
            raise ValueError(f"{layer.choice}: the architecture's choice is not one of the view's candidates")
        indices.append(layer.options.index(point[layer.position]))
    if view.point(indices) != tuple(point):
        raise ValueError(f"the architecture is not in the NNI space's part of {view.space.name!r} "
                         f"({view.coverage})")
    return {layer.choice: candidate_key(layer.labels[k]) for layer, k in zip(view.layers, indices, strict=True)}


def state_dict_from_frozen(arch: Arch, frozen: nn.Module) -> dict[str, torch.Tensor]:
    """The weights of a frozen NNI model (``LitenasModelSpace(...).freeze(sample)``, trained or
    not) as a state dict of ``build_model(arch)``, so a network trained in NNI exports with
    litenas (``nas.export.export(arch, fmt, out, weights=...)``).

    Both hold the same tensors in the same order (stem, the chosen candidate of every layer,
    head); a frozen model of another architecture is a ``ValueError`` naming the first tensor
    that does not fit.
    """
    target = build_model(arch).state_dict()
    source = list(frozen.state_dict().items())
    if len(source) != len(target):
        raise ValueError(f"the frozen NNI model holds {len(source)} tensors, the architecture {len(target)}: "
                         "it is not this architecture's network")
    out = {}
    for (key, ref), (src_key, value) in zip(target.items(), source, strict=True):
        if ref.shape != value.shape:
            raise ValueError(f"the frozen NNI model's {src_key} {tuple(value.shape)} does not fit the "
                             f"architecture's {key} {tuple(ref.shape)}")
        out[key] = value.detach().clone()
    return out
