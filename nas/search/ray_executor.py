"""Evaluations as Ray tasks: one search spread over the cores of a machine or a Ray cluster.

The driver (the runner, :mod:`nas.search.runner`) stays the only writer of the durable store and
of the result cache; workers only compute. Each evaluation is one Ray task that runs the
*uncached* evaluator (a :class:`~evaluators.cache.Cached` one is unwrapped: workers never touch
the driver's cache, which may not even be on their file system). The evaluator is put in the
object store once and unpickled once per worker process (a supernet's weights travel once to
each worker, not with every task).

Failures:

- **A worker or node dies** (a crashed process, an out-of-memory kill, a lost node): the
  evaluation is submitted again by this executor, not by Ray, so each retry is logged and
  counted (:attr:`RayExecutor.retries`). After ``max_retries`` retries the candidate becomes a
  failed :class:`~evaluators.base.Result` naming the error; the search goes on.
- **A candidate hangs**: an evaluation still unfinished ``timeout_s`` seconds after it was
  submitted is cancelled (``ray.cancel(force=True)`` ends its worker process) and becomes a
  failed result. The clock includes the time a task waits for a free CPU, so size ``workers``
  to what the cluster can run at once.
- **The evaluator raises** (a bug, or a bad request from :meth:`Evaluator.check`): the error
  propagates to the driver, as it does in-process.

Timeouts and lost workers are marked ``retryable`` (they depend on the machine, not on the
candidate), so the result cache does not keep them.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import time
from dataclasses import dataclass

import ray
import ray.exceptions

from evaluators.base import Evaluator, Result
from evaluators.cache import Cached
from nas.arch import Arch
from nas.checks import is_int
from nas.search.executors import Executor

__all__ = ["RayExecutor"]

logger = logging.getLogger(__name__)

# Failures of the machinery rather than of the candidate: the evaluation is submitted again. A
# RayTaskError caused by one of these (ray.get raises it as an instance of its cause) is caught too.
# (Not RaySystemError: Ray also raises it for an evaluator the workers cannot unpickle, which no
# retry mends; it propagates, like any error of the evaluator.)
_LOST = (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.LocalRayletDiedError,
         ray.exceptions.ObjectLostError, ray.exceptions.OutOfMemoryError)

# How long the driver tries to open a TCP connection to HOST:PORT before calling it unreachable
# (ray.init itself retries an unreachable address for minutes).
_CONNECT_TIMEOUT_S = 5.0


_WORKER_EVALUATOR: dict[str, Evaluator] = {}
"""In a worker process: the evaluator of the search it serves, by its object-store id."""


def _evaluate(evaluator_ref: list[ray.ObjectRef], arch: Arch) -> Result:
    """The Ray task: one evaluation, in a worker process. The evaluator comes from the object store
    once per worker process, not once per task (the list keeps Ray from resolving the reference
    for every task): a supernet's weights or a dataset are unpickled once per worker."""
    ref = evaluator_ref[0]
    evaluator = _WORKER_EVALUATOR.get(ref.hex())
    if evaluator is None:
        _WORKER_EVALUATOR.clear()  # a long-lived worker that served an earlier search
        evaluator = _WORKER_EVALUATOR[ref.hex()] = ray.get(ref)
    return evaluator.evaluate(arch)


@dataclass(frozen=True)
class _Task:
    """An evaluation in flight: its runner ticket, candidate, attempt (1 = first) and deadline."""

    ticket: int
    arch: Arch
    attempt: int
    deadline: float | None


