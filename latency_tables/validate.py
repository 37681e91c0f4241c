"""Validate a latency table: sample architectures, measure each whole network on this device,
and compare with the table's predictions.

Networks are drawn stratified over the space's latency range by default
(:func:`stratified_archs`): a random sample lies mostly mid-range, where a table is easiest to
get right, while a search with a tight or a loose budget ends at the extremes.

Reports MAPE, the share of networks predicted within +-5% and +-10%, Kendall's tau-b and
Spearman's rho (JSON), and draws predicted against measured latency with the +-10% band (PNG).
Zoo entries (fixed points, ``--zoo``) are measured too, marked on the plot and reported apart;
the headline figures are those of the random sample.

How much of a table's error is the machine's own noise: with ``rounds`` >= 2 every network is
measured in that many independent rounds (each its own ``passes``, in other orders, minutes
apart), the prediction is compared with the median over rounds, and the report's
``repeatability`` says how well the machine agrees with itself: the share of networks whose
slowest round is within 10% of their fastest, the median spread, and per network the round
figures (``metrics_per_round``: the table against each round alone, as a one-round
validation would have judged it). No table can be judged beyond that: where one round of a network is 12% off
another, "within +-10%" of either is partly luck. Runs on the target device::

    python -m latency_tables validate --table fbnet_224_cpu.json --space fbnet -n 100 --seed 0
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latency_tables.measure import Settings, combine_passes, control_arch, measure_archs
from latency_tables.predict import LatencyPredictor
from latency_tables.table import LatencyTable, now_iso
from nas.arch import Arch
from nas.io import atomic_path
from nas.rank_stats import kendall_tau, spearman_rho

REPORT_FORMAT = "litenas.latency_validation"
REPORT_VERSION = 1

log = logging.getLogger(__name__)

__all__ = ["metrics", "repeatability", "validate", "plot_report"]


# ---------------------------------------------------------------------------------------------
# Figures


def metrics(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, Any]:
    """MAPE (%), share within +-5% / +-10% (fractions), Kendall tau-b, Spearman rho, worst error."""
    p, m = np.asarray(predicted, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    if p.size == 0:
        return {"n": 0}
    rel = np.abs(p - m) / m
    return {
        "n": int(p.size),
        "mape_pct": float(np.mean(rel) * 100),
        "within_5pct": float(np.mean(rel <= 0.05)),
        "within_10pct": float(np.mean(rel <= 0.10)),
        "max_abs_error_pct": float(np.max(rel) * 100),
        "kendall_tau": kendall_tau(p, m) if p.size > 1 else float("nan"),
        "spearman_rho": spearman_rho(p, m) if p.size > 1 else float("nan"),
    }


def repeatability(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """How well repeated rounds of the same networks agree (records with ``rounds_ms``; ``{"n": 0}``
    without). A network's spread is ``slowest / fastest - 1`` over its rounds: under 10%, either
    round would have judged a perfect prediction of the other within +-10%. Returns the share of
    networks with a spread within 5% / 10%, the median and largest spread (%), and the median
    ratio of the last round to the first (a machine that sped up or slowed down in between)."""
    rows = [np.asarray(r["rounds_ms"], dtype=np.float64) for r in records if len(r.get("rounds_ms", ())) > 1]
    if not rows:
        return {"n": 0}
    spread = np.array([x.max() / x.min() - 1 for x in rows])
    return {"n": len(rows), "rounds": int(min(len(x) for x in rows)),
            "within_5pct": float(np.mean(spread <= 0.05)), "within_10pct": float(np.mean(spread <= 0.10)),
            "median_spread_pct": float(np.median(spread) * 100), "max_spread_pct": float(np.max(spread) * 100),
            "last_over_first": float(np.median([x[-1] / x[0] for x in rows]))}


# ---------------------------------------------------------------------------------------------
# Validation


def validate(
    table: LatencyTable,
    archs: Sequence[Arch],
    *,
    fixed_points: dict[str, Arch] | None = None,
    measure_missing: bool = False,
    harness: dict[str, Any] | None = None,
    passes: int = 3,
    rounds: int = 1,
    control: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Predict and measure ``archs`` (and ``fixed_points``) in ``rounds`` independent rounds of
    ``passes`` passes each, with the drift ``control`` of
    :func:`latency_tables.measure.measure_archs` (its spread over the chunks goes to the report's
    ``drift``; see also the module doc); return the report as a JSON-ready dict.

    A table whose calibration recorded its control (:attr:`Calibration.reference`) is validated
    in its own units: the same control network is timed beside every group and scaled to the time
    it had then, so a machine that runs 8% slower today than when the table was calibrated (a
    shared VM does, for minutes to hours) does not read as an 8% error of the table; the report's
    ``drift.speed_vs_table`` says how fast the machine ran against then."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    fixed = dict(fixed_points or {})
    predictor = LatencyPredictor(table, measure_missing=measure_missing)
    entries = [(f"random-{i}", "random", a) for i, a in enumerate(archs)]
    entries += [(name, "zoo", a) for name, a in fixed.items()]
    feats = [predictor.features(a) for _, _, a in entries]
    predicted = [predictor.predict(a) for _, _, a in entries]
    settings = Settings(**table.settings_identity(), **(harness or {}))
    control_ms: list[float] = []
    cal = table.calibration
    reference = cal.reference if control and cal is not None else None
    control_net = Arch.from_str(reference["arch"]) if reference else None
    per_round = [measure_archs([a for _, _, a in entries], settings, passes=passes, progress=progress,
                               desc="validating" if rounds == 1 else f"validating, round {r + 1}/{rounds}", seed=r,
                               control=control, control_net=control_net,
                               anchor_ms=reference["ms"] if reference else None, control_ms=control_ms)
                 for r in range(rounds)]
    records = []
    for i, ((name, kind, arch), f, pred) in enumerate(zip(entries, feats, predicted, strict=True)):
        t = combine_passes([timings[i] for timings in per_round])
        records.append({
            "name": name, "kind": kind, "hash": arch.hash(), "n_ops": int(f["n_ops"]), "mparams": f["mparams"],
            "sum_ms": f["sum"], "predicted_ms": pred, "measured_ms": t.median_ms, "p10_ms": t.p10_ms, "p90_ms": t.p90_ms,
            "n": t.n, "error_pct": (pred - t.median_ms) / t.median_ms * 100, "arch": arch.to_str(),
            **({"rounds_ms": [timings[i].median_ms for timings in per_round]} if rounds > 1 else {}),
        })

    def figures(kind: str, field: str) -> dict[str, Any]:
        rs = [r for r in records if r["kind"] == kind]
        return metrics([r[field] for r in rs], [r["measured_ms"] for r in rs])

    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "created": now_iso(),
        "table": str(table.path) if table.path else None,
        "table_meta": {k: v for k, v in table.meta.items() if k != "harness"},
        "calibration": None if cal is None else {"method": cal.method, "coef": cal.coef},
        "harness": {**settings.harness(), "passes": passes, "rounds": rounds, "control": control},
        "drift": None if not control_ms else {
            "control": (control_net or control_arch([a for _, _, a in entries])).hash(), "chunks": len(control_ms),
            "control_ms_min": min(control_ms), "control_ms_median": float(np.median(control_ms)),
            "control_ms_max": max(control_ms), "table_units": reference is not None,
            "speed_vs_table": None if reference is None else reference["ms"] / float(np.median(control_ms))},
        "metrics": figures("random", "predicted_ms"),
        "metrics_uncalibrated": figures("random", "sum_ms"),
        "metrics_fixed_points": figures("zoo", "predicted_ms"),
        "repeatability": {"random": repeatability([r for r in records if r["kind"] == "random"]),
                          "fixed_points": repeatability([r for r in records if r["kind"] == "zoo"])},
        "metrics_per_round": [] if rounds == 1 else [
            {kind: metrics([r["predicted_ms"] for r in records if r["kind"] == kind],
                           [r["rounds_ms"][k] for r in records if r["kind"] == kind]) for kind in ("random", "zoo")}
            for k in range(rounds)],
        "ops_measured_on_the_spot": predictor.added,
        "records": records,
    }


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """Scatter of predicted against measured latency with the +-10% band; fixed points marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = report["records"]
    rand = [r for r in recs if r["kind"] == "random"]
    zoo = [r for r in recs if r["kind"] == "zoo"]
    allv = [r[k] for r in recs for k in ("measured_ms", "predicted_ms")]
    lo, hi = min(allv) * 0.85, max(allv) * 1.15
    fig, ax = plt.subplots(figsize=(6.4, 6.0), dpi=120)
    xs = np.linspace(lo, hi, 50)
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="tab:green", alpha=0.15, label="+-10%")
    ax.plot(xs, xs, color="tab:green", lw=1)
    if rand:
        ax.scatter([r["measured_ms"] for r in rand], [r["predicted_ms"] for r in rand], s=14,
                   color="tab:blue", alpha=0.8, label=f"random ({len(rand)})")
    if zoo:
        ax.scatter([r["measured_ms"] for r in zoo], [r["predicted_ms"] for r in zoo], s=40, marker="*",
                   color="tab:red", label=f"fixed points ({len(zoo)})")
        for r in zoo:
            ax.annotate(r["name"], (r["measured_ms"], r["predicted_ms"]), fontsize=6,
                        xytext=(3, -3), textcoords="offset points")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted latency (ms)")
    meta, m = report["table_meta"], report["metrics"]
    title = (f"{meta.get('space', '?')} @{meta['resolution']}, {meta['device_name']}, {meta['threads']} thr, "
             f"batch {meta['batch_size']}")
    if m.get("n"):
        title += (f"\nMAPE {m['mape_pct']:.1f}%, within 10%: {m['within_10pct']:.0%}, "
                  f"tau {m['kendall_tau']:.3f}, rho {m['spearman_rho']:.3f}")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out
