"""Does a latency table still fit this machine? ``nas latency check --table T``.

A table is only as good as the match between the machine that built it and the one it predicts
for. Two VMs that call themselves "AMD EPYC" can run the same op 15% apart; a new torch build or
another CPU generation moves every figure. Three checks, from cheap to thorough:

1. **Fingerprint** (instant): the CPU model, a digest of its feature flags, logical CPUs,
   BogoMIPS, the torch version and build, against those the table recorded
   (:func:`latency_tables.device.fingerprint`; tables built before it was recorded compare the
   device name and torch version only).
2. **Probe** (seconds): :data:`PROBE_OPS` op configurations of the table, spread over its range
   of medians, are timed here with the table's harness and compared with the figures recorded
   for them on the table's device (the entries themselves, or for an adapted table the probe
   timed when it was adapted); and the :data:`PROBE_NETWORKS` fastest networks the calibration
   was fitted on are timed again against what they took then. Ops alone are not enough: between
   two machines the ops of a table can agree within 5% while whole networks run 2x apart (the
   cost between ops, caches), which only whole networks show. Drifts are median ratios, in %.
3. **Networks** (``-n``, about a minute): whole networks spread over the space's latency range
   (:func:`latency_tables.validate.stratified_archs`) measured and compared with the table's
   predictions.

A table whose calibration recorded its drift control (:attr:`~latency_tables.table.Calibration.reference`:
a network and its median when the table was calibrated or adapted) is checked the way
``nas latency validate`` judges it: that network is timed beside every group of networks, its
median against the recorded one is the machine's speed now against then (``control_drift_pct``),
and the networks are scaled to the table's units, so their errors say whether the table's
*model* still fits this machine apart from its speed of the moment (a shared VM drifts 15-25% for
minutes at a time). The table fits when every drift measured (probe, recorded networks, control)
is at most :data:`FIT_PCT` and, with networks measured, their median error is within it as
well. ``nas search`` runs the first two (cached for a day
per table and machine, :func:`quick_check`) and warns when they fail; adapt a table that does
not fit with ``nas latency adapt``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import os
import statistics
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latency_tables.device import fingerprint
from latency_tables.measure import Settings, measure_archs, measure_ops
from latency_tables.predict import LatencyPredictor
from latency_tables.sampling import stratified_archs
from latency_tables.table import LatencyTable, TableMismatchWarning, now_iso
from latency_tables.validate import metrics
from nas.arch import Arch
from nas.io import atomic_write_json
from search_spaces.registry import OpConfig

log = logging.getLogger(__name__)

PROBE_OPS = 12
"""Op configurations the probe times."""
PROBE_NETWORKS = 3
"""Networks of the calibration records the cheap check times again."""
PROBE_SECONDS = 0.4
"""Sampling time per probe op at most (the probe takes about ``PROBE_OPS`` times this)."""
FIT_PCT = 10.0
"""The largest drift (%) at which a table still fits."""
CACHE_HOURS = 24.0
"""How long ``nas search`` trusts a probe of the same table on the same machine."""

__all__ = ["PROBE_OPS", "FIT_PCT", "probe_configs", "run_probe", "recorded_networks", "check", "quick_check",
           "warn_if_unfit", "verdict_line"]


def probe_configs(table: LatencyTable, k: int = PROBE_OPS) -> list[OpConfig]:
    """``k`` op configurations of ``table`` at evenly spaced quantiles of their medians (the same
    ones for the same table, wherever it runs); keys this registry cannot read are passed over."""
    ranked = sorted(table.entries, key=lambda key: (table.entries[key].median_ms, key))
    if not ranked:
        return []
    out: dict[str, OpConfig] = {}
    for q in np.linspace(0, len(ranked) - 1, min(k, len(ranked))):
        for key in ranked[int(round(q)):]:  # the nearest readable key at or above the quantile
            if key in out:
                continue
            try:
                out[key] = OpConfig.from_key(key)
                break
            except ValueError:
                continue
    return list(out.values())


def _probe_settings(table: LatencyTable) -> Settings:
    harness = {k: v for k, v in table.meta.get("harness", {}).items() if k in Settings.__dataclass_fields__}
    harness["max_seconds"] = min(float(harness.get("max_seconds", PROBE_SECONDS)), PROBE_SECONDS)
    harness["min_repeats"] = min(int(harness.get("min_repeats", 15)), 15)
    harness["max_repeats"] = max(harness["min_repeats"], int(harness.get("max_repeats", 60)))
    return Settings(**table.settings_identity(), **harness)


def run_probe(table: LatencyTable, configs: Sequence[OpConfig] | None = None) -> dict[str, float]:
    """Time the probe ops here with the table's settings: ``{key: median_ms}``."""
    configs = probe_configs(table) if configs is None else list(configs)
    return {c.key(): t.median_ms for c, t in zip(configs, measure_ops(configs, _probe_settings(table)), strict=True)}


