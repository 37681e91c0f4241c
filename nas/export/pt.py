"""The ``pt`` format: one file holding the description (as JSON text) and the state dict.

The file is a plain dict of strings, integers and tensors, so :func:`load` reads it with
``torch.load(weights_only=True)``: no pickled code runs, and the module is rebuilt from the
description through the op registry.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from nas.arch import Arch, ArchError
from nas.builder import LiteNet, build_model
from nas.export.weights import (
    MODEL_FORMAT,
    MODEL_VERSION,
    ExportError,
    load_weights,
    read_checkpoint,
    state_dict_of,
)
from nas.io import atomic_path
from nas.version import __version__


def save(model: LiteNet, out: str | os.PathLike[str]) -> Path:
    """Write ``model``'s description and weights to ``out`` atomically."""
    data = {
        "format": MODEL_FORMAT,
        "version": MODEL_VERSION,
        "litenas_version": __version__,
        "arch": model.arch.to_json(indent=None),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_path(out) as tmp:
        torch.save(data, tmp)
    return Path(out)


def load(path: str | os.PathLike[str]) -> LiteNet:
    """Rebuild the network saved in a litenas model file, with its weights, in eval mode."""
    data = read_checkpoint(path)
    if data.get("format") != MODEL_FORMAT:
        raise ExportError(f"{path}: not a litenas model file (no {MODEL_FORMAT!r} marker); a plain state "
                          f"dict needs its description: nas export ARCH.json --weights {path} ...")
    if data.get("version") != MODEL_VERSION:
        raise ExportError(f"{path}: unsupported model file version {data.get('version')!r} "
                          f"(this litenas reads {MODEL_VERSION})")
    text = data.get("arch")
    if not isinstance(text, str):
        raise ExportError(f"{path}: the 'arch' entry is missing or not JSON text")
    try:
        arch = Arch.from_json(text)
    except ArchError as exc:
        raise ExportError(f"{path}: {exc}") from None
    model = build_model(arch)
    load_weights(model, state_dict_of(data, str(path)), f"{path}: weights")
    return model.eval()
