"""One op of a network as data (:class:`Block`), and the error every malformed description raises
(:class:`ArchError`). The bottom of :mod:`nas.arch`: the compact string form
(:mod:`nas.arch_string`) reads and writes blocks without needing whole architectures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from search_spaces.registry import OpSpec, get_op

__all__ = ["ARCH_FORMAT", "ARCH_VERSION", "ArchError", "Block", "block_dict"]

ARCH_FORMAT = "litenas.arch"
ARCH_VERSION = 1


class ArchError(ValueError):
    """A malformed architecture description; the message names where and what."""


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Block:
    """One op of a network: a registered op name and its (normalised, complete) arguments.

    Use :meth:`make` to build one from a possibly partial argument mapping: it fills defaults
    and coerces types through the registry, so two blocks that build the same module are equal.
    """

    op: str
    args: tuple[tuple[str, Any], ...]

    @classmethod
    def make(cls, op: str, args: Mapping[str, Any] | None = None, **kwargs: Any) -> Block:
        """Normalised block; raises ``ValueError`` on an unknown op or a bad field."""
        spec = get_op(op)
        merged = {**(args or {}), **kwargs}
        norm = spec.normalise_args(merged)
        return cls(op, tuple((f.name, _freeze(norm[f.name])) for f in spec.fields))

    @property
    def spec(self) -> OpSpec:
        return get_op(self.op)

    @property
    def kwargs(self) -> dict[str, Any]:
        """The arguments as a fresh dict."""
        return dict(self.args)

    def __getitem__(self, name: str) -> Any:
        for k, v in self.args:
            if k == name:
                return v
        raise KeyError(f"op {self.op!r} has no field {name!r}")

    def replace(self, **changes: Any) -> Block:
        """A copy with some arguments changed (validated)."""
        return Block.make(self.op, {**self.kwargs, **changes})

    def non_default_args(self) -> dict[str, Any]:
        """The canonical arguments: those that differ from the op's defaults (required ones
        always), in field order (:meth:`~search_spaces.registry.OpSpec.non_default_args`)."""
        return self.spec.non_default_args(self.args)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; tuples become lists. Defaults are written too (explicit files)."""
        return block_dict(self.op, self.args)

    def canonical_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the arguments equal to their defaults: what the hash covers."""
        return block_dict(self.op, self.non_default_args().items())


def block_dict(op: str, args: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """``{"op": ..., "args": ...}`` of ``args``, tuples as lists."""
    return {"op": op, "args": {k: list(v) if isinstance(v, tuple) else v for k, v in args}}
