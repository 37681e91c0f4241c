"""What device this is: its name and the fingerprint a latency table records, to tell the machine
that built a table from the one that reads it (:mod:`latency_tables.check`).

At the bottom of :mod:`latency_tables` (torch only), so the table format and the harness both
read it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["device_name", "fingerprint"]


def device_name(device: str) -> str:
    """What the device is: the CPU model for ``cpu``, the GPU name for CUDA devices."""
    if device == "cpu":
        return _cpu_model()
    if not torch.cuda.is_available():
        return "no CUDA device"
    return torch.cuda.get_device_name(torch.device(device))


def fingerprint(device: str) -> dict[str, Any]:
    """What makes this machine time ops the way it does, for telling a table's device from this
    one: the CPU (or GPU) model, a digest of the CPU feature flags (vector extensions decide
    which kernels run), logical CPUs, the CPU's nominal clock (BogoMIPS on Linux VMs), and the
    torch build. Two VMs that both call themselves "AMD EPYC" can differ in all but the name."""
    info: dict[str, Any] = {"device_name": device_name(device), "logical_cpus": os.cpu_count() or 0,
                            "torch": torch.__version__, "torch_git": (torch.version.git_version or "")[:12],
                            "mkldnn": bool(torch.backends.mkldnn.is_available())}
    fields = _cpuinfo_fields(("flags", "bogomips"))
    info["cpu_flags"] = hashlib.sha256(" ".join(sorted(fields.get("flags", "").split())).encode()).hexdigest()[:12]
    info["bogomips"] = fields.get("bogomips", "")
    if device != "cpu" and torch.cuda.is_available():
        info["cuda"] = torch.version.cuda or ""
    return info


def _cpuinfo_fields(names: Sequence[str]) -> dict[str, str]:
    """The first value of each of ``names`` in ``/proc/cpuinfo`` (empty where there is none)."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in names and key not in out:
                    out[key] = value.strip()
    return out


def _cpu_model() -> str:
    model = _cpuinfo_fields(("model name",)).get("model name")
    if model:
        return model
    return platform.processor() or platform.machine() or "unknown CPU"
