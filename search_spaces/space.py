"""Search spaces: finite sets of architectures spanned by categorical choices.

A :class:`SearchSpace` fixes a macro skeleton and offers, per layer or per stage (and globally),
a finite set of :class:`Choice` values. A *point* of the space is a tuple of choice indices, one
per choice in :attr:`SearchSpace.choices` order; :meth:`SearchSpace.decode` turns it into an
:class:`~nas.arch.Arch` and :meth:`SearchSpace.encode` recovers it from one. Every operation is
pure: randomness comes from a ``numpy.random.Generator`` (or an integer seed) passed in.

Three ideas keep the spaces of the literature exact:

- **Conditional choices** (as in hierarchical spaces, Tan et al., "MnasNet", CVPR 2019): a choice
  may depend on a parent choice and is *active* only while its parent is active and holds one of
  the listed values (the ops of the fourth layer of a stage exist only when the stage has four
  layers; an expansion ratio only when the op is an MBConv). Inactive choices hold index 0; that
  canonical form makes points and architectures correspond one to one where the space allows it.
- **Core and extra values**: the values sampling and mutation draw from (the *core*) may be a
  subset of a choice's values. The others are reachable by :meth:`~SearchSpace.encode` only: they
  let a superspace contain published networks exactly (an expansion of 2.3, a 1553-wide head)
  without proposing such oddities when it searches.
- **Validity**: a space may hold combinations that do not build (a mixed-kernel split that does
  not divide the channels). :meth:`~SearchSpace.decode` rejects those with a ``ValueError`` naming
  the layer, the operators only return valid points, and :meth:`~SearchSpace.size` counts valid
  points only.

Optuna (Akiba et al., KDD 2019) samplers see a space through :meth:`~SearchSpace.optuna_distributions`
and :meth:`~SearchSpace.from_optuna_params`, or define-by-run through :meth:`~SearchSpace.suggest`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from nas.arch import Arch, Block
from search_spaces.registry import OpConfig

if TYPE_CHECKING:  # pragma: no cover - typing only
    import optuna

__all__ = ["Choice", "EncoderError", "LayerwisePart", "Point", "SearchSpace", "as_rng", "check_fixed",
           "describe_block"]

Point = tuple[int, ...]
"""One index per choice of a space, in :attr:`SearchSpace.choices` order."""

# Bounded retries: rejection sampling of valid points, crossover attempts.
_MAX_TRIES = 200


def as_rng(rng: np.random.Generator | int) -> np.random.Generator:
    """``rng`` itself, or a fresh ``numpy.random.default_rng(seed)`` for an integer seed."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng must be a numpy.random.Generator or an integer seed, got {rng!r}")


class EncoderError(RuntimeError):
    """A space's encoder and decoder disagree: a bug in the space, never an answer to "is this
    network in the space?" (:meth:`SearchSpace.contains` lets it through)."""


@dataclass(frozen=True)
class Choice:
    """One categorical decision of a space.

    Attributes:
        name: unique within the space; also the Optuna parameter name.
        values: the options (any hashable values the space's decoder understands).
        labels: one short, unique string per value (Optuna choices, listings); ``str(value)``
            by default.
        parent: the name of the choice this one depends on (declared earlier), or ``None``.
        when: the parent's indices under which this choice is active.
        core: indices that sampling and mutation draw from (default: all values).
        doc: where the choice acts, for listings and error messages (``stage 2, layer 1``).
    """

    name: str
    values: tuple[Any, ...]
    labels: tuple[str, ...] = ()
    parent: str | None = None
    when: frozenset[int] = frozenset()
    core: tuple[int, ...] = ()
    doc: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise ValueError(f"choice {self.name!r}: needs at least one value")
        labels = tuple(self.labels) or tuple(str(v) for v in self.values)
        if len(labels) != len(self.values) or len(set(labels)) != len(labels):
            raise ValueError(f"choice {self.name!r}: needs one unique label per value")
        object.__setattr__(self, "labels", labels)
        core = tuple(self.core) or tuple(range(len(self.values)))
        if len(set(core)) != len(core) or not all(0 <= i < len(self.values) for i in core):
            raise ValueError(f"choice {self.name!r}: core indices must be distinct and in range, got {core}")
        object.__setattr__(self, "core", core)
        object.__setattr__(self, "when", frozenset(self.when))
        if (self.parent is None) != (not self.when):
            raise ValueError(f"choice {self.name!r}: a parent needs the indices it is active under, and vice versa")

    def __len__(self) -> int:
        return len(self.values)

    @property
    def where(self) -> str:
        """``name`` with its ``doc``, for messages."""
        return f"choice {self.name!r}" + (f" ({self.doc})" if self.doc else "")

    def index_of_label(self, label: Any) -> int:
        """The index of ``label``; ``ValueError`` listing the labels otherwise."""
        try:
            return self.labels.index(label)
        except ValueError:
            raise ValueError(f"{self.where}: {label!r} is not one of {', '.join(self.labels)}") from None


