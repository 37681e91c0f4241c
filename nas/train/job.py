"""A training run in a directory: what ``nas train`` does around the training loop.

The directory holds:

- ``config.json``: the run's identity (architecture hash, recipe, data fingerprint, initial
  weights) and the resolved execution plan; ``arch.json``: the trained architecture;
- ``checkpoint.pt``: after every epoch, atomically: model, optimiser, scheduler, gradient scaler,
  EMA, history (no RNG state is needed: each epoch re-seeds from ``(seed, epoch)``);
- ``weights.pt``: the state dict after the last finished epoch (the EMA weights if the recipe
  keeps an average), ``best.pt``: the one of the epoch with the best test top-1 (selected on the
  test split, so its figure is optimistic; ``weights.pt``'s is not); both load with
  ``torch.load(weights_only=True)`` and go to ``nas export --weights``;
- ``metrics.json``: one record per epoch (training loss, learning rate, throughput, test top-1,
  top-5, loss) and a summary; ``curve.png``: training loss and test top-1 per epoch.

Started again with the same settings, a run resumes after its last finished epoch and ends with the
same weights as an uninterrupted run; other settings in the same directory are refused with a
message naming what differs. A run begun by a litenas whose architecture hashes covered every
argument resumes too (its identity's hash is the architecture's :func:`~nas.arch.legacy_hash`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from evaluators.training.engine import Diverged, EpochRecord, StepLoss, Trainer
from evaluators.training.plan import ExecutionPlan
from evaluators.training.recipe import TrainConfig
from evaluators.training.sources import BatchSource
from nas.arch import Arch, legacy_hash
from nas.io import JSONFileError, atomic_path, atomic_write_json, parse_json_object, read_json_file

__all__ = ["CHECKPOINT_FORMAT", "TrainRun", "file_digest"]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "litenas.train_checkpoint"
CHECKPOINT_VERSION = 1
RUN_FORMAT = "litenas.train_run"


def file_digest(path: str | Path) -> str:
    """16 hex digits of the SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}


def _save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key} {json.dumps(a)} -> {json.dumps(b)}")
    return out


