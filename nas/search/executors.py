"""Executors run evaluations; the runner (the driver) alone writes results.

An :class:`Executor` has ``slots`` concurrent evaluations; the runner keeps every slot busy,
asking the strategy for a new candidate as soon as one frees (asynchronous search).
:class:`InProcessExecutor` (the default, no Ray needed) evaluates one candidate at a time in this
process; :class:`~nas.search.ray_executor.RayExecutor` spreads them over a Ray cluster.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque

from evaluators.base import Evaluator, Result
from nas.arch import Arch


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
