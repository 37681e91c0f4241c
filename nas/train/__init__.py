"""``nas train``: train an architecture (a file, a zoo name, a search's candidate) on a dataset
into a run directory, resumably, from scratch or from weights (fine-tuning, transfer).

:func:`train` is the whole job; :mod:`nas.train.job` owns the run directory and
:mod:`nas.train.data` the choice between in-memory and streamed data. The training loop is
:class:`evaluators.training.engine.Trainer`, the one the search's train evaluator runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from evaluators.train import build_seeded
from evaluators.training.engine import classifier_prefix
from evaluators.training.plan import plan_for
from evaluators.training.recipe import TrainConfig
from nas.arch import Arch
from nas.export.weights import ExportError, load_weights, read_checkpoint, state_dict_of
from nas.train.data import open_data
from nas.train.job import TrainRun, file_digest

__all__ = ["resolve_arch", "initial_model", "train"]


def resolve_arch(spec: str) -> Arch:
    """An architecture file (JSON or compact string; a search's ``top/rank01_*.json``) or a zoo
    name."""
    from search_spaces import zoo

    if Path(spec).expanduser().is_file():
        return Arch.load(Path(spec).expanduser())
    if spec in zoo.names():
        return zoo.get(spec)
    raise ValueError(f"ARCH {spec!r} is neither an architecture file nor a zoo name (see `nas zoo list`)")


def initial_model(arch: Arch, seed: int, *, init: str | None = None,
                  reset_classifier: bool = False) -> tuple[nn.Module, dict[str, Any] | None]:
    """A seeded network of ``arch``, with ``init``'s weights loaded (all of them, or all but the
    classifier when ``reset_classifier``), and the identity of those weights."""
    model = build_seeded(arch, seed)
    if init is None:
        return model, None
    try:
        state = state_dict_of(read_checkpoint(init), init)
        load_weights(model, state, f"--init {init}", skip=classifier_prefix(model) if reset_classifier else None)
    except ExportError as exc:
        raise ValueError(str(exc)) from None
    return model, {"path": str(Path(init).resolve()), "sha256": file_digest(init), "reset_classifier": reset_classifier}


def train(arch_spec: str | Arch, data: str, out: str | Path, recipe: TrainConfig, *, device: str = "cpu",
          precision: str = "auto", memory_format: str = "auto", compile: bool = False, threads: int | None = None,
          workers: int = 2, stream: bool | None = None, init: str | None = None, num_classes: int | None = None,
          train_per_class: int | None = None, test_per_class: int | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Train into ``out`` (resuming it if it holds this run); the run's summary."""
    arch = arch_spec if isinstance(arch_spec, Arch) else resolve_arch(arch_spec)
    if num_classes is not None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"--num-classes must be an integer >= 1, got {num_classes!r}")
        arch = arch.replace(num_classes=num_classes)
    if workers < 0:
        raise ValueError(f"--workers must be >= 0, got {workers}")
    plan = plan_for(device, precision=precision, memory_format=memory_format, compile=compile, threads=threads,
                    resolution=arch.resolution)
    source = open_data(data, arch, recipe, device=plan.device, stream=stream, workers=workers,
                       train_per_class=train_per_class, test_per_class=test_per_class, progress=progress)
    model, init_id = initial_model(arch, recipe.seed, init=init, reset_classifier=num_classes is not None)
    run = TrainRun(out, arch, model, source, recipe, plan, progress=progress,
                   identity_extra={"init": init_id, "subset": {"train_per_class": train_per_class,
                                                               "test_per_class": test_per_class}})
    return run.run()
