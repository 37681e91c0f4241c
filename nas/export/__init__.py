"""Exporting architectures as PyTorch models: :func:`export` and :func:`load`.

Formats (``nas export --format``):

- ``pt``: one file with the description (JSON text) and the state dict; :func:`load` rebuilds
  the module from it with ``torch.load(weights_only=True)``, so no pickled code runs
  (:mod:`nas.export.pt`).
- ``torchscript``: a scripted module (traced where some op is not scriptable) that runs with
  ``torch.jit.load`` alone (:mod:`nas.export.torchscript`).
- ``onnx``: an ONNX graph with a fixed opset (:mod:`nas.export.onnx`).
- ``py``: a standalone, readable Python file that depends only on torch, plus its weights as a
  ``pt`` file beside it (:mod:`nas.export.pysource`).

Every export is checked by default: the written file is read back (by onnxruntime for ``onnx``,
when installed; in a fresh module for ``py``) and its output compared with the module's in eval
mode. All files are written atomically.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas.arch import Arch
from nas.arch_string import block_to_token
from nas.builder import LiteNet, build_model
from nas.export import onnx as onnx_format
from nas.export import pt as pt_format
from nas.export import pysource
from nas.export import torchscript as ts_format
from nas.export.weights import ExportError, load_weights, read_checkpoint, state_dict_of
from nas.io import atomic_write_text
from nas.onnx_graph import OPSET, check_opset
from nas.version import __version__

__all__ = ["FORMATS", "ExportError", "ExportResult", "export", "load", "load_weights"]

FORMATS = ("pt", "torchscript", "onnx", "py")
CHECK_ATOL = 1e-5
CHECK_RTOL = 1e-4
"""A check fails when ``max |export - module| > CHECK_ATOL + CHECK_RTOL * max |module|``."""

load = pt_format.load

_check_modules = itertools.count()


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote and how it checked it.

    Attributes:
        format: one of :data:`FORMATS`.
        path: the exported file.
        files: every file written (``py``: the source and its weights).
        arch_hash: :meth:`Arch.hash` of the description.
        params: parameter count.
        weights: where the weights came from (a path, ``"model"``, or ``"fresh"``).
        method: ``torchscript``: ``script`` or ``trace``; ``None`` otherwise.
        opset: ``onnx``: the opset; ``None`` otherwise.
        max_abs_diff: largest output difference from the module in eval mode, ``None`` when not
            checked (``check=False``, or ``onnx`` without onnxruntime).
        checked_with: what ran the export for the check (``None`` when not checked).
    """

    format: str
    path: Path
    files: tuple[Path, ...]
    arch_hash: str
    params: int
    weights: str
    method: str | None
    opset: int | None
    max_abs_diff: float | None
    checked_with: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "format": self.format, "path": str(self.path), "files": [str(f) for f in self.files],
            "arch_hash": self.arch_hash, "params": self.params, "weights": self.weights,
            "method": self.method, "opset": self.opset, "max_abs_diff": self.max_abs_diff,
            "checked_with": self.checked_with,
        }


def check_input(arch: Arch, batch: int = 2) -> torch.Tensor:
    """The fixed random input exports are checked on (seeded, so reproducible)."""
    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, arch.in_chans, arch.resolution, arch.resolution, generator=gen)


def _model_with_weights(
    source: Arch | LiteNet, weights: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None
) -> tuple[LiteNet, str]:
    if isinstance(source, LiteNet):
        if weights is not None:
            raise ValueError("pass weights with an Arch; a LiteNet is exported with its own weights")
        if source.num_classes != source.arch.num_classes:
            raise ValueError(f"the model's classifier was reset to {source.num_classes} classes but its "
                             f"description has {source.arch.num_classes}; export the description with "
                             "that many classes and the model's state dict as weights")
        if any(t.device.type != "cpu" for t in source.state_dict().values()):
            raise ValueError("export works on the CPU: pass model.cpu()")
        return source, "model"
    if not isinstance(source, Arch):
        raise ValueError(f"export expects an Arch or a LiteNet, got {type(source).__name__}")
    model = build_model(source)
    if weights is None:
        return model, "fresh"
    if isinstance(weights, Mapping):
        load_weights(model, state_dict_of(weights, "weights"), "weights")
        return model, "state dict"
    load_weights(model, state_dict_of(read_checkpoint(weights), str(weights)), f"{weights}: weights")
    return model, str(weights)


def _py_docstring(model: LiteNet, name: str, weights_file: str) -> str:
    arch = model.arch
    params = sum(p.numel() for p in model.parameters())
    compact = "\n".join("    " + line for line in arch.to_str().splitlines())
    return (
        f"{name}: a {params:,}-parameter network exported by litenas {__version__} "
        "(`nas export --format py`).\n\n"
        "Standalone: needs only torch, so it can be read, edited and kept without litenas.\n"
        f"``load()`` returns the network with the weights saved beside this file ({weights_file}),\n"
        f"``build()`` a freshly initialised one; ``python {name}.py`` runs it once. The classes are\n"
        "copied from litenas' op modules; ``build()`` spells out every layer.\n\n"
        f"Architecture {arch.hash()} (input {arch.in_chans}x{arch.resolution}x{arch.resolution}, "
        f"{arch.num_classes} classes) in litenas' compact form:\n\n{compact}\n"
    )


