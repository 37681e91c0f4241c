"""The compact, line-per-block string form of an :class:`~nas.arch.Arch`.

In the spirit of timm's ``arch_def`` strings (``ir_r2_k3.5_s2_e6_c40_se0.25``)::

    litenas/1 res224 cls1000
    stem cn_c32_s2_arelu6
    ds_c16_arelu6
    ir_r2_c24_e6_arelu6
    head hc_c1280_arelu6_d0.2

- The header names the format version, input resolution, classes (and ``in`` channels when not 3).
- A block token is the op name followed by ``<abbr><value>`` parts for every argument that is not
  at its default (the abbreviations are the registry's; ``nas space show`` and the README list
  them). Kernel lists are joined with ``.``; booleans are ``1``/``0``; ``_`` inside a string
  value is written ``-``.
- ``r<n>`` right after the op name repeats the *identical* block ``n`` times (unlike timm, the
  stride is not dropped after the first copy: the description is flat and exact).
- Blank lines and ``#`` comments are ignored.

Decoding is pure: parse -> expand repeats -> build blocks, as the FBNet builder normalises its
descriptions in small steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nas.block import ARCH_VERSION, ArchError, Block
from search_spaces.registry import Field, OpSpec, get_op

HEADER = f"litenas/{ARCH_VERSION}"


def _format_value(f: Field, value: Any) -> str:
    if f.kind == "bool":
        return "1" if value else "0"
    if f.kind == "float":
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if f.kind == "kernel":
        return ".".join(str(k) for k in value) if isinstance(value, tuple) else str(value)
    if f.kind == "str":
        return str(value).replace("_", "-")
    return str(value)


def _parse_value(f: Field, text: str) -> Any:
    """Raw Python value for ``text`` (normalisation and checks happen in :meth:`Block.make`)."""
    if not text:
        raise ValueError("empty value")
    if f.kind == "bool":
        if text not in ("0", "1"):
            raise ValueError(f"expected 0 or 1, got {text!r}")
        return text == "1"
    if f.kind == "int":
        if not text.lstrip("-").isdigit():
            raise ValueError(f"expected an integer, got {text!r}")
        return int(text)
    if f.kind == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
    if f.kind == "kernel":
        parts = text.split(".")
        if not all(p.isdigit() for p in parts):
            raise ValueError(f"expected kernel sizes like 3 or 3.5.7, got {text!r}")
        ks = [int(p) for p in parts]
        return ks[0] if len(ks) == 1 else ks
    return text.replace("-", "_")


def block_to_token(block: Block, repeat: int = 1) -> str:
    """Compact token of one block (``repeat`` > 1 adds ``r<n>``)."""
    spec = block.spec
    parts = [block.op]
    if repeat > 1:
        parts.append(f"r{repeat}")
    for name, value in block.non_default_args().items():
        f = spec.field_by_name[name]
        parts.append(f.abbr + _format_value(f, value))
    return "_".join(parts)


def _split_part(spec: OpSpec, part: str) -> tuple[Field, Any]:
    """Match ``part`` against the op's abbreviations, longest first."""
    errors = []
    for f in sorted(spec.fields, key=lambda f: -len(f.abbr)):
        if part.startswith(f.abbr) and len(part) > len(f.abbr):
            try:
                return f, _parse_value(f, part[len(f.abbr):])
            except ValueError as exc:
                errors.append(f"{f.name}: {exc}")
    abbrs = ", ".join(f"{f.abbr}={f.name}" for f in spec.fields)
    detail = f" ({'; '.join(errors)})" if errors else ""
    raise ValueError(f"cannot read {part!r}{detail}; op {spec.name!r} takes {abbrs}")


