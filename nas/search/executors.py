"""Executors run evaluations; the runner (the driver) alone writes results.

An :class:`Executor` has ``slots`` concurrent evaluations; the runner keeps every slot busy,
asking the strategy for a new candidate as soon as one frees (asynchronous search).
:class:`InProcessExecutor` (the default, no Ray needed) evaluates one candidate at a time in this
process; :class:`~nas.search.ray_executor.RayExecutor` spreads them over a Ray cluster.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from typing import ClassVar

from evaluators.base import Evaluator, Result
from nas.arch import Arch
from nas.settings import Component, setting

EXECUTORS = ("inprocess", "ray")


@dataclass(frozen=True)
class ExecutorConfig(Component):
    """Where a search's evaluations run: in this process, or as tasks of a Ray cluster with the
    resources each reserves. Every field may change when a run resumes."""

    title: ClassVar[str] = "where evaluations run"

    kind: str = setting("inprocess", "inprocess | ray", key="executor", volatile=True)
    ray_address: str | None = setting(
        None, "Ray cluster address (auto | HOST:PORT); none starts a local instance", volatile=True)
    workers: int = setting(1, "concurrent evaluations (ray executor)", volatile=True, range=(1, True, math.inf))
    num_cpus: float = setting(1.0, "CPUs per evaluation (ray executor)", volatile=True, range=(0, True, math.inf))
    num_gpus: float = setting(0.0, "GPUs per evaluation (ray executor)", volatile=True, range=(0, True, math.inf))
    eval_timeout_s: float | None = setting(
        None, "a candidate running longer fails (ray executor)", volatile=True, range=(0, False, math.inf))
    max_retries: int = setting(
        2, "re-submissions of an evaluation whose worker died (ray executor)", volatile=True,
        range=(0, True, math.inf))

    def check(self) -> None:
        if self.kind not in EXECUTORS:
            raise ValueError(f"executor: {self.kind!r} is not one of {', '.join(EXECUTORS)}")
        if self.kind == "inprocess" and self.workers != 1:
            raise ValueError("workers: more than 1 needs executor 'ray'")


class Executor(ABC):
    """Runs ``evaluator`` on submitted architectures; results come back through :meth:`wait`."""

    slots: int = 1

    @abstractmethod
    def submit(self, ticket: int, arch: Arch) -> None:
        """Start evaluating ``arch``; its result will come back tagged with ``ticket``."""

    @abstractmethod
    def wait(self) -> list[tuple[int, Result]]:
        """Block until at least one submitted evaluation is done; return the finished ones."""

    @property
    @abstractmethod
    def in_flight(self) -> int:
        """Submitted evaluations whose result has not been returned yet."""

    @abstractmethod
    def close(self) -> None:
        """Release resources (workers, connections); unfinished evaluations are dropped."""


class InProcessExecutor(Executor):
    """Evaluates in the calling process, one candidate at a time."""

    slots = 1

    def __init__(self, evaluator: Evaluator):
        self.evaluator = evaluator
        self._queue: deque[tuple[int, Arch]] = deque()

    def submit(self, ticket: int, arch: Arch) -> None:
        self._queue.append((ticket, arch))

    def wait(self) -> list[tuple[int, Result]]:
        if not self._queue:
            return []
        ticket, arch = self._queue.popleft()
        return [(ticket, self.evaluator.evaluate(arch))]

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        self._queue.clear()
