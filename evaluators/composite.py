"""Several evaluators as one (:class:`Composite`): a search's screen (table latency, complexity)
is one, each part cached on its own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from evaluators.base import Evaluator, Result
from evaluators.cache import Cached, ResultCache
from nas.arch import Arch

__all__ = ["Composite"]


class Composite(Evaluator):
    """Several evaluators as one: the metrics of all, in order, in one :class:`Result`.

    With a ``cache`` each part is cached on its own, so changing one part's settings (a longer
    training) does not invalidate the others (a latency prediction). Evaluation stops at the
    first failing part; the failed result keeps the metrics of the parts before it.
    """

    name = "composite"

    def __init__(self, evaluators: Sequence[Evaluator], *, cache: ResultCache | None = None):
        if not evaluators:
            raise ValueError("Composite needs at least one evaluator")
        for e in evaluators:
            if not isinstance(e, Evaluator):
                raise ValueError(f"Composite parts must be Evaluators, got {type(e).__name__}")
        names = [m.name for e in evaluators for m in e.metrics]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"metric names produced by more than one part: {', '.join(dupes)}")
        if cache is not None:
            evaluators = [e if isinstance(e, Cached) else Cached(e, cache) for e in evaluators]
        self.parts: tuple[Evaluator, ...] = tuple(evaluators)
        self.metrics = tuple(m for e in self.parts for m in e.metrics)

    def config(self) -> dict[str, Any]:
        return {"parts": [{"name": e.name, "config": e.config()} for e in self.parts]}

    def check(self, arch: Arch) -> None:
        for e in self.parts:
            e.check(arch)

    def evaluate(self, arch: Arch) -> Result:
        self.check(arch)
        metrics: dict[str, float] = {}
        info: dict[str, Any] = {}
        for e in self.parts:
            r = e.evaluate(arch)
            metrics.update(r.metrics)
            info[e.name] = r.info
            if not r.ok:
                return Result.failed(r.arch_hash, r.reason or "", retryable=r.retryable, metrics=metrics, info=info)
        return Result(arch.hash(), metrics, info=info)
