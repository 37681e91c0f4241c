"""The zoo: the surveyed networks as :class:`~nas.arch.Arch` descriptions (the fixed points).

Each family module lists :class:`ZooEntry` objects in ``ENTRIES``; an entry's ``build`` is a pure
function returning the description, and its docstring/comment cites the paper and names the
reference implementation it reproduces. The reference numbers (parameters, MACs) live in
``fixed_points.json`` beside this file, a copy of ``shared/reference/fixed_points.json``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from nas.arch import Arch

# Family modules, in listing order. A new family: add a module with ENTRIES and name it here.
_FAMILIES = (
    "mobilenet_v2",
    "mobilenet_v3",
    "mnasnet",
    "fbnet",
    "mixnet",
    "efficientnet",
    "ghostnet",
    "shufflenet_v2",
    "hardnet",
    "cifar_mobilenet_v3",
)


@dataclass(frozen=True)
class ZooEntry:
    """A fixed point: its name, how to build its description, and where it comes from."""

    name: str
    build: Callable[[], Arch]
    paper: str
    reference: str
    note: str = ""


@cache
def _entries() -> dict[str, ZooEntry]:
    out: dict[str, ZooEntry] = {}
    for fam in _FAMILIES:
        module = importlib.import_module(f"search_spaces.zoo.{fam}")
        for e in module.ENTRIES:
            if e.name in out:
                raise RuntimeError(f"zoo entry {e.name!r} defined twice")
            out[e.name] = e
    return out


def names() -> list[str]:
    """All zoo entry names, in family order."""
    return list(_entries())


def entry(name: str) -> ZooEntry:
    """The :class:`ZooEntry` called ``name``; an unknown name raises ``ValueError`` listing all."""
    try:
        return _entries()[name]
    except KeyError:
        raise ValueError(f"unknown zoo entry {name!r}; known: {', '.join(names())}") from None


@cache
def get(name: str) -> Arch:
    """The architecture description of zoo entry ``name``."""
    return entry(name).build()


@cache
def _reference_table() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("fixed_points.json").read_text(encoding="utf-8")
    return json.loads(text)


def reference(name: str) -> dict[str, Any]:
    """Target numbers of ``name`` from the reference table (params, MACs, published accuracy)."""
    entry(name)
    table = _reference_table()
    if name not in table:
        raise ValueError(f"zoo entry {name!r} has no reference numbers in fixed_points.json")
    return dict(table[name])


def tolerance(name: str) -> tuple[float, float]:
    """(relative parameter tolerance, relative conv+linear MAC tolerance) an entry must meet.

    ImageNet entries reproduce their reference exactly in parameters and within 0.5% in MACs;
    the CIFAR variants of the padding-free paper within 0.05% and 1% (its reference code has
    quirks, such as an unused BatchNorm, that are not copied).
    """
    return (0.0005, 0.01) if name.startswith("cifar_") else (0.0, 0.005)


def matches_reference(name: str, params: int, macs_conv_linear: int) -> bool:
    """Whether counted params/MACs meet the entry's reference within :func:`tolerance`."""
    ref = reference(name)
    p_tol, m_tol = tolerance(name)
    return (
        abs(params - ref["params"]) <= p_tol * ref["params"]
        and abs(macs_conv_linear - ref["macs_conv_linear"]) <= m_tol * ref["macs_conv_linear"]
    )
