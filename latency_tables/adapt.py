"""Adapt a latency table to this device in minutes: ``nas latency adapt --table T -n N --out NEW``.

Building a table measures every op configuration of a space (hours for ``mobile``@32); a user
with a new machine wants it to predict *there* after minutes. A new device is not a global
factor faster or slower: depthwise and dense convolutions, tiny and large maps, move by
different factors between CPUs (vector width, caches, memory bandwidth). So, as LitePred
(Feng et al., NSDI 2024) transfers a predictor with a few thousand samples, this measures ``N``
whole networks spread over the space's latency range
(:func:`latency_tables.validate.stratified_archs`), plus the zoo's fixed points at the table's
resolution (the networks searches are compared with), on this device with the table's harness,
and refits the table's calibration on them: by default ``auto``, which takes the per-op-class
model (:mod:`latency_tables.predict`: a scale per op class under a ridge penalty toward the
table's own relative op costs, ``lambda`` by leave-one-out) when it predicts left-out networks
better than the global models.

The entries stay those of the source device: only the calibration maps them here. Its metadata
records this device's fingerprint, the source (``adapted_from``), the probe timed here (what
``nas latency check`` compares with later, and the factor by which ``--measure-missing`` turns
an op timed here into the source's units: :func:`latency_tables.predict.source_units`) and the
leave-one-out figures of the fit. Validate it on other
networks (``nas latency validate --seed`` another than adapt's) for the honest figure.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from latency_tables.check import run_probe
from latency_tables.device import fingerprint
from latency_tables.measure import Settings, measure_archs
from latency_tables.predict import (
    LatencyPredictor,
    control_reference,
    fit_calibration,
    loo_predictions,
    measurement_records,
)
from latency_tables.table import LatencyTable, now_iso
from latency_tables.validate import metrics
from nas.arch import Arch

__all__ = ["adapt"]


def adapt(source: LatencyTable, archs: Sequence[Arch], fixed_points: dict[str, Arch] | None = None, *,
          method: str = "auto", harness: dict[str, Any] | None = None, passes: int = 3,
          control: bool = True, progress: bool = True) -> tuple[LatencyTable, dict[str, Any]]:
    """Measure ``archs`` and ``fixed_points`` here, refit ``source``'s calibration on them and
    return ``(adapted table, report)``; ``source`` is left as it was."""
    fixed = dict(fixed_points or {})
    nets = [("random", a) for a in archs] + [("zoo:" + name, a) for name, a in fixed.items()]
    if not nets:
        raise ValueError("adapting needs at least one network to measure")
    predictor = LatencyPredictor(source)
    feats = [predictor.features(a) for _, a in nets]
    before = [predictor.predict(a) for _, a in nets]
    settings = Settings(**source.settings_identity(), **(harness or {}))
    started = time.monotonic()
    control_ms: list[float] = []
    timings = measure_archs([a for _, a in nets], settings, passes=passes, progress=progress, desc="adapting",
                            control=control, control_ms=control_ms)
    probe = run_probe(source)
    seconds = time.monotonic() - started
    measured = [t.median_ms for t in timings]
    cal = fit_calibration(feats, measured, method, measurement_records([a for _, a in nets], feats, measured))
    cal = replace(cal, reference=control_reference([a for _, a in nets], control_ms))
    loo = loo_predictions(cal.method, feats, measured, ridge=cal.ridge)

    def figures(pred: Sequence[float], zoo: bool) -> dict[str, Any]:
        pick = [i for i, (kind, _) in enumerate(nets) if kind.startswith("zoo:") == zoo]
        return metrics([pred[i] for i in pick], [measured[i] for i in pick])

    report = {
        "created": now_iso(), "method": cal.method, "coef": cal.coef, "ridge": cal.ridge, "loo_mape": cal.loo_mape,
        "networks": len(archs), "fixed_points": sorted(fixed), "measure_seconds": round(seconds, 1),
        "before": {"random": figures(before, False), "fixed_points": figures(before, True)},
        "leave_one_out": {"random": figures(loo, False), "fixed_points": figures(loo, True)},
    }
    adapted = LatencyTable(copy.deepcopy(source.meta), source.entries, cal)
    here = fingerprint(source.meta["device"])
    origin = source.meta.get("adapted_from") or {
        "table": source.path.name if source.path else None, "device_name": source.meta["device_name"],
        "torch": source.meta["torch"], "fingerprint": source.meta.get("fingerprint"),
        "created": source.meta["created"]}
    adapted.meta.update({
        "device_name": here["device_name"], "torch": here["torch"], "fingerprint": here, "adapted_from": origin,
        "adapted": {k: v for k, v in report.items() if k not in ("coef", "loo_mape")},
        "probe": {"ms": probe, "created": report["created"]},
    })
    return adapted, report
