"""A versioned JSON dataset of networks trained stand-alone: what an accuracy predictor is fitted on
and what a ranking benchmark scores estimators against.

Every record says what was trained (the architecture, compact form, and its hash), on what (the
data's content fingerprint and sizes), how (the recipe), and what came out (test top-1, top-5,
wall time, where it was measured). Records are keyed by ``(arch hash, data fingerprint, recipe)``,
so the same network trained under another recipe is another record, and adding one that exists
replaces it. The file is rewritten atomically after every addition, so a long collection
(hours of training) loses nothing to a crash and resumes by skipping the keys it holds. Several
processes may add to one file at once (a benchmark split into shards, one per core): an addition
takes an exclusive lock on ``<file>.lock``, re-reads the file and merges before it writes, so no
process overwrites another's records.

Sources: the ranking benchmark, ``nas train`` runs (:func:`record_from_run`) and the search's train
evaluator results can all be collected into one file.

A record's hash is derived from its architecture. A file written by a litenas whose hashes covered
every argument holds the legacy hash (:func:`nas.arch.legacy_hash`); it loads under the current
hash, and the next :meth:`TrainedNets.add` writes the current one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nas.arch import Arch, legacy_hash
from nas.io import JSONFileError, atomic_write_json, exclusive_lock, read_json_file

__all__ = ["FORMAT", "VERSION", "TrainedNet", "TrainedNets", "record_from_run"]

FORMAT = "litenas.trained_nets"
VERSION = 1


def _recipe_key(recipe: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(dict(recipe), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class TrainedNet:
    """One stand-alone training result (see the module docstring)."""

    arch: str
    arch_hash: str
    data: dict[str, Any]
    recipe: dict[str, Any]
    top1: float
    top5: float | None = None
    seconds: float | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arch = Arch.from_str(self.arch)
        if arch.hash() != self.arch_hash:
            raise ValueError(f"record {self.arch_hash}: the architecture's hash is {arch.hash()}")
        if not isinstance(self.data, dict) or "fingerprint" not in self.data:
            raise ValueError(f"record {self.arch_hash}: data needs a 'fingerprint'")
        if not 0.0 <= float(self.top1) <= 100.0:
            raise ValueError(f"record {self.arch_hash}: top1 must be a percentage, got {self.top1!r}")

    @classmethod
    def of(cls, arch: Arch, data: Mapping[str, Any], recipe: Mapping[str, Any], top1: float, **rest: Any) -> TrainedNet:
        return cls(arch.to_str(), arch.hash(), dict(data), dict(recipe), float(top1), **rest)

    @property
    def key(self) -> str:
        """``arch_hash/data fingerprint/recipe digest``."""
        return f"{self.arch_hash}/{self.data['fingerprint']}/{_recipe_key(self.recipe)}"

    def to_arch(self) -> Arch:
        return Arch.from_str(self.arch)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrainedNets:
    """The dataset in a file: load it (or start empty), :meth:`add` records, iterate them."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._records: dict[str, TrainedNet] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        """Read the file's records into this object (records it holds already are replaced)."""
        data = read_json_file(self.path, "a litenas trained-networks file")
        if data.get("format") != FORMAT:
            raise JSONFileError(f"{self.path}: not a litenas trained-networks file (format {FORMAT!r})")
        if data.get("version") != VERSION:
            raise JSONFileError(f"{self.path}: version {data.get('version')!r}, this litenas reads version {VERSION}")
        rows = data.get("records", [])
        if not isinstance(rows, list):
            raise JSONFileError(f"{self.path}: field 'records': expected an array, got {type(rows).__name__}")
        for i, row in enumerate(rows):
            try:
                rec = TrainedNet(**_with_current_hash(row))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{self.path}: record {i}: {exc}") from None
            self._records[rec.key] = rec

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[TrainedNet]:
        return iter(self._records.values())

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def get(self, key: str) -> TrainedNet | None:
        return self._records.get(key)

    def add(self, record: TrainedNet) -> None:
        """Add (or replace) ``record`` and rewrite the file atomically, merged with what other
        processes added to it since it was read."""
        with exclusive_lock(self.path.with_name(self.path.name + ".lock")):
            if self.path.exists():
                self._load()
            self._records[record.key] = record
            atomic_write_json(self.path, {"format": FORMAT, "version": VERSION,
                                          "records": [r.to_dict() for r in self._records.values()]})

    def select(self, *, data_fingerprint: str | None = None, recipe: Mapping[str, Any] | None = None) -> list[TrainedNet]:
        """The records trained on that data and/or with that recipe."""
        digest = None if recipe is None else _recipe_key(recipe)
        return [r for r in self if (data_fingerprint is None or r.data["fingerprint"] == data_fingerprint)
                and (digest is None or _recipe_key(r.recipe) == digest)]


def _with_current_hash(row: Any) -> Any:
    """``row`` with a legacy ``arch_hash`` (that of its ``arch`` under the old hash) replaced by the
    current one; anything else is left for :class:`TrainedNet` to accept or refuse."""
    try:
        arch = Arch.from_str(row["arch"])
        return {**row, "arch_hash": arch.hash()} if row["arch_hash"] == legacy_hash(arch) else row
    except (KeyError, TypeError, ValueError):
        return row


def record_from_run(run_dir: str | os.PathLike[str]) -> TrainedNet:
    """The record of a finished ``nas train`` run directory (its last epoch's test figures); a
    directory whose files are missing or malformed is a ``ValueError`` naming the file."""
    run = Path(run_dir)
    config = read_json_file(run / "config.json", "the config of a `nas train` run")
    metrics = read_json_file(run / "metrics.json", "the metrics of a `nas train` run")
    summary = metrics.get("summary", {})
    if not isinstance(summary, dict) or not summary.get("complete"):
        done = summary if isinstance(summary, dict) else {}
        raise ValueError(f"{run}: the run is not finished ({done.get('epochs_done')}/{done.get('epochs')} epochs)")
    arch = Arch.load(run / "arch.json")
    try:
        identity, final = config["identity"], summary["final"]
        return TrainedNet.of(arch, identity["data"], identity["recipe"], final["test_top1"], top5=final["test_top5"],
                             seconds=summary["train_seconds"], source="nas train",
                             extra={"init": identity.get("init"), "subset": identity.get("subset")})
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{run}: not a finished `nas train` run (config.json or metrics.json: {exc!r})") from None