def probe_reference(table: LatencyTable) -> dict[str, float]:
    """What the probe ops took on the table's device: the probe recorded when the table was
    adapted, else the entries."""
    recorded = table.meta.get("probe", {}).get("ms", {}) if isinstance(table.meta.get("probe"), dict) else {}
    return {k: float(v) for k, v in recorded.items()} or {k: e.median_ms for k, e in table.entries.items()}


def probe_drift(table: LatencyTable, measured: dict[str, float]) -> float | None:
    """Median of ``here / there`` over the probe ops, minus one, in percent (``None`` if none)."""
    ref = probe_reference(table)
    ratios = [ms / ref[k] for k, ms in measured.items() if k in ref and ref[k] > 0]
    return (statistics.median(ratios) - 1.0) * 100 if ratios else None


def recorded_networks(table: LatencyTable, k: int = PROBE_NETWORKS) -> list[tuple[Arch, float]]:
    """Up to ``k`` of the networks the table's calibration was fitted on, with the time measured
    for them then (ms): the fastest ones, so timing them again takes seconds. Records written
    before the architecture was kept in them are passed over."""
    cal = table.calibration
    out = []
    for rec in sorted(cal.records if cal else [], key=lambda r: float(r.get("measured_ms", math.inf))):
        try:
            out.append((Arch.from_str(str(rec["arch"])), float(rec["measured_ms"])))
        except (KeyError, ValueError, TypeError):
            continue
        if len(out) == k:
            break
    return out


def _measure(archs: Sequence[Arch], settings: Settings, passes: int, progress: bool,
             reference: dict[str, Any] | None, control_ms: list[float]) -> list[float]:
    """Median latency (ms) of each of ``archs`` measured here, beside the table's recorded control
    network and in its units when there is one (``reference``); ``control_ms`` receives the
    control's time in every group."""
    if not archs:
        return []
    return [t.median_ms for t in measure_archs(
        list(archs), settings, passes=passes, progress=progress, desc="checking", control_ms=control_ms,
        control_net=Arch.from_str(reference["arch"]) if reference else None,
        anchor_ms=reference["ms"] if reference else None)]


def check(table: LatencyTable, *, networks: int = 0, seed: int = 0, passes: int = 3,
          progress: bool = True) -> dict[str, Any]:
    """Run the checks (sampled networks only when ``networks`` > 0); a JSON-ready verdict.

    ``probe_drift_pct``: the op probe; ``recorded_drift_pct``: the calibration's fastest networks
    timed again (the cheap end-to-end check, where the table records them); ``control_drift_pct``:
    the calibration's control network now against its recorded median (``None`` for a table that
    recorded none; then ``table_units`` is false and networks are compared as measured);
    ``networks``: sampled networks against the table's predictions."""
    diffs = table.check_environment_diffs()
    measured = run_probe(table)
    drift = probe_drift(table, measured)
    settings = Settings(**table.settings_identity(), **{
        k: v for k, v in table.meta.get("harness", {}).items() if k in Settings.__dataclass_fields__})
    reference = table.calibration.reference if table.calibration else None
    control_ms: list[float] = []
    recorded = recorded_networks(table)
    rec_errors = [(now / then - 1.0) * 100 for now, (_, then) in
                  zip(_measure([a for a, _ in recorded], settings, 1, False, reference, control_ms), recorded,
                      strict=True)]
    out: dict[str, Any] = {
        "table": str(table.path) if table.path else None, "created": now_iso(),
        "table_device": table.meta["device_name"], "this_device": fingerprint(table.meta["device"]),
        "fingerprint_differences": diffs, "probe_ops": len(measured), "probe_drift_pct": drift,
        "recorded_networks": len(recorded),
        "recorded_drift_pct": float(statistics.median(rec_errors)) if rec_errors else None,
        "table_units": reference is not None,
    }
    networks_fit = True
    if networks > 0:
        space = table.meta.get("space")
        if not space:
            raise ValueError(f"{table.path}: the table names no search space, so no networks can be sampled; use -n 0")
        predictor = LatencyPredictor(table)
        archs = stratified_archs(space, table.resolution, networks, seed, predictor.op_sum,
                                 table.meta.get("num_classes"))
        predicted = [predictor.predict(a) for a in archs]
        got = _measure(archs, settings, passes, progress, reference, control_ms)
        out["networks"] = metrics(predicted, got)
        out["networks_median_error_pct"] = float(statistics.median((p - m) / m * 100 for p, m in zip(predicted, got,
                                                                                                       strict=True)))
        networks_fit = abs(out["networks_median_error_pct"]) <= FIT_PCT
    out["control_drift_pct"] = (float(statistics.median(control_ms)) / reference["ms"] - 1.0) * 100 \
        if reference and control_ms else None
    drifts = [d for d in (drift, out["recorded_drift_pct"], out["control_drift_pct"]) if d is not None]
    out["fits"] = bool(drifts) and all(abs(d) <= FIT_PCT for d in drifts) and networks_fit
    return out


