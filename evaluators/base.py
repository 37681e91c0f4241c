"""The evaluator interface: an :class:`Evaluator` maps an :class:`~nas.arch.Arch` to named metrics.

Contract (every implementation follows it; ``tests/test_evaluators.py`` checks it):

- :attr:`Evaluator.metrics` declares the metrics an evaluator produces, each a :class:`Metric`
  with a direction (``"max"``: higher is better, ``"min"``: lower is better).
- :meth:`Evaluator.config` is a JSON-ready mapping of everything that changes the numbers (a
  training recipe, a dataset fingerprint, a latency table's identity); together with the
  architecture hash it is the cache key (:mod:`evaluators.cache`). Settings that do not change
  the numbers (a progress bar) stay out of it.
- :meth:`Evaluator.evaluate` never raises for a bad *candidate*: a candidate that raises, runs
  out of memory, or produces a non-finite metric yields a failed :class:`Result` carrying the
  reason, so a search goes on. A bad *request* (an architecture whose input shape or class count
  does not fit the evaluator's dataset) is a caller error and raises ``ValueError`` up front,
  from :meth:`Evaluator.check`.
- :class:`~evaluators.composite.Composite` runs several evaluators and merges their metrics into one
  result.
"""

from __future__ import annotations

import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from nas.arch import Arch

__all__ = ["Direction", "Metric", "Result", "Evaluator", "BaseEvaluator"]

logger = logging.getLogger(__name__)

Direction = Literal["max", "min"]


@dataclass(frozen=True)
class Metric:
    """A metric an evaluator produces: its name, whether higher (``max``) or lower (``min``) is
    better, its unit and a one-line description."""

    name: str
    direction: Direction
    unit: str = ""
    doc: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ValueError(f"metric name must be a non-empty identifier, got {self.name!r}")
        if self.direction not in ("max", "min"):
            raise ValueError(f"metric {self.name!r}: direction must be 'max' or 'min', got {self.direction!r}")

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b`` for this metric."""
        return a > b if self.direction == "max" else a < b


@dataclass(frozen=True)
class Result:
    """The outcome of evaluating one architecture.

    Attributes:
        arch_hash: :meth:`Arch.hash` of the evaluated architecture.
        metrics: metric name -> finite value (those computed before a failure, if any).
        ok: whether every requested metric was computed.
        reason: why it failed (``None`` when ``ok``).
        retryable: the failure depends on resources, not on the candidate (out of memory), so a
            cache does not keep it.
        info: JSON-ready extras (wall time, training history) that are not ranked on.
    """

    arch_hash: str
    metrics: dict[str, float] = field(default_factory=dict)
    ok: bool = True
    reason: str | None = None
    retryable: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ok and self.reason is not None:
            raise ValueError("a successful result has no failure reason")
        if not self.ok and not self.reason:
            raise ValueError("a failed result needs a reason")

    @classmethod
    def failed(cls, arch_hash: str, reason: str, *, retryable: bool = False,
               metrics: Mapping[str, float] | None = None, info: Mapping[str, Any] | None = None) -> Result:
        """A failed result with ``reason`` (and whatever metrics were computed before it)."""
        return cls(arch_hash, dict(metrics or {}), ok=False, reason=reason, retryable=retryable,
                   info=dict(info or {}))

    def __getitem__(self, name: str) -> float:
        try:
            return self.metrics[name]
        except KeyError:
            why = f" (failed: {self.reason})" if not self.ok else ""
            raise KeyError(f"no metric {name!r} in result of {self.arch_hash}{why}; "
                           f"has: {', '.join(self.metrics) or 'none'}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"arch_hash": self.arch_hash, "ok": self.ok, "reason": self.reason,
                "retryable": self.retryable, "metrics": dict(self.metrics), "info": dict(self.info)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        """Inverse of :meth:`to_dict`; a malformed mapping raises ``ValueError``."""
        try:
            metrics = {str(k): float(v) for k, v in data["metrics"].items()}
            return cls(str(data["arch_hash"]), metrics, ok=bool(data["ok"]), reason=data.get("reason"),
                       retryable=bool(data.get("retryable", False)), info=dict(data.get("info", {})))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a stored evaluator result ({exc!r})") from None


class Evaluator(ABC):
    """Maps an :class:`Arch` to the metrics in :attr:`metrics` (see the module docstring).

    Implementations set :attr:`name` and :attr:`metrics` and implement :meth:`config` and
    :meth:`evaluate`; most derive from :class:`BaseEvaluator`, which captures failures.
    """

    name: str
    metrics: tuple[Metric, ...]

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-ready settings that determine the numbers (part of the cache key)."""

    @abstractmethod
    def evaluate(self, arch: Arch) -> Result:
        """Score ``arch``; failures of the candidate come back as a failed :class:`Result`."""

    def check(self, arch: Arch) -> None:
        """Raise ``ValueError`` when ``arch`` cannot be a request to this evaluator at all."""
        if not isinstance(arch, Arch):
            raise ValueError(f"{self.name}: expected an Arch, got {type(arch).__name__}")

    def metric(self, name: str) -> Metric:
        """The declared :class:`Metric` called ``name``."""
        for m in self.metrics:
            if m.name == name:
                return m
        raise ValueError(f"{self.name} has no metric {name!r}; it produces: {', '.join(m.name for m in self.metrics)}")

    def __call__(self, arch: Arch) -> Result:
        return self.evaluate(arch)


class BaseEvaluator(Evaluator):
    """An evaluator that computes its metrics itself: implement :meth:`compute`.

    :meth:`evaluate` runs :meth:`check`, then :meth:`compute`, and turns an exception, an
    out-of-memory error or a non-finite metric into a failed :class:`Result`.
    """

    @abstractmethod
    def compute(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        """``(metrics, info)`` of ``arch``; may raise (the candidate then fails)."""

    def evaluate(self, arch: Arch) -> Result:
        self.check(arch)
        h = arch.hash()
        start = time.perf_counter()
        try:
            values, info = self.compute(arch)
        except (torch.OutOfMemoryError, MemoryError) as exc:
            logger.warning("%s: %s ran out of memory", self.name, h)
            return Result.failed(h, f"{self.name}: out of memory ({_one_line(exc)})", retryable=True)
        except Exception as exc:  # noqa: BLE001 - any failure of a candidate is a result, not a crash
            logger.warning("%s: %s failed: %s", self.name, h, _one_line(exc))
            return Result.failed(h, f"{self.name}: {type(exc).__name__}: {_one_line(exc)}")
        info = {"seconds": round(time.perf_counter() - start, 4), **info}
        missing = [m.name for m in self.metrics if m.name not in values]
        if missing:
            raise RuntimeError(f"{self.name} did not produce its declared metrics {missing}")  # implementation bug
        values = {m.name: float(values[m.name]) for m in self.metrics}
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        if bad:
            good = {k: v for k, v in values.items() if k not in bad}
            return Result.failed(h, f"{self.name}: non-finite {', '.join(f'{k}={values[k]}' for k in bad)}",
                                 metrics=good, info=info)
        return Result(h, values, info=info)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else repr(exc)
