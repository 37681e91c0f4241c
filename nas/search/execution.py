"""The executor a search's settings ask for (:func:`make_executor`): in-process by default, Ray with
``--executor ray``. Apart from :mod:`nas.search.executors` so that the interface does not import its
Ray implementation (which imports it); Ray itself is imported only when asked for."""

from __future__ import annotations

from evaluators.base import Evaluator
from nas.search.executors import Executor, ExecutorConfig, InProcessExecutor

__all__ = ["make_executor"]


def make_executor(config: ExecutorConfig, evaluator: Evaluator) -> Executor:
    """The executor ``config.kind`` for ``evaluator``: the uncached evaluator (the runner looks
    results up in the cache and stores them itself). ``ValueError`` for an unreachable Ray address."""
    if config.kind == "ray":
        from nas.search.ray_executor import RayExecutor

        return RayExecutor(evaluator, address=config.ray_address, workers=config.workers,
                           num_cpus=config.num_cpus, num_gpus=config.num_gpus,
                           timeout_s=config.eval_timeout_s, max_retries=config.max_retries)
    return InProcessExecutor(evaluator)
