"""The one ONNX writer of litenas: a network as an ONNX graph with a fixed opset and a dynamic
batch axis (input ``input``, output ``output``), written by PyTorch's TorchScript-based exporter
(``dynamo=False``: deterministic, fast, and needs no extra package).

``nas export --format onnx`` (:mod:`nas.export.onnx`) writes these bytes to a file, and the
ONNX Runtime latency harness (:mod:`latency_tables.measure`, ``--backend onnxruntime``) measures
the very same graph, so an ONNX Runtime latency table predicts what ``nas export`` ships. It sits
at the bottom of the package graph (torch only) so that both can use it.
"""

from __future__ import annotations

import inspect
import io
import warnings

import torch
from torch import nn

from nas.checks import is_int

__all__ = ["OPSET", "MIN_OPSET", "MAX_OPSET", "check_opset", "onnx_bytes"]

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


def onnx_bytes(module: nn.Module, example: torch.Tensor, opset: int = OPSET) -> bytes:
    """``module`` (as it is: put it in eval mode first) as an ONNX model, traced on ``example``."""
    check_opset(opset)
    kwargs = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # PyTorch >= 2.9 flags the TorchScript-based exporter as legacy; it is the one we want.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module, (example,), buf, opset_version=opset, input_names=["input"], output_names=["output"],
            dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, **kwargs,
        )
    return buf.getvalue()
