"""Runtime helper shared by the evaluators: a fixed torch thread count."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["check_threads", "fixed_threads"]


def check_threads(threads: int | None) -> int | None:
    """``threads`` if it is ``None`` or an integer >= 1, else ``ValueError``."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
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
