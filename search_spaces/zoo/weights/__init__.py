"""Pretrained weights for the fixed points: import a reference library's state dict, exactly.

:func:`import_weights` maps a ``torchvision``, ``timm`` or ``pytorchcv`` state dict of a zoo
network onto ours; :func:`export_weights` goes back, so a network trained here loads into the
reference library. The mapping follows names and structure (stem, stage/block, the role of each
part), converts the layouts that differ (grouped 1x1 conv vs. one conv per group, linear vs.
1x1 conv, branch order) and refuses, naming the file and the first unmapped, missing and
mis-shaped keys, when anything does not fit; the per-library layouts are ``_timm``,
``_torchvision`` and ``_pytorchcv``, the mechanics ``_plan``.

Files are read with ``torch.load(weights_only=True)`` (no pickled code runs), ``.safetensors``
files with the ``safetensors`` package.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file as load_safetensors

from nas.builder import build_model
from nas.checks import is_int
from search_spaces import zoo
from search_spaces.zoo.weights import _pytorchcv, _timm, _torchvision
from search_spaces.zoo.weights._plan import Link, combine, links, to_reference
from search_spaces.zoo.weights.fill import fill_reference_tensor

__all__ = ["SOURCES", "export_weights", "fill_reference_tensor", "import_weights", "read_state_dict",
           "reference_model"]

_LAYOUTS = {"torchvision": _torchvision.LAYOUTS, "timm": _timm.LAYOUTS, "pytorchcv": _pytorchcv.LAYOUTS}
SOURCES = tuple(_LAYOUTS)
"""Reference libraries whose state dicts map onto the zoo."""

_REFERENCE_PREFIX = {"torchvision.models": "torchvision", "timm": "timm", "pytorchcv": "pytorchcv"}
_SHOWN = 4  # keys listed per kind in an error
_CLASSIFIER = "head.classifier."


def reference_model(name: str) -> tuple[str, str]:
    """``(source, model name)`` of the library implementation a zoo entry reproduces
    (``("timm", "mixnet_s")``); ``ValueError`` for entries whose reference is not a library."""
    lib, _, model = zoo.entry(name).reference.partition(" :: ")
    source = _REFERENCE_PREFIX.get(lib.split(" (")[0])
    if source is None or not model:
        raise ValueError(f"zoo entry {name!r}: its reference ({zoo.entry(name).reference}) is not one of "
                         f"{', '.join(SOURCES)}")
    return source, model.split()[0]


def _plan(name: str, source: str, num_classes: int | None) -> tuple[list[Link], dict[str, torch.Tensor]]:
    """The per-tensor links between our state dict and ``source``'s, and our state dict (for its
    shapes and dtypes), for zoo entry ``name`` with ``num_classes`` classes (``None``: its own)."""
    if source not in _LAYOUTS:
        raise ValueError(f"unknown weights source {source!r}; known: {', '.join(SOURCES)}")
    arch = zoo.get(name)
    if num_classes is not None and num_classes != arch.num_classes:
        if not is_int(num_classes) or num_classes < 1:
            raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
        arch = arch.replace(num_classes=num_classes)
    family = zoo.reference(name)["family"]
    layout = _LAYOUTS[source].get(family)
    if layout is None:
        raise ValueError(f"{name}: no {source} layout for the {family} family; {source} covers "
                         f"{', '.join(sorted(_LAYOUTS[source]))}")
    model = build_model(arch)
    return links(model, layout(arch)), model.state_dict()


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(d) for d in t.shape) + "]"


def _some(kind: str, items: list[str]) -> str:
    more = f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return f"{len(items)} {kind}: {', '.join(items[:_SHOWN])}{more}"


def _class_count_problem(name: str, where: str, bad: list[str], given: Mapping[str, torch.Tensor],
                         plan: list[Link], own: Mapping[str, torch.Tensor]) -> str | None:
    """The message for a checkpoint that differs from ours only in its class count."""
    heads = [link for link in plan if link.ours.startswith(_CLASSIFIER)]
    if not heads or set(bad) != {link.ours for link in heads}:
        return None
    weight = next(link for link in heads if link.ours.endswith("weight"))
    ref = given[weight.refs[0]]
    if ref.dim() != 2 or ref.shape[1] != own[weight.ours].shape[1]:
        return None
    n = ref.shape[0]
    return (f"{where}: a {n}-class classifier, {name} has {own[weight.ours].shape[0]} classes: import with "
            f"num_classes={n} (nas zoo import-weights {name} --num-classes {n} ...)")


def _convert(name: str, source: str, where: str, given: Mapping[str, torch.Tensor],
             plan: list[Link], own: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our state dict from ``given`` along ``plan``, checked in full before anything is returned:
    a one-line ``ValueError`` lists unmapped, missing and mis-shaped keys (or, where only the
    classifier differs, offers ``num_classes``)."""
    expected = [r for link in plan for r in link.refs]
    known = set(expected)
    unmapped = [k for k in given if k not in known]
    missing = [k for k in expected if k not in given]
    out: dict[str, torch.Tensor] = {}
    misshaped: list[str] = []
    for link in plan:
        if any(r not in given for r in link.refs):
            continue
        parts = [given[r] for r in link.refs]
        try:
            tensor = combine(link, parts)
        except RuntimeError:
            tensor = None
        if tensor is None or tensor.shape != own[link.ours].shape:
            misshaped.append(link.ours)
            continue
        out[link.ours] = tensor.detach().to(dtype=own[link.ours].dtype, device="cpu").clone()
    if not unmapped and not missing and misshaped:
        problem = _class_count_problem(name, where, misshaped, given, plan, own)
        if problem:
            raise ValueError(problem)
    if unmapped or missing or misshaped:
        refs_of = {link.ours: link for link in plan}
        shaped = [
            f"{'+'.join(refs_of[k].refs)} {'+'.join(_shape(given[r]) for r in refs_of[k].refs)} (expected {_shape(own[k])})"
            for k in misshaped
        ]
        found = "; ".join(_some(kind, items) for kind, items in
                          (("unmapped", unmapped), ("missing", missing), ("mis-shaped", shaped)) if items)
        raise ValueError(f"{where}: not {source} weights of {name}: {found}")
    return out


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict in ``path``: a ``torch.save`` file read with ``weights_only=True`` (a plain
    state dict, or a dict holding one under ``state_dict`` or ``model``), or a ``.safetensors``
    file. Every problem is a one-line ``ValueError`` naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such file")
    if p.suffix == ".safetensors":
        try:
            data: Any = load_safetensors(str(p))
        except Exception as exc:  # safetensors raises its own error types
            raise ValueError(f"{p}: not a readable safetensors file ({_first_line(exc)})") from None
    else:
        try:
            data = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many kinds (pickle, zip, unsupported global)
            raise ValueError(f"{p}: not a state dict torch.load(weights_only=True) can read "
                             f"({_first_line(exc)})") from None
    return _state_of(data, str(p))


