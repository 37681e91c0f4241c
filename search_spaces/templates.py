"""Block templates: a registered op with every argument fixed except the ones a search-space
skeleton decides (output width, stride, downsampling kind).

A template is written as a compact block token (:mod:`nas.arch_string`) without those parts:
``ir_k3.5_e6_aswish_se0.25`` is an MBConv whose width, stride and downsampling the layer it
stands in provides. Which arguments those are, the registry says (``Field.skeleton``). A field
declared ``relative`` (``Field.relative``) may be given relative to the input width: the Ghost
bottleneck takes an absolute expanded width, and ``ghost_e3_k5`` makes it
``make_divisible(in_chs * 3, 4)`` in each layer (GhostNet's rounding), a 3x expansion like an
MBConv's.

Templates also answer, without building a block, whether they are valid in a given place
(:meth:`Template.fits`) and how they shrink a feature map (:meth:`Template.out_size`): the
registry's checks and size rules, which is what :class:`~nas.arch.Arch` validation runs.
:class:`FitCounter` answers that question for many templates at once, as a search space's
exact count needs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nas.arch import Block
from nas.arch_string import block_to_token, token_to_blocks
from search_spaces.ops.layers import make_divisible
from search_spaces.registry import Field, OpSpec, get_op

__all__ = ["Template", "FitCounter"]

_PLACEHOLDER = 999983  # a width no token spells, to find and drop its part in a printed token
_RATIO = r"(\d+(\.\d+)?)"


def _skeleton(spec: OpSpec) -> list[Field]:
    """The op's fields that a space's skeleton decides (``Field.skeleton``)."""
    return [f for f in spec.fields if f.skeleton]


@dataclass(frozen=True)
class Template:
    """A registered op with its non-skeleton arguments fixed (see the module docstring).

    Build with :meth:`parse`; ``label`` is the canonical token, ``args`` the normalised
    arguments (skeleton fields at placeholder values), ``ratios`` the fields given relative to
    the input width, with their ratios (``(("mid_chs", 3.0),)`` for ``ghost_e3``).
    """

    label: str
    op: str
    args: tuple[tuple[str, Any], ...]
    ratios: tuple[tuple[str, float], ...] = ()
    spec: OpSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spec", get_op(self.op))

    @classmethod
    def parse(cls, token: str) -> Template:
        """The template of ``token``; ``ValueError`` on an unknown op or bad argument."""
        op, *parts = token.split("_")
        spec = get_op(op)
        if "stride" not in spec.field_by_name or "block" not in spec.roles:
            raise ValueError(f"template {token!r}: op {op!r} is not a body block with a stride")
        for part in parts:
            for f in _skeleton(spec):
                rest = part[len(f.abbr):] if part.startswith(f.abbr) else ""
                if rest and (rest.isdigit() or rest.replace("-", "_") in (f.choices or ())):
                    raise ValueError(f"template {token!r}: {f.name} is left to the skeleton, drop {part!r}")
        ratios: list[tuple[str, float]] = []
        for f in spec.fields:
            rel = f.relative and next((p for p in parts if re.fullmatch(f.relative.abbr + _RATIO, p)), None)
            if rel:
                ratios.append((f.name, float(rel[len(f.relative.abbr):])))
                parts = [p for p in parts if p != rel] + [f"{f.abbr}{_PLACEHOLDER}"]
        parts += [f"{f.abbr}{_PLACEHOLDER}" for f in _skeleton(spec) if f.required]
        (block,) = token_to_blocks("_".join([op, *parts]))
        keep = [p for p in block_to_token(block).split("_") if str(_PLACEHOLDER) not in p]
        keep[1:1] = [f"{spec.field_by_name[name].relative.abbr}{r:g}" for name, r in ratios]
        return cls("_".join(keep), op, block.args, tuple(ratios))

    @classmethod
    def of_block(cls, block: Block) -> Template:
        """The (absolute) template of ``block``: its arguments without the skeleton ones."""
        spec = block.spec
        args = block.kwargs
        for f in _skeleton(spec):
            args[f.name] = _PLACEHOLDER if f.required else f.default
        token = block_to_token(Block.make(block.op, args))
        return cls.parse("_".join(p for p in token.split("_") if str(_PLACEHOLDER) not in p))

    @property
    def keeps_width(self) -> bool:
        """Whether the op has no output width of its own (its output has its input's width)."""
        return "out_chs" not in self.spec.field_by_name

    @property
    def has_downsample(self) -> bool:
        """Whether the op takes a ``downsample`` kind (padding-free on stride 2)."""
        return "downsample" in self.spec.field_by_name

    def raw_args(self, in_chs: int, out_chs: int, stride: int, downsample: str) -> dict[str, Any]:
        """The normalised argument mapping in a layer ``in_chs -> out_chs`` at ``stride``."""
        args = dict(self.args)
        if not self.keeps_width:
            args["out_chs"] = out_chs
        args["stride"] = stride
        if self.has_downsample:
            args["downsample"] = downsample
        for name, ratio in self.ratios:
            args[name] = make_divisible(in_chs * ratio, self.spec.field_by_name[name].relative.divisor)
        return args

    def block(self, in_chs: int, out_chs: int, stride: int, downsample: str = "standard") -> Block:
        """The block in a layer ``in_chs -> out_chs``; ``ValueError`` where it does not fit."""
        problem = self.problem(in_chs, out_chs, stride, downsample)
        if problem:
            raise ValueError(f"{self.label}: {problem}")
        return Block.make(self.op, self.raw_args(in_chs, out_chs, stride, downsample))

    def shape_problem(self, in_chs: int, out_chs: int, downsample: str) -> str | None:
        """Why the op cannot stand in such a layer at all, whatever its arguments, or ``None``."""
        if self.keeps_width and out_chs != in_chs:
            return f"op {self.op!r} keeps its {in_chs} input channels, the layer needs {out_chs}"
        if not self.has_downsample and downsample != "standard":
            return f"op {self.op!r} has no {downsample} downsampling"
        return None

    def problem(self, in_chs: int, out_chs: int, stride: int, downsample: str) -> str | None:
        """Why the template does not fit a layer ``in_chs -> out_chs`` at ``stride`` with
        ``downsample``, or ``None`` (the registry's cross-field check, as ``Arch`` runs it)."""
        problem = self.shape_problem(in_chs, out_chs, downsample)
        if problem or self.spec.check is None:
            return problem
        return self.spec.check(in_chs, self.raw_args(in_chs, out_chs, stride, downsample))

    def fits(self, in_chs: int, out_chs: int, stride: int, downsample: str) -> bool:
        """``problem(...) is None``."""
        return self.problem(in_chs, out_chs, stride, downsample) is None

    def out_size(self, size: int, stride: int, downsample: str) -> int:
        """Output height/width on a ``size`` x ``size`` input (< 1: the map vanishes)."""
        return self.spec.out_size(size, self.raw_args(8, 8, stride, downsample))

    def matches(self, block: Block, in_chs: int) -> bool:
        """Whether ``block`` is this template in a layer with ``in_chs`` input channels."""
        if block.op != self.op:
            return False
        a = block.kwargs
        try:
            return block == self.block(in_chs, a.get("out_chs", in_chs), a["stride"], a.get("downsample", "standard"))
        except ValueError:
            return False


class _Reads(Mapping[str, Any]):
    """A read-only view of an argument mapping that records which keys are read; iterating it
    (or asking its length) marks the reader as depending on every key."""

    def __init__(self, data: Mapping[str, Any]):
        self._data = data
        self.read: set[str] = set()
        self.everything = False

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        self.everything = True
        return iter(self._data)

    def __len__(self) -> int:
        self.everything = True
        return len(self._data)


class FitCounter:
    """Which of many templates fit a layer, computed once per class of equivalent templates.

    A registry check is a deterministic function of the input width and of the arguments it
    reads. For every op, the counter tracks the argument names its check has been seen to read;
    templates of one op that agree on those names (the skeleton's arguments being the layer's)
    form a class, and one check per class answers for all its members as long as that check
    reads no other name. When it does, the names grow and the classes split. The answer is
    exactly the per-template one: MBConv templates that differ in activation or squeeze-excite
    only, for instance, are checked once.
    """

    def __init__(self, templates: Sequence[Template]):
        self.templates = tuple(templates)
        self._names: dict[str, frozenset[str]] = {}
        self._groups: dict[tuple[tuple[int, ...], tuple[tuple[str, frozenset[str]], ...]],
                           list[tuple[int, list[int]]]] = {}
        self._checks: dict[tuple[int, int, int, int, str], tuple[bool, frozenset[str] | None]] = {}

    def _key(self, t: Template, names: frozenset[str]) -> tuple[Any, ...]:
        static, ratios = dict(t.args), dict(t.ratios)
        key: list[Any] = [t.op]
        for name in sorted(names - {f.name for f in _skeleton(t.spec)}):
            key.append(("ratio", ratios[name]) if name in ratios else static[name])
        return tuple(key)

    def _classes(self, indices: tuple[int, ...]) -> list[tuple[int, list[int]]]:
        ops = {self.templates[i].op for i in indices}
        names = tuple(sorted((op, self._names.get(op, frozenset())) for op in ops))
        groups = self._groups.get((indices, names))
        if groups is None:
            by_key: dict[tuple[Any, ...], list[int]] = {}
            for i in indices:
                t = self.templates[i]
                by_key.setdefault(self._key(t, self._names.get(t.op, frozenset())), []).append(i)
            groups = self._groups[(indices, names)] = [(members[0], members) for members in by_key.values()]
        return groups

    def _check(self, i: int, in_chs: int, out_chs: int, stride: int, downsample: str) -> tuple[bool, frozenset[str] | None]:
        """Whether template ``i`` fits, and the argument names its check read (``None``: all)."""
        key = (i, in_chs, out_chs, stride, downsample)
        got = self._checks.get(key)
        if got is None:
            t = self.templates[i]
            if t.shape_problem(in_chs, out_chs, downsample) or t.spec.check is None:
                got = (t.shape_problem(in_chs, out_chs, downsample) is None, frozenset())
            else:
                view = _Reads(t.raw_args(in_chs, out_chs, stride, downsample))
                ok = t.spec.check(in_chs, view) is None
                got = (ok, None if view.everything else frozenset(view.read))
            self._checks[key] = got
        return got

    def fitting(self, indices: tuple[int, ...], in_chs: int, out_chs: int, stride: int, downsample: str) -> list[int]:
        """The members of ``indices`` that fit a layer ``in_chs -> out_chs`` at ``stride`` with
        ``downsample``, in order."""
        while True:
            out: list[int] = []
            for rep, members in self._classes(indices):
                ok, read = self._check(rep, in_chs, out_chs, stride, downsample)
                op = self.templates[rep].op
                known = self._names.get(op, frozenset())
                if read is None:
                    read = frozenset(self.templates[rep].spec.field_by_name)
                if not read <= known:
                    self._names[op] = known | read
                    break  # the class may mix templates the check tells apart: regroup
                if ok:
                    out.extend(members)
            else:
                return sorted(out)