class TrainRun:
    """Train ``model`` (an initialised network of ``arch``) in ``out`` (see the module docstring).

    ``identity_extra`` joins the identity (the initial weights' digest, the data request); the
    plan may change between a run and its resumption (another device), the identity may not.
    Without an ``arch`` (a supernet, named by ``label``) the run has no ``arch.json`` and, with
    ``evaluate=False``, no test metrics or ``best.pt``; ``step_loss`` goes to the
    :class:`~evaluators.training.engine.Trainer`.
    """

    def __init__(self, out: str | Path, arch: Arch | None, model: nn.Module, source: BatchSource,
                 recipe: TrainConfig, plan: ExecutionPlan, *, identity_extra: Mapping[str, Any] | None = None,
                 progress: bool = True, label: str | None = None, evaluate: bool = True,
                 step_loss: StepLoss | None = None):
        if recipe.epochs is None:
            raise ValueError("a training run is measured in epochs; give epochs, not steps")
        if arch is None and label is None:
            raise ValueError("a training run without an architecture needs a label")
        self.out = Path(out)
        self.arch, self.recipe, self.plan, self.source = arch, recipe, plan, source
        self.label = label or arch.hash()  # type: ignore[union-attr]
        self.evaluate = evaluate
        self.identity = {**({"arch": arch.hash()} if arch is not None else {}), "recipe": recipe.to_dict(),
                         "data": source.describe(), **dict(identity_extra or {})}
        self.trainer = Trainer(model, source, recipe, plan, progress=progress, desc=f"train {self.label}",
                               step_loss=step_loss)
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    # ------------------------------------------------------------------------ identity
    def _check_identity(self, stored: Mapping[str, Any], where: Path) -> None:
        if self.arch is not None and stored.get("arch") == legacy_hash(self.arch):
            stored = {**stored, "arch": self.arch.hash()}  # a run begun by a litenas with the old hashes
        diff = _differences(stored, self.identity)
        if diff:
            raise ValueError(f"{where} belongs to another training run ({'; '.join(diff[:6])}"
                             f"{'; ...' if len(diff) > 6 else ''}); use another --out, or the original settings "
                             "to resume it")

    def _start(self) -> None:
        config_path = self.out / "config.json"
        if config_path.exists():
            try:
                stored = read_json_file(config_path, "the config of a litenas training run")
            except JSONFileError as exc:
                raise JSONFileError(f"{exc}; use another --out") from None
            if stored.get("format") != RUN_FORMAT or not isinstance(stored.get("identity", {}), dict):
                raise ValueError(f"{config_path}: not a litenas training run; use another --out")
            self._check_identity(stored.get("identity", {}), config_path)
        elif self.out.exists() and any(self.out.iterdir()):
            raise ValueError(f"{self.out}: exists and is not a training run directory; use another --out")
        self.out.mkdir(parents=True, exist_ok=True)
        if self.arch is not None:
            self.arch.save(self.out / "arch.json")
        atomic_write_json(config_path, {
            "format": RUN_FORMAT, "identity": self.identity, "plan": self.plan.describe(),
            "budget": {"epochs": self.trainer.epochs, "steps_per_epoch": self.trainer.steps_per_epoch,
                       "total_steps": self.trainer.total_steps},
        })
        if self.checkpoint_path.exists():
            self._resume()

    def _resume(self) -> None:
        where = self.checkpoint_path
        try:
            blob = torch.load(where, map_location=self.plan.device, weights_only=True)
            meta = parse_json_object(blob["meta"], f"{where} (its metadata)", "a litenas training checkpoint")
        except JSONFileError as exc:
            raise JSONFileError(f"{exc}; delete it to start the run over") from None
        except Exception as exc:  # torch raises many kinds for a damaged file
            raise ValueError(f"{where}: not a readable training checkpoint ({type(exc).__name__}: {exc}); "
                             "delete it to start the run over") from None
        if meta.get("format") != CHECKPOINT_FORMAT or meta.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{where}: not a litenas training checkpoint (version {CHECKPOINT_VERSION})")
        self._check_identity(meta["identity"], where)
        self.trainer.load_state_dict(blob["trainer"])
        self.history, self.best = list(meta["history"]), meta["best"]
        logger.info("resuming %s after epoch %d", self.out, len(self.history))

    # -------------------------------------------------------------------------- epochs
    def _on_epoch(self, record: EpochRecord) -> None:
        row = record.to_dict()
        self.history.append(row)
        weights = _cpu_state(self.trainer.eval_model)
        if self.evaluate and (self.best is None or row["test_top1"] > self.best["test_top1"]):
            self.best = {"epoch": row["epoch"], "test_top1": row["test_top1"], "test_top5": row["test_top5"]}
            _save(weights, self.out / "best.pt")
        _save(weights, self.out / "weights.pt")
        meta = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "identity": self.identity,
                "history": self.history, "best": self.best}
        _save({"meta": json.dumps(meta), "trainer": self.trainer.state_dict()}, self.checkpoint_path)
        self._write_metrics()

    def summary(self) -> dict[str, Any]:
        """JSON-ready: where the files are, the last and best epochs, throughput, the plan."""
        last = self.history[-1] if self.history else None
        speeds = sorted(r["images_per_s"] for r in self.history)
        return {
            "out": str(self.out), "arch_hash": None if self.arch is None else self.arch.hash(), "label": self.label,
            "complete": len(self.history) >= self.trainer.epochs,
            "epochs_done": len(self.history), "epochs": self.trainer.epochs,
            "final": None if last is None else {k: last[k] for k in ("test_top1", "test_top5", "test_loss",
                                                                     "train_loss") if k in last},
            "best": self.best, "weights": str(self.out / "weights.pt"),
            "best_weights": str(self.out / "best.pt") if self.evaluate else None,
            "train_seconds": round(sum(r["seconds"] for r in self.history), 2),
            "median_images_per_s": speeds[len(speeds) // 2] if speeds else None, "plan": self.plan.describe(),
        }

    def _write_metrics(self) -> None:
        atomic_write_json(self.out / "metrics.json", {"epochs": self.history, "summary": self.summary()})
        self._plot()

    def _plot(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        epochs = [r["epoch"] + 1 for r in self.history]
        fig, ax = plt.subplots(figsize=(6, 3.6))
        ax.plot(epochs, [r["train_loss"] for r in self.history], "o-", color="tab:blue", label="train loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss", color="tab:blue")
        if self.evaluate:
            right = ax.twinx()
            right.plot(epochs, [r["test_top1"] for r in self.history], "s-", color="tab:red", label="test top-1")
            right.set_ylabel("test top-1 (%)", color="tab:red")
        ax.set_title(f"{self.label} on {self.source.name}")
        fig.tight_layout()
        with atomic_path(self.out / "curve.png") as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)

    # ----------------------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        """Train the remaining epochs (resuming if a checkpoint exists); the summary."""
        self._start()
        start = len(self.history)
        if start < self.trainer.epochs:
            try:
                self.trainer.fit(start_epoch=start, evaluate="each" if self.evaluate else "none",
                                 on_epoch=self._on_epoch)
            except Diverged as exc:
                kept = (f"the checkpoint after epoch {len(self.history)} is kept in {self.checkpoint_path}"
                        if self.history else "no epoch finished, nothing was kept")
                raise ValueError(f"training diverged: {exc}; {kept}; lower --lr or raise --warmup-fraction") from None
        elif not (self.out / "metrics.json").exists():
            self._write_metrics()
        return self.summary()
