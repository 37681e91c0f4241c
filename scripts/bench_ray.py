"""Ray executor throughput: evaluations per second with 1 and 2 workers, and in-process.

The evaluator is :class:`BurnEvaluator`, a deterministic, single-threaded pure-compute stand-in
that spends about ``--seconds`` of CPU per candidate (chained SHA-256), so the figure measures
the executor, not a model. Each measurement evaluates ``--budget`` distinct architectures of the
``fbnet`` space (32x32) through the :class:`~nas.search.executors.Executor` interface the way
the search runner drives it: every slot kept busy, a new candidate submitted as soon as one
finishes. The driver's own work per candidate in a real search (screening, the Optuna store) is
left out: it runs while the workers compute and bounds a search only when it takes about as long
as an evaluation.

One local Ray instance (2 CPUs) serves every Ray run; a warm-up first starts its worker
processes. The figures of each configuration are medians over ``--repeats`` runs (interleaved,
the machine being shared); ``speedup`` is 2 workers over 1. Beside evaluations per second the
table gives the mean time of one evaluation and the slot occupancy (see :class:`Measurement`):
together they tell the executor's overhead apart from cores taken by other processes, which bound
the speedup on a shared machine (the load average is printed too). Prints a table and a JSON line::

    python scripts/bench_ray.py            # about a minute on 2 idle cores
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import ray

from evaluators.base import BaseEvaluator, Evaluator, Metric
from nas.arch import Arch
from nas.search.executors import Executor, InProcessExecutor
from nas.search.ray_executor import RayExecutor
from search_spaces.spaces import get_space


class BurnEvaluator(BaseEvaluator):
    """A CPU-bound evaluator: ``rounds`` chained SHA-256 digests of the architecture hash; the
    last digest, scaled to [0, 100), is its ``top1``. Deterministic and single-threaded."""

    name = "burn"
    metrics = (Metric("top1", "max", "%", "a pseudo-accuracy derived from the architecture hash"),)

    def __init__(self, rounds: int):
        if rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {rounds}")
        self.rounds = rounds

    def config(self) -> dict[str, Any]:
        return {"rounds": self.rounds}

    def compute(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        digest = arch.hash().encode()
        for _ in range(self.rounds):
            digest = hashlib.sha256(digest).digest()
        return {"top1": int.from_bytes(digest[:4], "big") / 2**32 * 100}, {}


def calibrate(seconds: float) -> int:
    """SHA-256 rounds that take about ``seconds`` on one core of this machine (best of 3)."""
    probe = 200_000
    best = float("inf")
    for _ in range(3):
        digest = b"calibration"
        start = time.perf_counter()
        for _ in range(probe):
            digest = hashlib.sha256(digest).digest()
        best = min(best, time.perf_counter() - start)
    return max(1, round(probe * seconds / best))


def distinct_archs(n: int, seed: int = 0) -> list[Arch]:
    """``n`` distinct architectures of the ``fbnet`` space at 32x32."""
    space = get_space("fbnet", resolution=32, num_classes=10)
    rng = np.random.default_rng(seed)
    archs: dict[str, Arch] = {}
    while len(archs) < n:
        arch = space.sample(rng)
        archs.setdefault(arch.hash(), arch)
    return list(archs.values())


@dataclass(frozen=True)
class Measurement:
    """One run: evaluations per second, the mean wall time of one evaluation inside its worker,
    and the slot occupancy (evaluation time / (wall time x slots): 1.0 means no slot ever waited
    on the executor or the driver; a lower speedup at full occupancy means slower evaluations,
    i.e. cores shared with other processes)."""

    evals_per_s: float
    eval_s: float
    occupancy: float


def measure(executor: Executor, archs: list[Arch]) -> Measurement:
    """Run ``archs`` through ``executor``, every slot kept busy (then close it)."""
    queue = list(archs)
    seconds: list[float] = []
    slots = executor.slots
    start = time.perf_counter()
    try:
        while len(seconds) < len(archs):
            while queue and executor.in_flight < slots:
                executor.submit(len(archs) - len(queue), queue.pop())
            for _, result in executor.wait():
                if not result.ok:
                    raise RuntimeError(f"an evaluation failed: {result.reason}")
                seconds.append(result.info["seconds"])
    finally:
        executor.close()
    wall = time.perf_counter() - start
    return Measurement(len(archs) / wall, statistics.mean(seconds), sum(seconds) / (wall * slots))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=int, default=12, help="evaluations per run (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="runs per configuration (default %(default)s)")
    p.add_argument("--seconds", type=float, default=0.5, help="CPU seconds per evaluation (default %(default)s)")
    args = p.parse_args()
    if args.budget < 1 or args.repeats < 1 or args.seconds <= 0:
        p.error("--budget and --repeats must be >= 1, --seconds > 0")
    logging.basicConfig(level=logging.WARNING)
    evaluator = BurnEvaluator(calibrate(args.seconds))
    archs = distinct_archs(args.budget)
    runs: dict[str, Callable[[Evaluator], Executor]] = {
        "inprocess": InProcessExecutor,
        "ray, 1 worker": lambda ev: RayExecutor(ev, workers=1),
        "ray, 2 workers": lambda ev: RayExecutor(ev, workers=2),
    }
    results: dict[str, list[Measurement]] = {name: [] for name in runs}
    # A throwaway instance of this process: no token authentication, hence no ~/.ray/auth_token.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    load_before = os.getloadavg()[0]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        measure(runs["ray, 2 workers"](evaluator), archs[:4])  # warm-up: start both worker processes
        for _ in range(args.repeats):
            for name, make in runs.items():
                results[name].append(measure(make(evaluator), archs))
    finally:
        ray.shutdown()
    load_after = os.getloadavg()[0]
    median = {name: {field: statistics.median(getattr(m, field) for m in ms) for field in Measurement.__annotations__}
              for name, ms in results.items()}
    speedup = median["ray, 2 workers"]["evals_per_s"] / median["ray, 1 worker"]["evals_per_s"]
    print(f"{'executor':<16} {'evals/s':>8} {'s/eval':>7} {'occupancy':>9}  evals/s of each run")
    for name, ms in results.items():
        m = median[name]
        print(f"{name:<16} {m['evals_per_s']:>8.3f} {m['eval_s']:>7.3f} {m['occupancy']:>9.2f}  "
              + ", ".join(f"{x.evals_per_s:.3f}" for x in ms))
    print(f"speedup, 2 workers over 1: {speedup:.2f}x (1-min load average {load_before:.1f} before, "
          f"{load_after:.1f} after, on {os.cpu_count()} cores)")
    print(json.dumps({"benchmark": "ray_executor_throughput", "budget": args.budget, "repeats": args.repeats,
                      "seconds_per_eval": args.seconds, "rounds": evaluator.rounds,
                      "median": {k: {f: round(v, 4) for f, v in m.items()} for k, m in median.items()},
                      "runs_evals_per_s": {k: [round(m.evals_per_s, 4) for m in ms] for k, ms in results.items()},
                      "speedup_2_over_1": round(speedup, 3),
                      "load_avg_1min": [round(load_before, 2), round(load_after, 2)], "cpu_count": os.cpu_count()}))


if __name__ == "__main__":
    main()
