"""The ``onnx`` format: the network as an ONNX graph with a fixed opset and a dynamic batch axis
(input ``input``, output ``output``), written by PyTorch's TorchScript-based exporter
(``dynamo=False``: deterministic, fast, and needs no extra package).

:func:`run_onnxruntime` evaluates the file when onnxruntime is installed (``pip install
litenas[export]``); :func:`nas.export.export` uses it to check the export against PyTorch.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import warnings
from pathlib import Path

import torch

from nas.builder import LiteNet
from nas.checks import is_int
from nas.io import atomic_path

OPSET = 17
"""Default ONNX opset: supported by every onnxruntime since 1.14 and by PyTorch >= 1.13."""
MIN_OPSET = 9
"""Lowest opset written: the TorchScript-based exporter's base opset (below it, ops such as
BatchNormalization have older forms onnxruntime rejects)."""
MAX_OPSET = 20
"""Highest opset the TorchScript-based exporter writes."""


def check_opset(opset: int) -> None:
    """``ValueError`` unless ``opset`` is an integer in ``MIN_OPSET..MAX_OPSET``."""
    if not is_int(opset) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset: expected an integer from {MIN_OPSET} to {MAX_OPSET} (default {OPSET}), got {opset!r}")


def save(model: LiteNet, out: str | os.PathLike[str], example: torch.Tensor, opset: int = OPSET) -> Path:
    """Write ``model`` (in eval mode) as ONNX to ``out`` atomically, traced on ``example``."""
    check_opset(opset)
    kwargs = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with atomic_path(out) as tmp, warnings.catch_warnings():
        # PyTorch >= 2.9 flags the TorchScript-based exporter as legacy; it is the one we want.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model.eval(), (example,), str(tmp), opset_version=opset,
            input_names=["input"], output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, **kwargs,
        )
    return Path(out)


def onnxruntime_available() -> bool:
    """Whether onnxruntime can be imported (it is an optional dependency)."""
    return importlib.util.find_spec("onnxruntime") is not None


def run_onnxruntime(path: str | os.PathLike[str], x: torch.Tensor) -> torch.Tensor:
    """The output of the ONNX file ``path`` on ``x``, computed by onnxruntime on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": x.detach().cpu().numpy()})
    return torch.from_numpy(out)