def _write_py(model: LiteNet, out: Path) -> tuple[Path, Path]:
    if out.suffix != ".py":
        raise ValueError(f"--format py writes a Python file: --out must end in .py, got {out}")
    weights = out.with_suffix(".pt")
    arch = model.arch
    comments = {id(model.stem): f"stem: {block_to_token(arch.stem)}",
                id(model.head): f"head: {block_to_token(arch.head)}"}
    comments.update({id(m): f"block {i}: {block_to_token(b)}"
                     for i, (m, b) in enumerate(zip(model.blocks, arch.blocks, strict=True))})
    source = pysource.generate(
        model, docstring=_py_docstring(model, out.stem, weights.name), weights_file=weights.name,
        input_shape=(arch.in_chans, arch.resolution, arch.resolution),
        omit={LiteNet: frozenset({"arch"})}, comments=comments,
    )
    pt_format.save(model, weights)
    atomic_write_text(out, source)
    return out, weights


def _run_py(path: Path, x: torch.Tensor) -> torch.Tensor:
    """Import the generated file as a fresh module and run its ``load()`` on ``x``."""
    name = f"_litenas_export_check_{next(_check_modules)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        return module.load()(x)
    finally:
        del sys.modules[name]


def export(
    source: Arch | LiteNet,
    fmt: str,
    out: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
    check: bool = True,
    opset: int = OPSET,
) -> ExportResult:
    """Export ``source`` as ``fmt`` (one of :data:`FORMATS`) to ``out``.

    Args:
        source: a description (built with fresh weights, or ``weights``) or a built network.
        fmt: ``pt``, ``torchscript``, ``onnx`` or ``py``.
        out: the file to write (``py``: must end in ``.py``; its weights go beside it as ``.pt``).
        weights: a state dict, or a file holding one (plain, or a litenas ``pt`` file). Weights
            that do not fit raise :class:`ExportError` listing every mismatch.
        check: read the export back and compare its output with the module's (eval mode);
            a difference beyond tolerance raises :class:`ExportError` and removes the files.
        opset: the ONNX opset.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    if Path(out).is_dir():
        raise ValueError(f"out: {out} is a directory; give the path of the file to write")
    if fmt == "onnx":
        check_opset(opset)
    model, weights_from = _model_with_weights(source, weights)
    was_training = model.training
    model.eval()
    try:
        return _export(model, fmt, Path(out), weights_from, check, opset)
    finally:
        model.train(was_training)


def _check_export(model: LiteNet, fmt: str, out: Path, x: torch.Tensor) -> tuple[float, str]:
    """Run the export at ``out`` on ``x`` the way its users will; return the largest difference
    from the module's output and what ran it (:class:`ExportError` when it differs beyond
    tolerance)."""
    runners = {"pt": (lambda: pt_format.load(out)(x), "nas.load"),
               "torchscript": (lambda: ts_format.load(out)(x), "torch.jit.load"),
               "onnx": (lambda: onnx_format.run_onnxruntime(out, x), "onnxruntime"),
               "py": (lambda: _run_py(out, x), "generated load()")}
    run, checked_with = runners[fmt]
    # optimized_execution(False): TorchScript's profiling executor would spend longer
    # specialising the graph than the one run takes; the numerics are the same.
    with torch.no_grad(), torch.jit.optimized_execution(False):
        expected = model(x)
        got = run()
    diff = (got - expected).abs().max().item() if got.shape == expected.shape else float("inf")
    tolerance = CHECK_ATOL + CHECK_RTOL * expected.abs().max().item()
    if not diff <= tolerance:
        raise ExportError(f"the {fmt} export differs from the module (max |diff| {diff:.3g} > "
                          f"{tolerance:.3g}, run by {checked_with}); nothing was kept")
    return diff, checked_with


def _export(model: LiteNet, fmt: str, out: Path, weights_from: str, check: bool, opset: int) -> ExportResult:
    x = check_input(model.arch)
    method = None
    if fmt == "pt":
        files = (pt_format.save(model, out),)
    elif fmt == "torchscript":
        path, method = ts_format.save(model, out, x[:1])
        files = (path,)
    elif fmt == "onnx":
        files = (onnx_format.save(model, out, x[:1], opset),)
    else:
        files = _write_py(model, out)

    diff = checked_with = None
    if check and (fmt != "onnx" or onnx_format.onnxruntime_available()):
        try:
            diff, checked_with = _check_export(model, fmt, out, x)
        except BaseException:
            for f in files:  # an export that cannot be read back, or differs, is not kept
                f.unlink(missing_ok=True)
            raise
    return ExportResult(
        format=fmt, path=out, files=files, arch_hash=model.arch.hash(),
        params=sum(p.numel() for p in model.parameters()), weights=weights_from, method=method,
        opset=opset if fmt == "onnx" else None, max_abs_diff=diff, checked_with=checked_with,
    )
