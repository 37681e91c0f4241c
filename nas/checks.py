"""Type predicates for values read from users (flags, JSON, keyword arguments).

``bool`` is a subclass of ``int`` in Python, so ``isinstance(True, int)`` holds and ``"epochs":
true`` in a JSON config would pass a plain ``isinstance`` check as 1 epoch. Every check of a
count, size or number goes through these instead. (The op registry's field kinds,
:mod:`search_spaces.registry`, sit below this package and apply the same rule themselves.)
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_int", "is_real"]


def is_int(value: Any) -> bool:
    """Whether ``value`` is a Python integer, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """Whether ``value`` is a Python integer or float, not a bool (NaN and infinities included:
    check finiteness where it matters)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
