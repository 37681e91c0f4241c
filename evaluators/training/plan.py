"""How a training run executes on its device: precision, memory format, compilation, threads.

:func:`plan_for` resolves the user's choices (``auto`` by default) into an :class:`ExecutionPlan`
by rules on the device's capabilities, so the choice is deterministic (never a timing race that
could differ between a run and its resumption):

- CUDA: automatic mixed precision (bf16 where the GPU supports it, else fp16 with a gradient
  scaler) and ``channels_last`` (Tensor-Core convolutions want NHWC).
- CPU: fp32 and ``channels_last``. oneDNN's NHWC convolutions train the CIFAR fixed points 2-7x
  faster than NCHW on this project's 2-core EPYC; bf16 autocast, even on this CPU with native
  AVX512-BF16, is slower than fp32 ``channels_last`` (``docs/bench_train.md``), so it is an
  explicit choice (``precision="bf16"``), never the automatic one.
- MPS: fp32, contiguous (autocast support there is partial).
- ``torch.compile`` only when asked: on a 2-core CPU its compile time (minutes) does not pay for
  itself within the runs this project makes (``docs/bench_train.md``).

``precision="fp32"`` forces full precision and ``memory_format="contiguous"`` plain NCHW.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from evaluators.runtime import check_threads, resolve_device

__all__ = ["PRECISIONS", "MEMORY_FORMATS", "ExecutionPlan", "plan_for"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class ExecutionPlan:
    """A resolved execution: the device, the autocast dtype (``None``: fp32), whether tensors are
    ``channels_last``, whether the model is compiled, whether a gradient scaler is used (fp16),
    and torch's CPU thread count (``None``: unchanged)."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    compile: bool = False
    threads: int | None = None

    @property
    def precision(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]

    @property
    def grad_scaler(self) -> bool:
        return self.amp_dtype == torch.float16

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self) -> torch.autocast:
        """The autocast context of this plan (disabled for fp32)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)

    def describe(self) -> dict[str, Any]:
        """JSON-ready: what changes the numbers (device type, precision, memory format, compile)."""
        return {"device": self.device.type, "precision": self.precision,
                "memory_format": "channels_last" if self.channels_last else "contiguous", "compile": self.compile}


def plan_for(device: str | torch.device = "cpu", *, precision: str = "auto", memory_format: str = "auto",
             compile: bool = False, threads: int | None = None) -> ExecutionPlan:
    """Resolve the choices into an :class:`ExecutionPlan` (``ValueError`` naming the bad one)."""
    dev = resolve_device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if memory_format not in MEMORY_FORMATS:
        raise ValueError(f"memory_format must be one of {', '.join(MEMORY_FORMATS)}, got {memory_format!r}")
    if not isinstance(compile, bool):
        raise ValueError(f"compile must be true or false, got {compile!r}")
    check_threads(threads)
    if precision == "auto":
        if dev.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            precision = "fp32"
    if precision == "fp16" and dev.type == "cpu":
        raise ValueError("precision fp16 needs a GPU; on the CPU use bf16 or fp32")
    if memory_format == "auto":
        memory_format = "contiguous" if dev.type == "mps" else "channels_last"
    return ExecutionPlan(dev, _DTYPES.get(precision), memory_format == "channels_last", compile, threads)
