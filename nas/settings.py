"""Configuration components: frozen dataclasses whose fields declare themselves once.

A component (:class:`Component`) is the configuration of one part of a job (a search's space,
strategy, evaluator, latency, objective, output, executor, supernet training). Each of its fields
is made with :func:`setting`, which records:

- ``key``: the field's flat name, unique across the components of a job: the command-line flag
  (``--latency-table``) and the YAML key (``latency_table``); by default the field's own name;
- ``help``: its ``--help`` text;
- ``volatile``: whether it may change when a run resumes (a budget, a path, where evaluations
  run; anything else defines *which* job it is);
- ``range``: for a number, ``(low, low allowed, high)``.

From that one declaration the components check their values' types and ranges on construction
(``ValueError`` naming the key), and the job's configuration (:mod:`nas.search.config`) derives
its flags, YAML validation, resume check and stored form. This module sits at the bottom of the
package picture (it imports nothing of litenas but :mod:`nas.checks`), so every component can be
declared beside the code it configures.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from nas.checks import is_int, is_real

__all__ = ["Component", "Key", "setting", "check_value", "check_range"]

Range = tuple[float, bool, float]
"""A number's range: ``(low, whether low itself is allowed, high)`` (``high`` is allowed)."""


def setting(default: Any, help: str, *, key: str | None = None, volatile: bool = False,
            range: Range | None = None) -> Any:
    """A field of a :class:`Component` (see the module docstring for the arguments)."""
    return field(default=default, metadata={"key": key, "help": help, "volatile": volatile, "range": range})


@dataclass(frozen=True)
class Key:
    """One field of a component as a job's configuration sees it: its flat ``name`` (flag and YAML
    key), the component ``group`` (the attribute holding the component) and field ``attr`` it
    lives in, its declared ``kind`` (``int``, ``float``, ``bool``, ``str``) and whether it may be
    unset (``optional``), its default, help, volatility and range."""

    name: str
    group: str
    attr: str
    kind: str
    optional: bool
    default: Any
    help: str
    volatile: bool
    range: Range | None


@dataclass(frozen=True)
class Component:
    """Base of configuration components: checks every field's type and range on construction.

    Subclasses are frozen dataclasses whose fields are all made with :func:`setting`; they set
    ``title`` (one line for ``--help``) and may override :meth:`check` for rules between their
    own fields (rules between components belong to the job's configuration)."""

    title: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for key in self.keys(""):
            check_value(key, getattr(self, key.attr))
        self.check()

    def check(self) -> None:
        """Rules between this component's fields (``ValueError`` naming the key); none by default."""

    @classmethod
    def keys(cls, group: str) -> Iterator[Key]:
        """The component's fields, as :class:`Key` s of the component held in attribute ``group``."""
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            kind, optional = _kind(hints[f.name])
            yield Key(name=f.metadata["key"] or f.name, group=group, attr=f.name, kind=kind, optional=optional,
                      default=f.default, help=f.metadata["help"], volatile=f.metadata["volatile"],
                      range=f.metadata["range"])

    def key_values(self) -> dict[str, Any]:
        """The component's values by flat key."""
        return {key.name: getattr(self, key.attr) for key in self.keys("")}


def _kind(annotation: Any) -> tuple[str, bool]:
    """``(kind, optional)`` of a field's type: ``int``, ``float``, ``bool`` or ``str``, and whether
    ``None`` is allowed."""
    args = typing.get_args(annotation) or (annotation,)
    optional = type(None) in args
    base = next(a for a in args if a is not type(None))
    if base not in (int, float, bool, str):
        raise TypeError(f"a setting must be an int, float, bool or str, got {annotation!r}")  # programming error
    return base.__name__, optional


def check_value(key: Key, value: Any) -> None:
    """``ValueError`` naming ``key.name`` unless ``value`` has the key's kind (or is ``None`` where
    allowed) and, for a number, is finite and in the key's range."""
    if value is None:
        if not key.optional:
            raise ValueError(f"{key.name}: a value is required")
        return
    checks = {"int": (is_int, "an integer"), "float": (is_real, "a number"),
              "bool": (lambda v: isinstance(v, bool), "true or false"), "str": (lambda v: isinstance(v, str), "a string")}
    ok, kind = checks[key.kind]
    if not ok(value):
        raise ValueError(f"{key.name}: expected {kind}, got {value!r}")
    if key.range is not None:
        check_range(key.name, value, key.range)


def check_range(name: str, value: float, bounds: Range) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is finite and within ``bounds``."""
    low, low_ok, high = bounds
    if not math.isfinite(value) or value < low or (value == low and not low_ok) or value > high:
        rule = " and ".join(b for b in (f"{'>=' if low_ok else '>'} {low:.10g}" if math.isfinite(low) else "",
                                         f"<= {high:.10g}" if math.isfinite(high) else "") if b)
        raise ValueError(f"{name}: must be a finite number{' ' + rule if rule else ''}, got {value!r}")
