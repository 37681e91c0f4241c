"""Reading weights and fitting them to a network, with a readable report of what does not fit."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

MODEL_FORMAT = "litenas.model"
"""Format marker of a litenas model file (:mod:`nas.export.pt`)."""
MODEL_VERSION = 1

_LISTED = 8  # mismatched keys named per kind before "... and N more"


class ExportError(ValueError):
    """Weights that do not fit a description, an unreadable file, or an export whose output
    differs from the module's."""


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The dict stored in ``path``, read with ``torch.load(weights_only=True)`` (no pickled code
    runs); errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ExportError(f"{p}: no such file")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds (pickle, zip, unsupported global)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{p}: not a weights file torch.load(weights_only=True) can read ({first})") from None
    if not isinstance(data, dict):
        raise ExportError(f"{p}: expected a state dict, got {type(data).__name__}")
    return data


def state_dict_of(data: Mapping[str, Any], source: str) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: a plain state dict, a litenas model file, or a dict
    with a ``state_dict`` entry. ``source`` names it in errors."""
    state = data.get("state_dict", data)
    if not isinstance(state, Mapping):
        raise ExportError(f"{source}: 'state_dict' is a {type(state).__name__}, not a mapping")
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise ExportError(f"{source}: not a state dict (entry {bad[0]!r} is not a named tensor)")
    return dict(state)


def _listing(kind: str, lines: list[str]) -> list[str]:
    if not lines:
        return []
    shown = [f"  {kind}: {line}" for line in lines[:_LISTED]]
    if len(lines) > _LISTED:
        shown.append(f"  {kind}: ... and {len(lines) - _LISTED} more")
    return shown


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(d) for d in t.shape) + "]"


def load_weights(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "weights", *,
                 skip: str | None = None) -> None:
    """Copy ``state`` into ``model`` (strictly). Weights that do not fit raise :class:`ExportError`
    listing the missing and unexpected keys and the shape mismatches, before anything is copied.

    Keys under the prefix ``skip`` (a classifier that fine-tuning replaces) are neither required
    nor copied: the model keeps its own."""
    own = model.state_dict()
    if skip is not None:
        state = {k: v for k, v in state.items() if not k.startswith(skip)}
        state.update({k: v for k, v in own.items() if k.startswith(skip)})
    missing = [f"{k} {_shape(v)}" for k, v in own.items() if k not in state]
    unexpected = [f"{k} {_shape(v)}" for k, v in state.items() if k not in own]
    shapes = [
        f"{k}: weights {_shape(v)}, model {_shape(own[k])}"
        for k, v in state.items() if k in own and v.shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        counts = f"{len(missing)} missing, {len(unexpected)} unexpected, {len(shapes)} shape mismatches"
        lines = [f"{source} do not fit the description ({counts}):"]
        lines += _listing("missing", missing) + _listing("unexpected", unexpected)
        lines += _listing("shape mismatch", shapes)
        raise ExportError("\n".join(lines))
    model.load_state_dict(state)
