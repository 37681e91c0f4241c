"""The ``torchscript`` format: a scripted module (traced where scripting fails) that runs with
``torch.jit.load`` alone, without litenas installed. The description travels inside the archive
as the extra file ``litenas_arch.json``, the backbone's ``feature_info`` (which TorchScript cannot
hold as an attribute: its dicts mix ints and strings) as ``litenas_feature_info.json``; a scripted
module keeps ``forward_intermediates``, a traced one (the fall-back) has ``forward`` only.

PyTorch >= 2.10 marks TorchScript as deprecated (in favour of ``torch.export``); it still is the
format that C++ (libtorch) and mobile runtimes load, so the warnings are silenced here.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from nas.builder import LiteNet
from nas.io import atomic_path

ARCH_FILE = "litenas_arch.json"
FEATURE_INFO_FILE = "litenas_feature_info.json"
logger = logging.getLogger(__name__)


def to_torchscript(model: LiteNet, example: torch.Tensor) -> tuple[torch.jit.ScriptModule, str]:
    """``(module, method)``: ``model`` scripted (``method == "script"``) or, where some op is not
    scriptable, traced on ``example`` (``"trace"``, with a warning naming the reason)."""
    model = model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return torch.jit.script(model), "script"
        except Exception as exc:  # TorchScript raises several kinds for unsupported Python
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            logger.warning("scripting failed (%s); tracing instead: the graph is fixed to this "
                           "input's control flow", reason)
        with torch.no_grad(), _forward_only(model):
            return torch.jit.trace(model, example), "trace"


@contextlib.contextmanager
def _forward_only(model: LiteNet) -> Iterator[None]:
    """Hide ``forward_intermediates`` (marked ``@torch.jit.export``) while tracing: ``torch.jit.trace``
    scripts a module's exported methods, which would fail on the op that made scripting fail. A
    traced network has ``forward`` only."""
    model.__dict__["forward_intermediates"] = functools.partial(LiteNet.forward_intermediates, model)
    try:
        yield
    finally:
        del model.__dict__["forward_intermediates"]


def save(model: LiteNet, out: str | os.PathLike[str], example: torch.Tensor) -> tuple[Path, str]:
    """Write ``model`` as TorchScript to ``out`` atomically; returns the path and the method
    (``script`` or ``trace``)."""
    module, method = to_torchscript(model, example)
    with atomic_path(out) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(module, str(tmp), _extra_files={ARCH_FILE: model.arch.to_json(indent=None),
                                                       FEATURE_INFO_FILE: json.dumps(model.feature_info)})
    return Path(out), method


def load(path: str | os.PathLike[str]) -> torch.jit.ScriptModule:
    """``torch.jit.load`` on the CPU, without the deprecation warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu")