def _check_cache_path() -> Path:
    root = Path(os.environ.get("LITENAS_CACHE_DIR") or Path.home() / ".cache" / "litenas")
    return root / "latency_checks.json"


def _table_digest(table: LatencyTable) -> str:
    body = json.dumps({"meta": {k: v for k, v in table.meta.items() if k != "updated"},
                       "n": len(table), "calibration": table.calibration.coef if table.calibration else None},
                      sort_keys=True, default=str)
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def quick_check(table: LatencyTable) -> dict[str, Any]:
    """Fingerprint and probe (no networks), cached for :data:`CACHE_HOURS` per table and machine
    in ``~/.cache/litenas/latency_checks.json`` (``LITENAS_CACHE_DIR``); what ``nas search`` runs."""
    key = _table_digest(table) + ":" + hashlib.sha256(
        json.dumps(fingerprint(table.meta["device"]), sort_keys=True).encode()).hexdigest()[:16]
    path = _check_cache_path()
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
        cache = cache if isinstance(cache, dict) else {}
    except (OSError, ValueError, RecursionError):
        cache = {}
    hit = cache.get(key)
    if isinstance(hit, dict) and isinstance(hit.get("created"), str):
        try:
            age = _dt.datetime.now(_dt.timezone.utc) - _dt.datetime.fromisoformat(hit["created"])
            if age.total_seconds() < CACHE_HOURS * 3600:
                return hit
        except ValueError:
            pass
    result = check(table, networks=0)
    cache[key] = result
    try:
        atomic_write_json(path, cache)
    except OSError:  # a read-only home: the check still ran
        pass
    return result


def warn_if_unfit(table: LatencyTable) -> dict[str, Any] | None:
    """Run :func:`quick_check` and warn (:class:`~latency_tables.table.TableMismatchWarning`) with
    :func:`verdict_line` when the table does not fit this machine; the result, or ``None`` when
    the check itself could not run (it never stops a search)."""
    if table.meta["device"] != "cpu" and not torch.cuda.is_available():
        log.warning("%s: measured on %s, which this machine lacks: not checked", table.path or "latency table",
                    table.meta["device"])
        return None
    try:
        result = {**quick_check(table), "table": str(table.path) if table.path else None}
    except (ValueError, OSError, RuntimeError) as exc:
        log.warning("%s: could not check the table against this machine (%s)", table.path or "latency table", exc)
        return None
    if not result["fits"]:
        warnings.warn(verdict_line(result), TableMismatchWarning, stacklevel=2)
    return result


def verdict_line(result: dict[str, Any]) -> str:
    """One line for a human: fits or not, and why."""
    where = result.get("table") or "latency table"
    parts = []
    if result["probe_drift_pct"] is not None:
        parts.append(f"probe ops take {result['probe_drift_pct']:+.1f}% vs the table's device")
    else:
        parts.append("no probe reference for this table's ops")
    if result.get("control_drift_pct") is not None:
        parts.append(f"its control network takes {result['control_drift_pct']:+.1f}% (this machine's speed now vs "
                     "the table's)")
    if result["recorded_drift_pct"] is not None:
        units = " in the table's units" if result.get("table_units") else ""
        parts.append(f"{result['recorded_networks']} calibration networks take {result['recorded_drift_pct']:+.1f}%"
                     f"{units}")
    if "networks" in result:
        m = result["networks"]
        parts.append(f"{m['n']} networks: median error {result['networks_median_error_pct']:+.1f}%, "
                     f"{m['within_10pct']:.0%} within +-10%")
    if result["fingerprint_differences"]:
        parts.append("differs: " + "; ".join(result["fingerprint_differences"]))
    if result["fits"]:
        return f"{where}: fits this machine ({', '.join(parts)})"
    return (f"{where}: does NOT fit this machine ({', '.join(parts)}); adapt it: "
            f"nas latency adapt --table {where} -n 40 --out ADAPTED.json")
