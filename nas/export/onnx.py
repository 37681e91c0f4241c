"""The ``onnx`` format: the network as an ONNX graph with a fixed opset and a dynamic batch axis
(input ``input``, output ``output``), written by :func:`nas.onnx_graph.onnx_bytes`, the same
writer the ONNX Runtime latency harness measures.

:func:`run_onnxruntime` evaluates the file when onnxruntime is installed (``pip install
litenas[export]``); :func:`nas.export.export` uses it to check the export against PyTorch.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

from nas.builder import LiteNet
from nas.io import atomic_path
from nas.onnx_graph import OPSET, onnx_bytes


def save(model: LiteNet, out: str | os.PathLike[str], example: torch.Tensor, opset: int = OPSET) -> Path:
    """Write ``model`` (in eval mode) as ONNX to ``out`` atomically, traced on ``example``
    (:func:`nas.onnx_graph.onnx_bytes`, the graph the ONNX Runtime latency harness measures)."""
    data = onnx_bytes(model.eval(), example, opset)
    with atomic_path(out) as tmp:
        tmp.write_bytes(data)
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