class RayExecutor(Executor):
    """Runs up to ``workers`` evaluations at once as Ray tasks (see the module docstring).

    Args:
        evaluator: the expensive evaluator (a :class:`Cached` one is unwrapped to its ``inner``).
        address: ``None`` starts a local Ray instance with ``ceil(workers * num_cpus)`` CPUs
            (unless ``RAY_ADDRESS`` is set, as inside ``ray job submit``: then that cluster);
            ``"auto"`` joins the cluster this machine belongs to; ``"HOST:PORT"`` joins the
            cluster whose head listens there. A Ray connection already open in this process is
            used as it is (and left open by :meth:`close`).
        workers: concurrent evaluations (:attr:`slots`).
        num_cpus, num_gpus: resources each evaluation reserves.
        timeout_s: an evaluation unfinished this long after submission fails (``None``: no limit).
        max_retries: re-submissions of an evaluation whose worker or node died.

    Raises:
        ValueError: a bad argument, a malformed or unreachable address.
    """

    def __init__(self, evaluator: Evaluator, *, address: str | None = None, workers: int = 1,
                 num_cpus: float = 1.0, num_gpus: float = 0.0, timeout_s: float | None = None,
                 max_retries: int = 2):
        if not isinstance(evaluator, Evaluator):
            raise ValueError(f"RayExecutor runs an Evaluator, got {type(evaluator).__name__}")
        if not is_int(workers) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        if num_cpus < 0 or num_gpus < 0:
            raise ValueError(f"num_cpus and num_gpus must be >= 0, got {num_cpus} and {num_gpus}")
        if timeout_s is not None and timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0 or None, got {timeout_s}")
        if not is_int(max_retries) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        self.evaluator = evaluator.inner if isinstance(evaluator, Cached) else evaluator
        self.slots = workers
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.retries = 0  # evaluations submitted again because their worker or node died
        self._owns_connection = _connect(address, math.ceil(workers * num_cpus) or 1)
        self._evaluator_ref = ray.put(self.evaluator)
        self._remote = ray.remote(_evaluate).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0,
                                                     name="litenas-evaluate")
        self._tasks: dict[ray.ObjectRef, _Task] = {}

    # --------------------------------------------------------------------------- Executor API
    def submit(self, ticket: int, arch: Arch) -> None:
        self.evaluator.check(arch)  # a bad request fails here, in the driver, as it does in-process
        self._launch(ticket, arch, attempt=1)

    def wait(self) -> list[tuple[int, Result]]:
        done: list[tuple[int, Result]] = []
        while self._tasks and not done:
            ready, _ = ray.wait(list(self._tasks), num_returns=1, timeout=self._time_to_deadline())
            if ready:  # collect every evaluation finished by now, not only the first
                ready, _ = ray.wait(list(self._tasks), num_returns=len(self._tasks), timeout=0)
            for ref in ready:
                finished = self._collect(ref)
                if finished is not None:
                    done.append(finished)
            done.extend(self._expire())
        return done

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def close(self) -> None:
        for ref in self._tasks:
            ray.cancel(ref, force=True)
        self._tasks.clear()
        if self._owns_connection and ray.is_initialized():
            ray.shutdown()
        self._owns_connection = False

    # -------------------------------------------------------------------------------- helpers
    def _launch(self, ticket: int, arch: Arch, attempt: int) -> None:
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        self._tasks[self._remote.remote([self._evaluator_ref], arch)] = _Task(ticket, arch, attempt, deadline)

    def _time_to_deadline(self) -> float | None:
        deadlines = [t.deadline for t in self._tasks.values() if t.deadline is not None]
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _collect(self, ref: ray.ObjectRef) -> tuple[int, Result] | None:
        """The result of a finished task, or ``None`` when its worker died and it was resubmitted."""
        task = self._tasks.pop(ref)
        try:
            return task.ticket, ray.get(ref)
        except _LOST as exc:
            h = task.arch.hash()
            cause = exc.cause if isinstance(exc, ray.exceptions.RayTaskError) and exc.cause is not None else exc
            error = f"{type(cause).__name__}: {_one_line(cause)}"
            if task.attempt > self.max_retries:
                logger.warning("evaluation of %s lost %d times, giving up: %s", h, task.attempt, error)
                return task.ticket, Result.failed(
                    h, f"ray: evaluation lost {task.attempt} times (max_retries={self.max_retries}); last: {error}",
                    retryable=True)
            self.retries += 1
            logger.warning("evaluation of %s lost (%s); retry %d of %d", h, error, task.attempt, self.max_retries)
            self._launch(task.ticket, task.arch, task.attempt + 1)
            return None

    def _expire(self) -> list[tuple[int, Result]]:
        """Cancel the evaluations past their deadline; their failed results."""
        now = time.monotonic()
        expired = [ref for ref, t in self._tasks.items() if t.deadline is not None and t.deadline <= now]
        out = []
        for ref in expired:
            task = self._tasks.pop(ref)
            ray.cancel(ref, force=True)
            logger.warning("evaluation of %s timed out after %g s; cancelled", task.arch.hash(), self.timeout_s)
            out.append((task.ticket, Result.failed(task.arch.hash(), f"ray: timed out after {self.timeout_s:g} s",
                                                   retryable=True)))
        return out


def _connect(address: str | None, local_cpus: int) -> bool:
    """Open this process's Ray connection (see :class:`RayExecutor`); whether it was opened here."""
    if ray.is_initialized():
        return False
    target = address if address is not None else os.environ.get("RAY_ADDRESS")
    if target is None:
        ray.init(num_cpus=local_cpus, include_dashboard=False)
        return True
    if target != "auto":
        _check_reachable(target)
    try:
        ray.init(address=target)
    except ConnectionError as exc:
        raise ValueError(f"ray_address {target!r}: cannot connect to a Ray cluster ({_one_line(exc)})") from None
    return True


def _check_reachable(address: str) -> None:
    """``ValueError`` unless ``address`` is ``HOST:PORT`` and something listens there."""
    host, _, port_text = address.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"ray_address must be 'auto' or HOST:PORT (the head node's GCS port, e.g. 10.0.0.5:6379), "
                         f"got {address!r}")
    try:
        socket.create_connection((host.strip("[]"), int(port_text)), timeout=_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise ValueError(f"ray_address {address!r}: no Ray cluster reachable there ({exc}); start one with "
                         f"`ray start --head` or give the address `ray status` reports") from None


def _one_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, without terminal colour codes, at most 300 characters."""
    lines = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    return lines[0][:300] if lines else repr(exc)
