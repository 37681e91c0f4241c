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
from nas.checks import is_int
from nas.export.weights import MODEL_FORMAT, ExportError, load_weights, read_checkpoint, state_dict_of
from nas.inherit import Inheritance, inherit
from nas.train.data import open_data
from nas.train.job import TrainRun, file_digest
from search_spaces import zoo

__all__ = ["resolve_arch", "inheritance_source", "initial_model", "train"]


def resolve_arch(spec: str) -> Arch:
    """An architecture file (JSON or compact string; a search's ``top/rank01_*.json``) or a zoo
    name."""
    if Path(spec).expanduser().is_file():
        return Arch.load(Path(spec).expanduser())
    if spec in zoo.names():
        return zoo.get(spec)
    raise ValueError(f"ARCH {spec!r} is neither an architecture file nor a zoo name (see `nas zoo list`)")


def inheritance_source(spec: str) -> tuple[Arch, dict[str, Any], Path]:
    """``(architecture, state dict, weights file)`` of an ``--init-from`` value: a litenas model
    file (``nas zoo import-weights``, ``nas export --format pt``), a ``nas train`` run directory,
    or a weights file beside its run's ``arch.json`` (``weights.pt``, ``best.pt``)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        path = path / "weights.pt"
        if not path.is_file():
            raise ValueError(f"--init-from {spec}: a directory without weights.pt (not a finished `nas train` run)")
    elif not path.is_file():
        hint = (f"; zoo entries carry no weights: import them (nas zoo import-weights {spec} --checkpoint FILE "
                "--out W.pt) and pass W.pt" if spec in zoo.names() else "")
        raise ValueError(f"--init-from {spec}: no such file or directory{hint}")
    try:
        data = read_checkpoint(path)
        state = state_dict_of(data, str(path))
        if data.get("format") == MODEL_FORMAT and isinstance(data.get("arch"), str):
            return Arch.from_json(data["arch"]), state, path
        if (path.parent / "arch.json").is_file():
            return Arch.load(path.parent / "arch.json"), state, path
    except ValueError as exc:  # ExportError, ArchError
        raise ValueError(f"--init-from {spec}: {exc}") from None
    raise ValueError(f"--init-from {spec}: a plain state dict without its description; pass a litenas model file "
                     "or a `nas train` run directory (its arch.json says which network the weights are for)")


def _inherited(model: nn.Module, arch: Arch, spec: str) -> tuple[Inheritance, dict[str, Any]]:
    """Copy into ``model`` what ``arch`` inherits from ``--init-from spec``; what was copied and
    the identity of the source."""
    source, state, path = inheritance_source(spec)
    try:
        result = inherit(arch, source, state, target_state=model.state_dict())
    except ValueError as exc:
        raise ValueError(f"--init-from {spec}: {exc}") from None
    model.load_state_dict(result.state)
    return result, {"path": str(path.resolve()), "sha256": file_digest(path), "arch": source.hash()}


def initial_model(arch: Arch, seed: int, *, init: str | None = None, init_from: str | None = None,
                  reset_classifier: bool = False) -> tuple[nn.Module, dict[str, Any] | None, Inheritance | None]:
    """A seeded network of ``arch``, with ``init``'s weights loaded (all of them, or all but the
    classifier when ``reset_classifier``) or with what it inherits from ``init_from``
    (:func:`nas.inherit.inherit`); the identity of those weights, and what was inherited."""
    if init is not None and init_from is not None:
        raise ValueError("--init and --init-from exclude each other: --init loads a network's own weights, "
                         "--init-from inherits another network's")
    model = build_seeded(arch, seed)
    if init_from is not None:
        inheritance, identity = _inherited(model, arch, init_from)
        return model, identity, inheritance
    if init is None:
        return model, None, None
    try:
        state = state_dict_of(read_checkpoint(init), init)
        load_weights(model, state, f"--init {init}", skip=classifier_prefix(model) if reset_classifier else None)
    except ExportError as exc:
        raise ValueError(str(exc)) from None
    return model, {"path": str(Path(init).resolve()), "sha256": file_digest(init),
                   "reset_classifier": reset_classifier}, None


def train(arch_spec: str | Arch, data: str, out: str | Path, recipe: TrainConfig, *, device: str = "cpu",
          precision: str = "auto", memory_format: str = "auto", compile: bool = False, threads: int | None = None,
          workers: int = 2, stream: bool | None = None, init: str | None = None, init_from: str | None = None,
          num_classes: int | None = None, train_per_class: int | None = None, test_per_class: int | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Train into ``out`` (resuming it if it holds this run); the run's summary, with
    ``init_from`` (what was inherited, :meth:`Inheritance.to_dict`) when inheriting."""
    arch = arch_spec if isinstance(arch_spec, Arch) else resolve_arch(arch_spec)
    if num_classes is not None:
        if not is_int(num_classes) or num_classes < 1:
            raise ValueError(f"--num-classes must be an integer >= 1, got {num_classes!r}")
        arch = arch.replace(num_classes=num_classes)
    if workers < 0:
        raise ValueError(f"--workers must be >= 0, got {workers}")
    plan = plan_for(device, precision=precision, memory_format=memory_format, compile=compile, threads=threads,
                    resolution=arch.resolution)
    source = open_data(data, arch, recipe, device=plan.device, stream=stream, workers=workers,
                       train_per_class=train_per_class, test_per_class=test_per_class, progress=progress)
    model, init_id, inheritance = initial_model(arch, recipe.seed, init=init, init_from=init_from,
                                                reset_classifier=num_classes is not None)
    # --init-from joins the identity only when given, so the runs before it resume unchanged.
    weights_id = {"init_from": init_id} if inheritance is not None else {"init": init_id}
    run = TrainRun(out, arch, model, source, recipe, plan, progress=progress,
                   identity_extra={**weights_id, "subset": {"train_per_class": train_per_class,
                                                            "test_per_class": test_per_class}})
    summary = run.run()
    if inheritance is not None:
        summary["init_from"] = {**weights_id["init_from"], **inheritance.to_dict()}
    return summary
