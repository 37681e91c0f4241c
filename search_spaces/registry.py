"""The op registry: one entry per block type, serving builder, supernet, latency keys and complexity.

An :class:`OpSpec` declares an op's arguments (:class:`Field`, with the full name used in JSON and
the short abbreviation used in the compact string form), how to build it as a module, how it maps
input channels and spatial size to output channels and size, and which cross-field checks it
needs. Everything else in litenas (the :class:`nas.Arch` validator, the string codec, the model
builder, the latency-table key, the complexity counter) asks the registry instead of dispatching
on op names itself.

What identifies a configuration is its *canonical* argument set (:meth:`OpSpec.non_default_args`):
an argument equal to its field's default is left out. Latency-table keys (:meth:`OpConfig.key`),
architecture hashes (:meth:`nas.arch.Arch.hash`) and the compact string form are written from it,
so a field added to an op with a default changes none of them for what could be described
before.

The registry is filled once, when the :mod:`search_spaces` package is imported, by the modules of
:mod:`search_spaces.ops` (the registry never imports them: they import it); nothing
writes into it afterwards (a test that swaps an op's spec for one with an extra field restores it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from torch import nn

__all__ = [
    "REQUIRED",
    "Field",
    "Relative",
    "OpSpec",
    "OpContext",
    "register",
    "get_op",
    "op_names",
    "registered_ops",
    "OpConfig",
    "conv_out_size",
]


class _Required:
    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Marker for a field that has no default and must be given."""

# Value kinds a field can hold. ``kernel`` is an odd int or a tuple of odd ints (mixed kernels).
KINDS = ("int", "float", "bool", "str", "kernel")


def _normalise_value(kind: str, value: Any) -> Any:
    """Coerce a raw (JSON or parsed) value to the canonical Python form of ``kind``.

    Raises ``TypeError`` with a short description when the value has the wrong type; the caller
    adds where it happened.
    """
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an integer, got {value!r}")
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise TypeError(f"expected a finite number, got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise TypeError(f"expected true or false, got {value!r}")
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise TypeError(f"expected a string, got {value!r}")
        return value
    if kind == "kernel":
        if isinstance(value, (list, tuple)):
            if not value:
                raise TypeError("expected a kernel size or a non-empty list of kernel sizes, got []")
            ks = tuple(_normalise_value("int", v) for v in value)
            return ks[0] if len(ks) == 1 else ks
        return _normalise_value("int", value)
    raise AssertionError(f"unknown field kind {kind!r}")  # registry programming error


@dataclass(frozen=True)
class Relative:
    """How a layer template may give a width field relative to the block's input width:
    ``<abbr><r>`` (``e3``) stands for ``make_divisible(in_chs * r, divisor)`` in each layer, as a
    GhostNet expansion is written relative to the input while the op takes an absolute width."""

    abbr: str
    divisor: int


@dataclass(frozen=True)
class Field:
    """One argument of an op.

    ``name`` is the JSON key, ``abbr`` the prefix in the compact string form (``k3`` for
    ``kernel=3``). ``choices`` restricts a ``str`` field; ``check`` validates a single value and
    returns an error message or ``None``. What search spaces need to know of the field:
    ``skeleton`` marks an argument that a space's skeleton decides in each layer (the width, the
    stride, the downsampling kind), so a layer template (:mod:`search_spaces.templates`) leaves it
    out; ``relative`` says a template may give it relative to the input width.
    """

    name: str
    abbr: str
    kind: str
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], str | None] | None = None
    skeleton: bool = False
    relative: Relative | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"field {self.name!r}: unknown kind {self.kind!r}")
        # A default in normal form is what makes "equal to the default" exact: the canonical
        # forms (latency-table keys, architecture hashes) leave such an argument out.
        if not self.required:
            normal = self.normalise(self.default)
            if normal != self.default or type(normal) is not type(self.default):
                raise ValueError(f"field {self.name!r}: default {self.default!r} is not in normal form ({normal!r})")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def normalise(self, value: Any) -> Any:
        """Canonical value; raises ``ValueError`` naming this field on a bad one."""
        try:
            value = _normalise_value(self.kind, value)
        except TypeError as exc:
            raise ValueError(f"field {self.name!r}: {exc}") from None
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"field {self.name!r}: {value!r} is not one of {', '.join(self.choices)}")
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise ValueError(f"field {self.name!r}: {problem}")
        return value


