"""How a training run executes on its device: precision, memory format, compilation, threads.

:func:`plan_for` resolves the user's choices (``auto`` by default) into an :class:`ExecutionPlan`
by rules on the device's capabilities, so the choice is deterministic (never a timing race that
could differ between a run and its resumption):

- CUDA: automatic mixed precision (bf16 where the GPU supports it, else fp16 with a gradient
  scaler) and ``channels_last`` (Tensor-Core convolutions want NHWC).
- CPU: ``channels_last`` (oneDNN's NHWC convolutions: 1.16-1.68x per training step over NCHW for
  the CIFAR fixed points on this project's 2-core EPYC, ``docs/bench_train.md``), and bf16 autocast
  only where it measurably pays: on a CPU with native bf16 (AVX512-BF16 or AMX) for networks at
  ImageNet-like input sizes (``resolution >= 128``: MobileNetV2 at 224 px trains 2.7x faster than
  in fp32 there), never at CIFAR sizes, where bf16 was slower than fp32 ``channels_last`` on the
  same CPU (0.70-0.90x). Without native bf16 it is emulated and slower everywhere.
- MPS: fp32, contiguous (autocast support there is partial).
- ``torch.compile`` only when asked: its compile time is paid at the start of every run, and
  whether a run is long enough to earn it back depends on the network and the device;
  ``scripts/bench_train.py --compile`` measures the break-even (not yet run on this CPU).

``precision="fp32"`` forces full precision and ``memory_format="contiguous"`` plain NCHW.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nas.runtime import check_threads, resolve_device

__all__ = ["PRECISIONS", "MEMORY_FORMATS", "BF16_MIN_RESOLUTION", "ExecutionPlan", "plan_for", "cpu_has_native_bf16"]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


BF16_MIN_RESOLUTION = 128
"""Smallest input size at which the automatic CPU plan uses bf16 (where the CPU has it natively)."""


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU executes bf16 natively (x86 ``avx512_bf16`` or ``amx_bf16``; read from
    ``/proc/cpuinfo`` on Linux). Elsewhere bf16 math is emulated and slower than fp32."""
    if platform.system() != "Linux":
        return False
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(set(line.split(":", 1)[-1].split()) & {"avx512_bf16", "amx_bf16"})
    return False


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
             compile: bool = False, threads: int | None = None, resolution: int | None = None) -> ExecutionPlan:
    """Resolve the choices into an :class:`ExecutionPlan` (``ValueError`` naming the bad one);
    ``resolution`` (the network's input size) informs the automatic CPU precision."""
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
        elif dev.type == "cpu" and resolution is not None and resolution >= BF16_MIN_RESOLUTION \
                and cpu_has_native_bf16():
            precision = "bf16"
        else:
            precision = "fp32"
    if precision == "fp16" and dev.type == "cpu":
        raise ValueError("precision fp16 needs a GPU; on the CPU use bf16 or fp32")
    if memory_format == "auto":
        memory_format = "contiguous" if dev.type == "mps" else "channels_last"
    return ExecutionPlan(dev, _DTYPES.get(precision), memory_format == "channels_last", compile, threads)
