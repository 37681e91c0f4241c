"""Runtime helpers shared by evaluators, training, the DNAS loop and the latency harness: a fixed
torch thread count, and devices that are checked to exist. At the bottom of the import graph (torch
only), so that every package above pins threads the same way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from nas.checks import is_int

__all__ = ["DEVICE_TYPES", "check_threads", "fixed_threads", "resolve_device"]


def check_threads(threads: int | None) -> int | None:
    """``threads`` if it is ``None`` or an integer >= 1, else ``ValueError``."""
    if threads is not None and (not is_int(threads) or threads < 1):
        raise ValueError(f"threads must be an integer >= 1 or None, got {threads!r}")
    return threads


@contextmanager
def fixed_threads(threads: int | None) -> Iterator[None]:
    """Run the body with ``torch.set_num_threads(threads)`` (``None``: unchanged), then restore."""
    if check_threads(threads) is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(spec: str | torch.device, *, what: str = "device") -> torch.device:
    """The torch device named by ``spec`` (``cpu``, ``cuda``, ``cuda:N`` or ``mps``), checked to
    exist on this machine: a device that is not there is a ``ValueError`` naming ``what`` (the
    flag or key), never a silent fall-back to the CPU."""
    text = str(spec)
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError):
        raise ValueError(f"{what}: expected cpu, cuda, cuda:N or mps, got {text!r}") from None
    if device.type not in DEVICE_TYPES:
        raise ValueError(f"{what}: expected cpu, cuda, cuda:N or mps, got {text!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise ValueError(f"{what}: {text!r} is not available on this machine ({why})")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"{what}: {text!r} does not exist (this machine has {count} CUDA device(s))")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"{what}: 'mps' is not available on this machine")
    return device
