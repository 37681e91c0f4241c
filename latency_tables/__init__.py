"""Measured latency tables: the shipped table files, their loader, and the tools that build,
calibrate and validate them.

- :func:`load` opens a shipped table by name (a ``*.json`` file in this package) or any table file
  by path; :func:`names` and :func:`list_tables` tell what is shipped (``nas latency list``).
- :mod:`latency_tables.table`: the file format (:class:`LatencyTable`).
- :mod:`latency_tables.measure`: the timing harness.
- :mod:`latency_tables.build`: ``python -m latency_tables build`` measures a space's ops.
- :mod:`latency_tables.predict`: sum of op medians + calibrated overhead (:class:`LatencyPredictor`).
- :mod:`latency_tables.validate`: whole-network measurements against predictions.

Nothing here imports Optuna, Ray or ptflops: a target device needs only torch and litenas's core.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from latency_tables.table import TABLE_FORMAT, LatencyTable, MissingKeyError, TableError, TableMismatchWarning

__all__ = ["load", "names", "list_tables", "LatencyTable", "TableError", "MissingKeyError", "TableMismatchWarning"]

_REPORT_SUFFIX = ".validation.json"


def _package_dir() -> Path:
    return Path(str(resources.files(__name__)))


def _shipped() -> dict[str, Path]:
    """Shipped table files by name (file stem), validation reports left out."""
    out = {}
    for p in sorted(_package_dir().glob("*.json")):
        if p.name.endswith(_REPORT_SUFFIX):
            continue
        try:
            head = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            head = {"format": TABLE_FORMAT}  # a broken table still shows up (and fails loudly on load)
        if isinstance(head, dict) and head.get("format") == TABLE_FORMAT:
            out[p.stem] = p
    return out


def names() -> list[str]:
    """Names of the shipped tables (for :func:`load`)."""
    return list(_shipped())


def load(name: str | os.PathLike[str], *, check_env: bool = True) -> LatencyTable:
    """A shipped table by name (see :func:`names`), or a table file by path.

    Raises ``ValueError`` for an unknown name (listing the shipped ones) and
    :class:`TableError` for a malformed file; with ``check_env``, a table measured on another
    device or torch version warns (:class:`TableMismatchWarning`).
    """
    key = str(name)
    if Path(key).suffix == ".json" or os.sep in key:  # a path: the shipped files need not be read
        return LatencyTable.load(key, check_env=check_env)
    shipped = _shipped()
    if key in shipped:
        return LatencyTable.load(shipped[key], check_env=check_env)
    if Path(key).exists():
        return LatencyTable.load(key, check_env=check_env)
    raise ValueError(f"no shipped latency table named {key!r}; shipped: {', '.join(shipped) or '(none)'}")


def list_tables() -> list[dict[str, Any]]:
    """One record per shipped table: what it was measured on, how many entries, its calibration
    and, when its ``NAME.validation.json`` report is shipped beside it, the validation figures."""
    records = []
    for name, path in _shipped().items():
        rec: dict[str, Any] = {"name": name, "path": str(path)}
        try:
            table = LatencyTable.load(path, check_env=False)
        except TableError as exc:
            rec["error"] = str(exc)
            records.append(rec)
            continue
        m = table.meta
        rec.update({
            "space": m.get("space"), "resolution": m["resolution"], "device": m["device"],
            "device_name": m["device_name"], "threads": m["threads"], "batch_size": m["batch_size"],
            "dtype": m["dtype"], "backend": m["backend"], "torch": m["torch"], "entries": len(table),
            "calibration": table.calibration.method if table.calibration else None,
        })
        report = path.with_name(name + _REPORT_SUFFIX)
        if report.exists():
            try:
                rec["validation"] = json.loads(report.read_text(encoding="utf-8"))["metrics"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                rec["validation_error"] = f"{report}: {exc}"
        records.append(rec)
    return records