def _first_line(exc: Exception) -> str:
    """The informative line of a loader's error (torch puts the unpickler's complaint last)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error" in line or "Unsupported" in line:
            return line
    return lines[0] if lines else type(exc).__name__


def _state_of(data: Any, where: str) -> dict[str, torch.Tensor]:
    if isinstance(data, Mapping):
        for wrapper in ("state_dict", "model"):
            if isinstance(data.get(wrapper), Mapping):
                data = data[wrapper]
                break
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: not a state dict (a {type(data).__name__})")
    for k, v in data.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise ValueError(f"{where}: not a state dict (entry {k!r} is a {type(v).__name__}, not a tensor)")
    if not data:
        raise ValueError(f"{where}: an empty state dict")
    return dict(data)


def import_weights(name: str, source: str, state_dict_or_path: Mapping[str, torch.Tensor] | str | os.PathLike[str],
                   *, num_classes: int | None = None) -> dict[str, torch.Tensor]:
    """Our state dict for zoo entry ``name`` from a ``source`` library's state dict (or file).

    ``num_classes``: the class count of the checkpoint's classifier when it is not the entry's
    (a fine-tuned model); our description then gets that many classes. Raises ``ValueError``
    (one line, naming the file) when the keys or shapes do not fit.
    """
    if isinstance(state_dict_or_path, Mapping):
        where, given = f"{source} state dict", _state_of(state_dict_or_path, f"{source} state dict")
    else:
        where, given = str(state_dict_or_path), read_state_dict(state_dict_or_path)
    plan, own = _plan(name, source, num_classes)
    return _convert(name, source, where, given, plan, own)


def export_weights(name: str, source: str, our_state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``source`` library's state dict of zoo entry ``name`` holding our weights.

    The class count is read from our classifier. Raises ``ValueError`` when ``our_state_dict``
    does not fit the entry's description.
    """
    state = _state_of(our_state_dict, "our state dict")
    weight = state.get(f"{_CLASSIFIER}weight")
    plan, own = _plan(name, source, None if weight is None else int(weight.shape[0]))
    missing = [k for k in own if k not in state]
    unknown = [k for k in state if k not in own]
    shaped = [f"{k} {_shape(state[k])} (expected {_shape(own[k])})"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unknown or shaped:
        found = "; ".join(_some(kind, items) for kind, items in
                          (("unknown", unknown), ("missing", missing), ("mis-shaped", shaped)) if items)
        raise ValueError(f"our state dict does not fit {name}: {found}")
    return to_reference(plan, state)