@dataclass(frozen=True)
class LayerwisePart:
    """What a space says of its layer-wise part (:meth:`SearchSpace.layerwise_part`): the point
    ``base`` holding every choice that stays fixed, the ``searched`` choices (one per layer, in
    network order) and the ``options`` each offers, a one-line ``coverage``, and whether the part
    is the ``whole`` space (so that bounds computed over it bound every network of the space)."""

    base: Point
    searched: tuple[str, ...]
    options: tuple[tuple[int, ...], ...]
    coverage: str
    whole: bool


class SearchSpace(ABC):
    """A finite set of architectures: a fixed skeleton and categorical choices.

    Subclasses declare their choices (passing them to ``__init__``) and implement
    :meth:`_decode`, :meth:`_encode`, :meth:`op_configs` and :meth:`skeleton`; spaces with
    combinations that do not build set ``always_valid = False`` and override :meth:`size`.
    """

    name: str = ""
    summary: str = ""
    paper: str = ""
    always_valid: bool = True
    task_options: tuple[str, ...] = ("resolution", "num_classes")
    """Constructor options that set the task (not searched): the input size where the space
    fixes it, and the number of classes."""

    def __init__(self, choices: Sequence[Choice]):
        index: dict[str, int] = {}
        parents: list[int] = []
        for i, c in enumerate(choices):
            if c.name in index:
                raise ValueError(f"{self.name}: choice {c.name!r} declared twice")
            if c.parent is not None:
                if c.parent not in index:
                    raise ValueError(f"{self.name}: choice {c.name!r} depends on {c.parent!r}, which must come first")
                parent = choices[index[c.parent]]
                if not all(0 <= j < len(parent) for j in c.when):
                    raise ValueError(f"{self.name}: choice {c.name!r} is active under out-of-range indices")
            index[c.name] = i
            parents.append(-1 if c.parent is None else index[c.parent])
        self._choices = tuple(choices)
        self._index = index
        self._parents = tuple(parents)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {len(self._choices)} choices>"

    # ---------------------------------------------------------------------------------- choices
    @property
    def choices(self) -> tuple[Choice, ...]:
        return self._choices

    def choice(self, name: str) -> Choice:
        """The choice called ``name``; ``ValueError`` listing the choices otherwise."""
        try:
            return self._choices[self._index[name]]
        except KeyError:
            raise ValueError(f"{self.name}: no choice {name!r}; choices: {', '.join(self._index)}") from None

    def _active_at(self, i: int, point: Sequence[int], active: Sequence[bool]) -> bool:
        p = self._parents[i]
        return p < 0 or (active[p] and point[p] in self._choices[i].when)

    def _build_point(self, pick: Callable[[int, Choice], int]) -> Point:
        """A point built choice by choice in tree order (parents first): ``pick(i, choice)`` gives
        the index of each active choice, an inactive one takes 0. Sampling, crossover, encoding
        and the Optuna bridges all walk the tree this way."""
        point: list[int] = []
        active: list[bool] = []
        for i, c in enumerate(self._choices):
            active.append(self._active_at(i, point, active))
            point.append(pick(i, c) if active[-1] else 0)
        return tuple(point)

    def active(self, point: Sequence[int]) -> tuple[bool, ...]:
        """Which choices are active at ``point``, or at a prefix of one (parents come first)."""
        out: list[bool] = []
        for i in range(len(point)):
            out.append(self._active_at(i, point, out))
        return tuple(out)

    def _check_point(self, point: Any) -> Point:
        """``point`` as a tuple after checking length, types, ranges and inactive zeros."""
        n = len(self._choices)
        if isinstance(point, (str, bytes)) or not isinstance(point, Sequence):
            raise ValueError(f"{self.name}: a point is a sequence of {n} choice indices, got {type(point).__name__}")
        if len(point) != n:
            names = ", ".join(c.name for c in self._choices[:4]) + (", ..." if n > 4 else "")
            raise ValueError(f"{self.name}: expected {n} choice indices (one per choice: {names}), got {len(point)}")
        out: list[int] = []
        active: list[bool] = []
        for i, (c, v) in enumerate(zip(self._choices, point, strict=True)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"{self.name}: {c.where}: index must be an integer, got {v!r}")
            v = int(v)
            if not 0 <= v < len(c):
                raise ValueError(f"{self.name}: {c.where}: index {v} is out of range 0..{len(c) - 1}")
            active.append(self._active_at(i, out, active))
            if not active[-1] and v != 0:
                parent = self._choices[self._parents[i]]
                raise ValueError(f"{self.name}: {c.where} is inactive (its parent {parent.name!r} is "
                                 f"{parent.labels[out[self._parents[i]]]!r}) and must be 0, got {v}")
            out.append(v)
        return tuple(out)

    def values(self, point: Sequence[int]) -> dict[str, Any]:
        """The values of the active choices of ``point``, by choice name."""
        return self._values(self._check_point(point))

    def _values(self, p: Point) -> dict[str, Any]:
        return {c.name: c.values[v] for c, v, a in zip(self._choices, p, self.active(p), strict=True) if a}

    def labels(self, point: Sequence[int]) -> dict[str, str]:
        """The labels of the active choices of ``point``, by choice name."""
        p = self._check_point(point)
        return {c.name: c.labels[v] for c, v, a in zip(self._choices, p, self.active(p), strict=True) if a}

    # ------------------------------------------------------------------------- decode / encode
    @abstractmethod
    def _decode(self, values: Mapping[str, Any]) -> Arch:
        """The architecture of the active choices' ``values`` (by name); may raise ``ValueError``."""

    @abstractmethod
    def _encode(self, arch: Arch) -> Mapping[str, int]:
        """Indices of the active choices that decode to ``arch``; ``ValueError`` naming the layer
        and the reason when ``arch`` is not a point."""

    def decode(self, point: Sequence[int]) -> Arch:
        """The architecture at ``point``.

        Raises ``ValueError`` for a wrong length, an out-of-range index, a non-zero inactive
        choice, or a combination that does not build (naming the layer and why).
        """
        p = self._check_point(point)
        try:
            return self._decode(self._values(p))
        except ValueError as exc:
            raise ValueError(f"{self.name}: {exc}") from None

    def encode(self, arch: Arch) -> Point:
        """The point whose :meth:`decode` is ``arch`` (the canonical one where several are).

        Raises ``ValueError`` saying which layer is outside the space and why.
        """
        if not isinstance(arch, Arch):
            raise ValueError(f"{self.name}: encode expects an Arch, got {type(arch).__name__}")
        indices = self._encode(arch)

        def given(_i: int, c: Choice) -> int:
            if c.name not in indices:
                raise EncoderError(f"{self.name}: {c.where}: the encoder gave no index")  # a subclass bug
            return indices[c.name]

        point = self._build_point(given)
        decoded = self.decode(point)
        if decoded != arch:  # the subclass's encoder and decoder disagree: a bug, say where
            raise EncoderError(f"{self.name}: the encoder's point decodes otherwise: {_first_difference(arch, decoded)}")
        return point

    def contains(self, arch: Arch) -> bool:
        """Whether ``arch`` is a point of the space. An encoder bug (:class:`EncoderError`) is
        raised, not taken for "no"."""
        try:
            self.encode(arch)
        except ValueError:
            return False
        return True

    def is_valid(self, point: Sequence[int]) -> bool:
        """Whether ``point`` is well formed and decodes to an architecture."""
        try:
            self.decode(point)
        except ValueError:
            return False
        return True

    # -------------------------------------------------------------------------------- counting
    def size(self, core_only: bool = False) -> int:
        """Exact number of points (``core_only``: of points using core values only).

        This default counts the assignments of the choice tree, every one valid; spaces with
        invalid combinations override it.
        """
        children: dict[int, list[int]] = {}
        for i, p in enumerate(self._parents):
            children.setdefault(p, []).append(i)

        def count(i: int) -> int:
            c = self._choices[i]
            total = 0
            for v in c.core if core_only else range(len(c)):
                n = 1
                for j in children.get(i, ()):
                    if v in self._choices[j].when:
                        n *= count(j)
                total += n
            return total

        return math.prod(count(i) for i in children.get(-1, ()))

    def log10_size(self, core_only: bool = False) -> float:
        """``log10`` of :meth:`size`, for display."""
        return math.log10(self.size(core_only))

    # ------------------------------------------------------------------------------- operators
    def sample_point(self, rng: np.random.Generator | int) -> Point:
        """A random valid point: every active choice drawn uniformly from its core values."""
        rng = as_rng(rng)
        for _ in range(_MAX_TRIES):
            point = self._build_point(lambda _i, c: int(c.core[rng.integers(len(c.core))]))
            if self.always_valid or self.is_valid(point):
                return point
        raise RuntimeError(f"{self.name}: no valid point in {_MAX_TRIES} draws; the core values are inconsistent")

    def sample(self, rng: np.random.Generator | int) -> Arch:
        """A random architecture of the space (see :meth:`sample_point`)."""
        return self.decode(self.sample_point(rng))

    def _refill(self, point: list[int], old: Point, start: int, rng: np.random.Generator) -> Point:
        """Fix the choices after ``start`` once ``point[start]`` changed: those still active keep
        their value, newly active ones are drawn from their core, inactive ones go to 0."""
        old_active = self.active(old)
        active = list(self.active(point[:start + 1]))
        for i in range(start + 1, len(point)):
            active.append(self._active_at(i, point, active))
            c = self._choices[i]
            if not active[-1]:
                point[i] = 0
            elif not old_active[i]:
                point[i] = int(c.core[rng.integers(len(c.core))])
        return tuple(point)

    def mutate_point(self, point: Sequence[int], rng: np.random.Generator | int) -> Point:
        """``point`` with exactly one active choice changed to another core value.

        Choices that the change activates are drawn from their core values and choices it
        deactivates go to 0; every other choice keeps its value. The result is valid and decodes
        to a different architecture. Raises ``ValueError`` if no such change exists.
        """
        rng = as_rng(rng)
        p = self._check_point(point)
        before = self.decode(p)
        active = self.active(p)
        order = [i for i in range(len(p)) if active[i] and any(v != p[i] for v in self._choices[i].core)]
        for i in rng.permutation(order):
            alternatives = [v for v in self._choices[i].core if v != p[i]]
            for v in rng.permutation(alternatives):
                q = list(p)
                q[i] = int(v)
                q = self._refill(q, p, int(i), rng)
                try:
                    after = self.decode(q)
                except ValueError:
                    continue
                if after != before:
                    return q
        raise ValueError(f"{self.name}: no single-choice change of this point gives another valid architecture")

    def mutate(self, arch: Arch, rng: np.random.Generator | int) -> Arch:
        """``arch`` with one choice changed (see :meth:`mutate_point`)."""
        return self.decode(self.mutate_point(self.encode(arch), rng))

    def crossover_points(self, a: Sequence[int], b: Sequence[int], rng: np.random.Generator | int) -> Point:
        """A child taking every active choice from one of the parents, chosen per choice by a
        fair coin (uniform crossover). A choice active in the child but inactive in the drawn
        parent comes from the other parent, where it is active. Invalid children are redrawn; if
        none is valid after a bounded number of draws, the child is a copy of a random parent."""
        rng = as_rng(rng)
        a, b = self._check_point(a), self._check_point(b)
        parents = (a, b)
        parent_active = (self.active(a), self.active(b))

        def inherit(i: int, _c: Choice) -> int:
            k = int(rng.integers(2))
            return parents[k if parent_active[k][i] else 1 - k][i]

        for _ in range(_MAX_TRIES):
            child = self._build_point(inherit)
            if self.always_valid or self.is_valid(child):
                return child
        return parents[int(rng.integers(2))]

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator | int) -> Arch:
        """A child of two architectures of the space (see :meth:`crossover_points`)."""
        return self.decode(self.crossover_points(self.encode(a), self.encode(b), rng))

    # ---------------------------------------------------------------------------------- optuna
    def optuna_distributions(self, core_only: bool = True) -> dict[str, optuna.distributions.CategoricalDistribution]:
        """One ``CategoricalDistribution`` of labels per choice, by choice name (for samplers
        that take a fixed search space, e.g. ``study.ask(fixed_distributions=...)``).
        Inactive choices are ignored by :meth:`from_optuna_params`."""
        from optuna.distributions import CategoricalDistribution

        return {
            c.name: CategoricalDistribution([c.labels[i] for i in (c.core if core_only else range(len(c)))])
            for c in self._choices
        }

    def point_from_labels(self, params: Mapping[str, Any]) -> Point:
        """The point whose active choices carry the labels in ``params`` (extra keys and the
        labels of inactive choices are ignored); ``ValueError`` for a missing or unknown label."""
        def labelled(_i: int, c: Choice) -> int:
            if c.name not in params:
                raise ValueError(f"{self.name}: {c.where}: missing (it is active)")
            return c.index_of_label(params[c.name])

        return self._build_point(labelled)

    def from_optuna_params(self, params: Mapping[str, Any]) -> Arch:
        """The architecture of an Optuna trial's ``params`` (labels by choice name)."""
        return self.decode(self.point_from_labels(params))

    def suggest_point(self, trial: optuna.trial.BaseTrial, core_only: bool = True) -> Point:
        """Define-by-run: suggest the active choices only, in order (a choice that a parent turned
        off is never a parameter of the trial, so a sampler never models it); the point."""
        def suggested(_i: int, c: Choice) -> int:
            options = [c.labels[j] for j in (c.core if core_only else range(len(c)))]
            return c.index_of_label(trial.suggest_categorical(c.name, options))

        return self._build_point(suggested)

    def suggest(self, trial: optuna.trial.BaseTrial, core_only: bool = True) -> Arch:
        """:meth:`suggest_point`, decoded. In a space with invalid combinations this raises
        ``ValueError`` for one (fail the trial)."""
        return self.decode(self.suggest_point(trial, core_only))

    # ------------------------------------------------------------------------ latency / display
    @abstractmethod
    def op_configs(self, resolution: int | None = None, *, core_only: bool = False) -> list[OpConfig]:
        """Every distinct op configuration (op, arguments, input shape) any point of the space
        produces at ``resolution`` (the space's own where it has one), sorted by key: exactly the
        entries a latency table for this space needs. ``core_only``: of the points that use core
        values only (what sampling and mutation reach)."""

    def min_cost(self, cost: Callable[[OpConfig], float], resolution: int | None = None, *,
                 core_only: bool = False) -> float | None:
        """The least ``sum of cost(op configuration)`` over the points of the space (stem and head
        included; ``cost`` not negative, such as a latency table's per-op prediction), or ``None``
        (the default) where the space cannot say without enumerating its points. Every space of
        the package overrides it with an exact answer from its structure (``fbnet``: each layer at
        its cheapest; ``mobile``, ``mnasnet``: dynamic programmes over their stages; ``hardnet``:
        stages that do not interact)."""
        return None

    @abstractmethod
    def skeleton(self) -> list[str]:
        """The fixed parts of the space, one line each (for ``nas space show``)."""

    def _conv_skeleton(self, stem_chs: int, stages: list[str], head_chs: int, dropout: float) -> list[str]:
        """:meth:`skeleton` of a space with the MobileNet macro skeleton: a stride-2 3x3 conv stem
        and a 1x1 conv head before pooling (FBNet, MnasNet), around one line per stage."""
        return [f"input {self.resolution}x{self.resolution}x3, {self.num_classes} classes",
                f"stem: conv 3x3 stride 2, {stem_chs} ch, ReLU", *stages,
                f"head: conv 1x1 {head_chs} ch, ReLU, pool, dropout {dropout}, linear"]

    def layerwise_part(self) -> LayerwisePart | None:
        """The part of the space a supernet can hold (:mod:`search_spaces.layerwise`): a chain of
        searched layers whose shapes do not depend on the choices; ``None`` where the space has
        none (its default)."""
        return None


def _first_difference(expected: Arch, got: Arch) -> str:
    """Where two architectures first differ (for an encoder/decoder disagreement)."""
    for name in ("resolution", "num_classes", "in_chans", "stem", "head"):
        if getattr(expected, name) != getattr(got, name):
            return f"field {name!r} decodes as {getattr(got, name)!r}, expected {getattr(expected, name)!r}"
    for i, (x, y) in enumerate(zip(expected.blocks, got.blocks, strict=False)):
        if x != y:
            return f"block {i} decodes as {describe_block(y)}, expected {describe_block(x)}"
    return f"{len(got.blocks)} blocks decode, expected {len(expected.blocks)}"


def describe_block(block: Block) -> str:
    """A block as its op and non-default arguments, for messages."""
    return f"{block.op} {block.non_default_args()}"


def check_fixed(space: str, arch: Arch, **fixed: Any) -> None:
    """Raise ``ValueError`` naming the first field of ``fixed`` (an :class:`Arch` field name and
    the value the space fixes it to) where ``arch`` differs."""
    for field, want in fixed.items():
        got = getattr(arch, field)
        if got != want:
            show = describe_block if isinstance(want, Block) else repr
            raise ValueError(f"{space}: {field} is {show(got)}, this space's is {show(want)}")
