"""``nas supernet train``: train a weight-sharing supernet of a layer-wise space once, then score
any number of searches' candidates by their inherited weights (``nas search --evaluator supernet
--supernet DIR``): other latency targets and other latency tables (other devices) reuse it.

The run directory is a ``nas train`` one (:class:`~nas.train.job.TrainRun`: atomic checkpoint per
epoch, resumable with the same result, refuses other settings) holding the supernet's weights in
``weights.pt``; its ``config.json`` says which space, resolution and classes the supernet covers,
and :func:`evaluators.supernet.load_supernet` refuses a search of another one, naming both sides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from evaluators.datasets import Holdout, load_dataset
from evaluators.supernet import OneShotSupernet, sandwich_loss, supernet_view
from evaluators.training.plan import plan_for
from evaluators.training.recipe import TrainConfig
from nas.checks import is_int
from nas.train.data import open_data
from nas.train.job import TrainRun

__all__ = ["train_supernet"]

DEFAULT_HOLDOUT = Holdout()
"""A tenth of each class, seed 0: the default hold-out of a search."""


def train_supernet(space: str, resolution: int, data: str, out: str | Path, recipe: TrainConfig, *,
                   num_classes: int = 10, sandwich: bool = True, randoms: int = 2, distill: bool = True,
                   device: str = "cpu", precision: str = "auto", memory_format: str = "auto", compile: bool = False,
                   threads: int | None = None, workers: int = 2, train_per_class: int | None = None,
                   holdout: Holdout | None = DEFAULT_HOLDOUT, progress: bool = True) -> dict[str, Any]:
    """Train the supernet of ``space`` at ``resolution`` on ``data`` into ``out``; the summary.

    Each step runs one uniformly drawn path (SPOS) or, with ``sandwich``, the largest, the smallest
    and ``randoms`` random paths, the smaller ones learning from the largest (``distill``). The
    ``holdout`` images of the training split are left out: searches rank candidates on them
    (synthetic data has none to hold out)."""
    if not is_int(randoms) or randoms < 0:
        raise ValueError(f"--randoms must be an integer >= 0, got {randoms!r}")
    view = supernet_view(space, resolution, num_classes)
    holdout = None if data == "synthetic" or holdout is None else holdout.resolve(load_dataset(data, progress=progress))
    plan = plan_for(device, precision=precision, memory_format=memory_format, compile=compile, threads=threads,
                    resolution=resolution)
    source = open_data(data, view.arch([0] * len(view.layers)), recipe, device=plan.device, workers=workers,
                       train_per_class=train_per_class, holdout=holdout, progress=progress)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        supernet = OneShotSupernet(view)
    identity = {"space": space, "resolution": resolution, "num_classes": num_classes, "coverage": view.coverage,
                "holdout": holdout.to_dict() if holdout else None,
                "sandwich": sandwich, "randoms": randoms if sandwich else 0, "distill": distill and sandwich}
    loss = sandwich_loss(supernet, randoms=randoms, distill=distill, label_smoothing=recipe.label_smoothing) \
        if sandwich else None
    run = TrainRun(out, None, supernet, source, recipe, plan, identity_extra={"supernet": identity},
                   progress=progress, label=f"supernet {space}@{resolution}", evaluate=False, step_loss=loss)
    return run.run()
