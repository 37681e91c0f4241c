"""Training: the recipe, the execution plan, batch sources and the loop shared by ``nas train``,
the search's train evaluator and the benchmarks.

- :class:`TrainConfig` (:mod:`.recipe`): what is computed (optimiser, schedule, augmentation, EMA).
- :func:`plan_for` / :class:`ExecutionPlan` (:mod:`.plan`): how it runs (device, autocast,
  channels_last, compile, threads).
- :class:`InMemoryBatches` (:mod:`.sources`) and :class:`StreamingFolder` (:mod:`.stream`):
  where the batches come from.
- :class:`Trainer` (:mod:`.engine`): the loop, resumable at epoch boundaries.
"""

from evaluators.training.engine import Diverged, EpochRecord, Trainer
from evaluators.training.plan import ExecutionPlan, plan_for
from evaluators.training.recipe import TrainConfig
from evaluators.training.sources import BatchSource, InMemoryBatches
from evaluators.training.stream import StreamingFolder, should_stream

__all__ = ["BatchSource", "Diverged", "EpochRecord", "ExecutionPlan", "InMemoryBatches", "StreamingFolder",
           "TrainConfig", "Trainer", "plan_for", "should_stream"]