@runtime_checkable
class HeadModule(Protocol):
    """What an op registered for the ``head`` role must build: a module mapping the last feature
    map to logits through a final ``classifier`` (``nn.Linear``, or ``nn.Identity`` for 0 classes)
    fed ``num_features`` pooled features, and ``reset`` to swap that classifier for another class
    count. The builder (``reset_classifier``, ``features_only``) relies on nothing else."""

    num_features: int
    classifier: nn.Module

    def reset(self, num_classes: int) -> None:
        """Replace ``classifier`` with a fresh one for ``num_classes`` outputs (0: none)."""


@dataclass(frozen=True)
class OpContext:
    """What an op needs to know about its place in the network besides its own arguments."""

    in_chs: int
    num_classes: int = 1000


@dataclass(frozen=True)
class OpSpec:
    """A registered block type.

    Attributes:
        name: the op name, also the leading token of its compact string (``ir``, ``ds``...).
        summary: one line for listings and error messages.
        roles: where the op may stand: any of ``stem``, ``block``, ``head``.
        fields: its arguments.
        build: ``(ctx, args) -> nn.Module``; ``args`` is the normalised argument mapping.
        out_chs: ``(in_chs, args) -> int``.
        out_size: ``(size, args) -> int``, the output height/width for a square input.
        check: ``(in_chs, args) -> str | None``, cross-field validation that needs the input
            channel count (a mixed-kernel split that must divide the channels...).
        weight_roles: ``args -> {module-name prefix: role}``: what each parameterised part of the
            built module is (``expand``, ``dw``, ``proj``...), whatever its position. A supernet
            shares one weight tensor per role among the candidates of a layer that have it (a
            smaller candidate uses a slice: Once-for-All's elastic width and kernel); ``None``:
            every candidate keeps its own weights.
    """

    name: str
    summary: str
    roles: frozenset[str]
    fields: tuple[Field, ...]
    build: Callable[[OpContext, Mapping[str, Any]], nn.Module]
    out_chs: Callable[[int, Mapping[str, Any]], int]
    out_size: Callable[[int, Mapping[str, Any]], int]
    check: Callable[[int, Mapping[str, Any]], str | None] | None = None
    weight_roles: Callable[[Mapping[str, Any]], dict[str, str]] | None = None
    field_by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name.isalnum() or not all(f.abbr.isalpha() for f in self.fields):
            raise ValueError(f"op {self.name!r}: op names and field abbreviations must be alphanumeric")
        names = [f.name for f in self.fields]
        abbrs = [f.abbr for f in self.fields]
        if len(set(names)) != len(names) or len(set(abbrs)) != len(abbrs):
            raise ValueError(f"op {self.name!r}: duplicate field names or abbreviations")
        if "r" in abbrs:
            raise ValueError(f"op {self.name!r}: abbreviation 'r' is reserved for repeats")
        object.__setattr__(self, "field_by_name", {f.name: f for f in self.fields})

    def normalise_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Fill defaults, coerce types, reject unknown or missing fields (``ValueError``)."""
        if not isinstance(args, Mapping):
            raise ValueError(f"'args' must be an object, got {type(args).__name__}")
        unknown = sorted(set(args) - set(self.field_by_name))
        if unknown:
            known = ", ".join(self.field_by_name)
            raise ValueError(f"unknown field {unknown[0]!r} for op {self.name!r} (fields: {known})")
        out: dict[str, Any] = {}
        for f in self.fields:
            if f.name in args:
                out[f.name] = f.normalise(args[f.name])
            elif f.required:
                raise ValueError(f"field {f.name!r}: missing (required by op {self.name!r})")
            else:
                out[f.name] = f.default
        return out

    def non_default_args(self, args: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> dict[str, Any]:
        """The canonical form of normalised ``args``: those that differ from their field's default
        (required ones always), in field order.

        Latency-table keys and architecture hashes are written from this, so adding a field with
        a default to an op changes no key and no hash of a configuration that existed before."""
        given = dict(args)
        return {f.name: given[f.name] for f in self.fields
                if f.name in given and (f.required or given[f.name] != f.default)}


_REGISTRY: dict[str, OpSpec] = {}


def register(spec: OpSpec) -> OpSpec:
    """Add ``spec`` to the registry; registering a name twice is a programming error."""
    if spec.name in _REGISTRY:
        raise ValueError(f"op {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get_op(name: str) -> OpSpec:
    """The registered op ``name``; an unknown name raises ``ValueError`` listing the known ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown op {name!r}; registered ops: {', '.join(sorted(_REGISTRY))}") from None