def token_to_blocks(token: str) -> list[Block]:
    """Decode one token into its block(s) (several when it carries ``r<n>``)."""
    op, *parts = token.split("_")
    spec = get_op(op)
    args: dict[str, Any] = {}
    repeat = 1
    for i, part in enumerate(parts):
        if i == 0 and len(part) > 1 and part[0] == "r" and part[1:].isdigit():
            repeat = int(part[1:])
            if repeat < 1:
                raise ValueError(f"repeat must be >= 1, got {part!r}")
            continue
        f, value = _split_part(spec, part)
        if f.name in args:
            raise ValueError(f"field {f.name!r} given twice")
        args[f.name] = value
    block = Block.make(op, args)
    return [block] * repeat


def _parse_header(line: str) -> dict[str, int]:
    tokens = line.split()
    if not tokens or tokens[0] != HEADER:
        raise ArchError(f"line 1: expected a header starting with {HEADER!r}, got {line!r}")
    known = {"res": "resolution", "cls": "num_classes", "in": "in_chans"}
    out: dict[str, int] = {}
    for tok in tokens[1:]:
        key = next((k for k in sorted(known, key=len, reverse=True) if tok.startswith(k)), None)
        if key is None or not tok[len(key):].isdigit():
            raise ArchError(f"line 1: cannot read header item {tok!r} (expected res<N>, cls<N>, in<N>)")
        out[known[key]] = int(tok[len(key):])
    for need in ("resolution", "num_classes"):
        if need not in out:
            raise ArchError(f"line 1: header is missing {need} ({'res' if need == 'resolution' else 'cls'}<N>)")
    return out


def parse_arch_text(text: str) -> tuple[dict[str, int], Block, list[Block], Block]:
    """The header (``resolution``, ``num_classes``, maybe ``in_chans``), stem, body blocks and head
    of the compact form (:meth:`nas.arch.Arch.from_str` makes them a network); every problem raises
    :class:`ArchError` naming the line."""
    if not isinstance(text, str):
        raise ArchError(f"expected text, got {type(text).__name__}")
    lines = [(n, raw.split("#", 1)[0].strip()) for n, raw in enumerate(text.splitlines(), 1)]
    lines = [(n, s) for n, s in lines if s]
    if not lines:
        raise ArchError("empty architecture string")
    header = _parse_header(lines[0][1])
    stem: Block | None = None
    head: Block | None = None
    blocks: list[Block] = []
    for n, line in lines[1:]:
        role, _, token = line.partition(" ") if line.startswith(("stem ", "head ")) else ("block", "", line)
        token = token.strip()
        if " " in token:
            raise ArchError(f"line {n}: one block per line, got {line!r}")
        try:
            decoded = token_to_blocks(token)
        except ValueError as exc:
            raise ArchError(f"line {n} ({token}): {exc}") from None
        if role == "block":
            if head is not None:
                raise ArchError(f"line {n}: block after the head")
            blocks.extend(decoded)
        elif len(decoded) != 1:
            raise ArchError(f"line {n}: the {role} cannot repeat")
        elif role == "stem":
            if stem is not None or blocks:
                raise ArchError(f"line {n}: the stem must come once, before the blocks")
            stem = decoded[0]
        else:
            if head is not None:
                raise ArchError(f"line {n}: a second head")
            head = decoded[0]
    if stem is None:
        raise ArchError("missing 'stem <token>' line")
    if head is None:
        raise ArchError("missing 'head <token>' line")
    return header, stem, blocks, head


def format_arch_text(resolution: int, num_classes: int, in_chans: int, stem: Block, blocks: Sequence[Block],
                     head: Block) -> str:
    """Compact form of a network (:meth:`nas.arch.Arch.to_str`); consecutive identical blocks are
    folded with ``r<n>``."""
    header = f"{HEADER} res{resolution} cls{num_classes}"
    if in_chans != 3:
        header += f" in{in_chans}"
    lines = [header, f"stem {block_to_token(stem)}"]
    i = 0
    while i < len(blocks):
        j = i
        while j + 1 < len(blocks) and blocks[j + 1] == blocks[i]:
            j += 1
        lines.append(block_to_token(blocks[i], j - i + 1))
        i = j + 1
    lines.append(f"head {block_to_token(head)}")
    return "\n".join(lines) + "\n"
