"""Architecture as data: :class:`Arch` (and :class:`Block`, defined in :mod:`nas.block`, with
:class:`ArchError`).

An :class:`Arch` is a plain, immutable description of a whole network: input resolution and
channels, a stem block, the ordered body blocks, a head block and the number of classes. Every
block is an op name from the registry (:mod:`search_spaces.registry`) plus its arguments.
Construction validates everything (unknown ops, bad field values, channel splits that do not
divide, maps that shrink to nothing) and raises :class:`ArchError` (a ``ValueError``) naming the
block and the field, so a malformed description never reaches torch.

Serialisations, both lossless:

- versioned JSON (:meth:`Arch.to_json` / :meth:`Arch.from_json`, :meth:`Arch.save` /
  :meth:`Arch.load`); a file of an older format version is migrated when read
  (:mod:`nas.arch_migrations`);
- a compact line-per-block string in the spirit of timm's ``ir_r2_k3.5_s2_e6_c40_se0.25``
  (:meth:`Arch.to_str` / :meth:`Arch.from_str`, see :mod:`nas.arch_string`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.arch_migrations import upgrade
from nas.arch_string import format_arch_text, parse_arch_text
from nas.block import ARCH_FORMAT, ARCH_VERSION, ArchError, Block, block_dict
from nas.checks import is_int
from nas.io import JSONFileError, atomic_write_text, read_text_file
from search_spaces.registry import OpConfig, get_op


@dataclass(frozen=True)
class LayerInfo:
    """Where a block stands in a validated network: its input channels and square input size."""

    index: int
    role: str
    block: Block
    in_chs: int
    in_size: int
    out_chs: int
    out_size: int


def _where(role: str, index: int | None) -> str:
    return role if index is None else f"block {index}"


def _check_block(block: Any, role: str, index: int | None) -> None:
    where = _where(role, index)
    if not isinstance(block, Block):
        raise ArchError(f"{where}: expected a Block, got {type(block).__name__}")
    try:
        spec = get_op(block.op)
        normalised = Block.make(block.op, dict(block.args))
    except ValueError as exc:
        raise ArchError(f"{where} ({block.op}): {exc}") from None
    if normalised != block:
        raise ArchError(f"{where} ({block.op}): arguments are not in normal form; build blocks with Block.make")
    if role not in spec.roles:
        raise ArchError(f"{where} ({block.op}): op {block.op!r} cannot be used as {role} "
                        f"(it may stand as: {', '.join(sorted(spec.roles))})")


@dataclass(frozen=True)
class Arch:
    """An immutable, validated network description.

    Attributes:
        resolution: square input size in pixels.
        num_classes: classifier outputs.
        stem: the first op (role ``stem``).
        blocks: the body ops in order (role ``block``).
        head: the classifier head (role ``head``).
        in_chans: input image channels.
    """

    resolution: int
    num_classes: int
    stem: Block
    blocks: tuple[Block, ...]
    head: Block
    in_chans: int = 3

    def __post_init__(self) -> None:
        for name in ("resolution", "num_classes", "in_chans"):
            value = getattr(self, name)
            if not is_int(value):
                raise ArchError(f"field {name!r}: expected an integer, got {value!r}")
            if value <= 0:
                raise ArchError(f"field {name!r}: must be > 0, got {value}")
        if isinstance(self.blocks, list):
            object.__setattr__(self, "blocks", tuple(self.blocks))
        if not isinstance(self.blocks, tuple):
            raise ArchError(f"field 'blocks': expected a list of blocks, got {type(self.blocks).__name__}")
        # Walking the chain checks roles, per-op cross-field rules and spatial sizes.
        for _ in self.layers():
            pass

    # ----------------------------------------------------------------------------------------
    def layers(self) -> Iterator[LayerInfo]:
        """Every op with its input/output channels and sizes, stem first, head last.

        Validates as it walks (this is what construction runs), raising :class:`ArchError`.
        """
        chs, size = self.in_chans, self.resolution
        seq: list[tuple[str, int | None, Block]] = [("stem", None, self.stem)]
        seq += [("block", i, b) for i, b in enumerate(self.blocks)]
        seq.append(("head", None, self.head))
        for role, index, block in seq:
            _check_block(block, role, index)
            where = f"{_where(role, index)} ({block.op})"
            spec = block.spec
            args = block.kwargs
            problem = spec.check(chs, args) if spec.check else None
            if problem:
                raise ArchError(f"{where}: {problem}")
            out_chs = spec.out_chs(chs, args)
            out_size = spec.out_size(size, args)
            if out_size < 1:
                raise ArchError(f"{where}: the {size}x{size} input map shrinks to nothing "
                                f"(resolution {self.resolution} is too small for this network)")
            yield LayerInfo(-1 if index is None else index, role, block, chs, size, out_chs, out_size)
            chs, size = out_chs, out_size

    def op_configs(self) -> list[OpConfig]:
        """The op configuration of every layer, stem first, head last (latency-table units)."""
        return [
            OpConfig(info.block.op, info.block.args, info.in_chs, info.in_size,
                     self.num_classes if info.role == "head" else 0)
            for info in self.layers()
        ]

    @property
    def num_features(self) -> int:
        """Channels entering the head's classifier."""
        *_, head = self.layers()
        return head.out_chs

    def replace(self, **changes: Any) -> Arch:
        """A copy with some top-level fields changed (validated)."""
        fields = {
            "resolution": self.resolution, "num_classes": self.num_classes, "stem": self.stem,
            "blocks": self.blocks, "head": self.head, "in_chans": self.in_chans,
        }
        fields.update(changes)
        return Arch(**fields)

    # ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description, every argument written (defaults included: explicit files)."""
        return self._dict(Block.to_dict)

    def canonical_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` with every argument equal to its field's default left out: one form
        per network whatever the registry's defaulted fields, and what :meth:`hash` covers. It is
        a valid description too (:meth:`from_dict` fills the defaults back in)."""
        return self._dict(Block.canonical_dict)

    def _dict(self, describe: Callable[[Block], dict[str, Any]]) -> dict[str, Any]:
        return {
            "format": ARCH_FORMAT,
            "version": ARCH_VERSION,
            "resolution": self.resolution,
            "in_chans": self.in_chans,
            "num_classes": self.num_classes,
            "stem": describe(self.stem),
            "blocks": [describe(b) for b in self.blocks],
            "head": describe(self.head),
        }

    def to_json(self, indent: int | None = 1) -> str:
        """Versioned JSON text (every argument written explicitly)."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Any) -> Arch:
        """Parse a JSON-like dict; every problem raises :class:`ArchError` naming its place."""
        if not isinstance(data, Mapping):
            raise ArchError(f"an architecture must be a JSON object, got {type(data).__name__}")
        if data.get("format", ARCH_FORMAT) != ARCH_FORMAT:
            raise ArchError(f"field 'format': expected {ARCH_FORMAT!r}, got {data.get('format')!r}")
        data = upgrade(data)  # a description of an older format version, in the current one
        known = {"format", "version", "resolution", "in_chans", "num_classes", "stem", "blocks", "head"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ArchError(f"unknown field {unknown[0]!r} (fields: {', '.join(sorted(known))})")
        for name in ("resolution", "num_classes", "stem", "blocks", "head"):
            if name not in data:
                raise ArchError(f"field {name!r}: missing")
        if not isinstance(data["blocks"], list):
            raise ArchError(f"field 'blocks': expected a list, got {type(data['blocks']).__name__}")
        stem = _block_from_dict(data["stem"], "stem", None)
        blocks = tuple(_block_from_dict(b, "block", i) for i, b in enumerate(data["blocks"]))
        head = _block_from_dict(data["head"], "head", None)
        return cls(
            resolution=data["resolution"], num_classes=data["num_classes"], stem=stem, blocks=blocks,
            head=head, in_chans=data.get("in_chans", 3),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Arch:
        """Parse JSON text; invalid JSON or descriptions raise :class:`ArchError`."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArchError(f"not valid JSON ({exc})") from None
        except RecursionError:
            raise ArchError("JSON nested too deeply to be an architecture description") from None
        return cls.from_dict(data)

    def to_str(self) -> str:
        """Compact one-line-per-block form (see :mod:`nas.arch_string`)."""
        return format_arch_text(self.resolution, self.num_classes, self.in_chans, self.stem, self.blocks, self.head)

    @classmethod
    def from_str(cls, text: str) -> Arch:
        """Parse the compact form; problems raise :class:`ArchError` naming the line."""
        header, stem, blocks, head = parse_arch_text(text)
        return cls(stem=stem, blocks=tuple(blocks), head=head, **header)

    # ----------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write JSON atomically (temp file + rename), so a crash never leaves half a file."""
        return atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Arch:
        """Read a JSON (``.json``) or compact-string file; errors name the file."""
        p = Path(path)
        try:
            text = read_text_file(p, "an architecture (JSON or compact string)")
        except JSONFileError as exc:
            raise ArchError(str(exc)) from None
        try:
            if text.lstrip().startswith("{") or p.suffix == ".json":
                return cls.from_json(text)
            return cls.from_str(text)
        except ArchError as exc:
            raise ArchError(f"{p}: {exc}") from None

    def hash(self) -> str:
        """Stable content hash: 16 hex digits of SHA-256 over the JSON of :meth:`canonical_dict`
        (sorted keys, no spaces), so a field added to an op with a default changes no hash."""
        return _digest(self.canonical_dict())


def _digest(data: dict[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# The fields of every op when hashes still covered every argument (litenas before canonical
# hashes); :func:`legacy_hash` writes these, so a field added since does not move it.
_LEGACY_FIELDS: dict[str, tuple[str, ...]] = {
    "cn": ("out_chs", "kernel", "stride", "act", "groups"),
    "ds": ("out_chs", "kernel", "stride", "act", "se_ratio", "se_style", "pw_act", "noskip", "downsample"),
    "ghost": ("out_chs", "mid_chs", "kernel", "stride", "act", "se_ratio", "se_style", "ratio", "cheap_kernel",
              "downsample"),
    "hardnet": ("growth", "mult", "layers", "layer", "act"),
    "hc": ("out_chs", "act", "dropout"),
    "hp": ("hidden", "act", "dropout"),
    "hybrid": ("out_chs", "act"),
    "ir": ("out_chs", "kernel", "stride", "exp_ratio", "act", "se_ratio", "se_style", "exp_groups", "proj_groups",
           "shuffle", "noskip", "downsample"),
    "mp": ("kernel", "stride"),
    "shuffle": ("out_chs", "kernel", "stride", "act", "variant", "downsample"),
    "skip": ("out_chs", "stride"),
}


def legacy_hash(arch: Arch) -> str:
    """The hash older litenas gave ``arch`` (SHA-256 over :meth:`Arch.to_dict`, defaults included).

    Kept for one purpose only: finding what an older litenas stored under that hash (a run's
    evaluator result cache, trained-network records, a training run's identity, a predictor's
    ``fitted_on``), so an upgraded user's work is not redone. Nothing new is keyed by it. An op
    registered since has no legacy files; its arguments are all written.
    """
    def block(b: Block) -> dict[str, Any]:
        names = _LEGACY_FIELDS.get(b.op)
        return block_dict(b.op, [(k, v) for k, v in b.args if names is None or k in names])

    return _digest(arch._dict(block))


def _block_from_dict(data: Any, role: str, index: int | None) -> Block:
    where = _where(role, index)
    if not isinstance(data, Mapping):
        raise ArchError(f"{where}: expected an object with 'op' and 'args', got {type(data).__name__}")
    unknown = sorted(set(data) - {"op", "args"})
    if unknown:
        raise ArchError(f"{where}: unknown key {unknown[0]!r} (expected 'op' and 'args')")
    op = data.get("op")
    if not isinstance(op, str):
        raise ArchError(f"{where}: field 'op': expected an op name, got {op!r}")
    try:
        spec = get_op(op)
        if role not in spec.roles:
            raise ValueError(f"op {op!r} cannot be used as {role} (it may stand as: {', '.join(sorted(spec.roles))})")
        return Block.make(op, data.get("args", {}))
    except ValueError as exc:
        raise ArchError(f"{where} ({op}): {exc}") from None