def op_names() -> list[str]:
    """Names of all registered ops, sorted."""
    return sorted(_REGISTRY)


def registered_ops() -> list[OpSpec]:
    """All registered op specs, sorted by name."""
    return [_REGISTRY[n] for n in op_names()]


@dataclass(frozen=True)
class OpConfig:
    """One op configuration as it stands in a network: the unit a latency table measures.

    ``args`` are the normalised arguments of every field, defaults included, as ``(name, value)``
    pairs in field order; ``num_classes`` matters for heads only (0 elsewhere).
    """

    op: str
    args: tuple[tuple[str, Any], ...]
    in_chs: int
    in_size: int
    num_classes: int = 0

    def key(self) -> str:
        """Stable, readable latency-table key: ``op|CxHxW|field=value,...`` (``|n=classes`` for
        heads), the arguments that differ from their defaults in field order
        (:meth:`OpSpec.non_default_args`): the key never depends on how the description was
        spelled, and a field added to the op with a default leaves it unchanged."""
        return self._key_of(get_op(self.op).non_default_args(self.args))

    def _key_of(self, args: Mapping[str, Any]) -> str:
        """The key written with exactly ``args`` (in their order)."""
        body = ",".join(f"{name}={_key_value(v)}" for name, v in args.items())
        key = f"{self.op}|{self.in_chs}x{self.in_size}x{self.in_size}|{body}"
        return key + (f"|n={self.num_classes}" if self.num_classes else "")

    @classmethod
    def from_key(cls, key: str) -> OpConfig:
        """The configuration a key names (the inverse of :meth:`key`); a field the key leaves out
        takes its default, so keys written with every argument (latency tables before version 2)
        read back as well. ``ValueError`` naming the key when it is not one this registry would
        write: an unknown op or field, a missing required field, a value spelled otherwise than
        :meth:`key` spells it, fields out of order."""
        try:
            op, shape, body, *rest = key.split("|")
            chs, size, size2 = (int(v) for v in shape.split("x"))
            spec = get_op(op)
            raw = dict(part.split("=", 1) for part in body.split(",")) if body else {}
            unknown = sorted(set(raw) - set(spec.field_by_name))
            if unknown:
                raise ValueError(f"op {op!r} has no field {unknown[0]!r}")
            given = {f.name: f.normalise(_parse_key_value(f.kind, raw[f.name])) for f in spec.fields if f.name in raw}
            args = spec.normalise_args(given)
            num_classes = int(rest[0].removeprefix("n=")) if rest else 0
            if size != size2 or len(rest) > 1:
                raise ValueError("a non-square shape or extra parts")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a latency-table key of this registry: {key!r} ({exc})") from None
        config = cls(op, tuple(args.items()), chs, size, num_classes)
        if config._key_of(given) != key:
            raise ValueError(f"not a latency-table key of this registry: {key!r} (reads back as {config.key()!r})")
        return config

    def build(self) -> nn.Module:
        """The op alone, as a module (for measuring it in isolation)."""
        return get_op(self.op).build(OpContext(self.in_chs, self.num_classes), dict(self.args))


def _key_value(value: Any) -> str:
    """A field value as a key writes it: kernels ``3.5.7``, bools 0/1."""
    if isinstance(value, tuple):
        return ".".join(str(x) for x in value)
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def _parse_key_value(kind: str, text: str) -> Any:
    """A field value as :meth:`OpConfig.key` writes it, read back (kernels ``3.5.7``, bools 0/1)."""
    if kind == "kernel":
        return tuple(int(v) for v in text.split(".")) if "." in text else int(text)
    if kind == "bool":
        return {"0": False, "1": True}[text]
    return {"int": int, "float": float, "str": str}[kind](text)


def conv_out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output size of a convolution or pooling window over ``size`` (PyTorch floor formula)."""
    return (size + 2 * padding - kernel) // stride + 1
