"""Predict a network's latency from a table: the sum of its ops' medians plus a calibrated
overhead term.

Why an overhead term: a network is not exactly the sum of its ops run alone. Between ops it pays
the ``nn.Sequential`` dispatch, and each op finds its weights colder in cache than when run back
to back in isolation (its input, just written by the previous op, is as warm as in the isolated
runs), so it waits for them to stream in from the last-level cache or memory: a cost that grows
with the network's weight count, and that weighs most at small input sizes, where the
activations are small and the ops short. The calibration fits, on whole networks measured on the
device, a linear model over features of an architecture: ``sum`` (the sum of the op medians,
ms), ``n_ops`` (layers, stem and head included), ``mparams`` (weights, millions) and ``const``.
Candidate models:

============  ==============================================  ==============================
method        model                                           meaning
============  ==============================================  ==============================
``none``      ``sum``                                         the raw sum
``offset``    ``sum + b``                                     a fixed per-network cost
``linear``    ``a * sum + b``                                 proportional + fixed
``per_op``    ``sum + c * n_ops + b``                         a fixed cost per op
``weights``   ``sum + w * mparams + b``                       streaming the weights in
``full``      ``a * sum + c * n_ops + w * mparams + b``       all of them

``per_class``  ``full + sum_c d_c * sum_c``                     a scale per op class
============  ==============================================  ==============================

Each is fitted by least squares on *relative* residuals (``(pred - measured) / measured``, the
quantity MAPE and the +-10% band judge), and ``auto`` keeps the one with the lowest
leave-one-out MAPE, so an extra parameter is only used when it predicts unseen networks better.

``per_class`` gives every op class (:func:`~latency_tables.table.op_class`: op name x map-size
bucket) seen in at least :data:`MIN_CLASS_NETWORKS` fitted networks its own scale ``a + d_c``,
the deviations ``d_c`` under a ridge penalty ``lambda * sum d_c^2`` that pulls them toward the
table's own relative op costs (all ``d_c = 0``). ``lambda`` is picked from :data:`RIDGE_GRID` by
leave-one-out MAPE, and that minimum is the model's leave-one-out figure (one of a few values
chosen on the same networks: slightly optimistic; validate on other networks for the honest
one). It is the model :mod:`latency_tables.adapt` fits when a table moves to another device.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from latency_tables.measure import Settings, control_arch, measure_archs, measure_ops
from latency_tables.table import (
    CALIBRATION_FEATURES,
    CLASS_PREFIX,
    Calibration,
    LatencyTable,
    MissingKeyError,
    Timing,
    now_iso,
    op_class,
)
from nas.arch import Arch
from search_spaces.registry import OpConfig

# method -> (features with a fitted coefficient, whether ``sum`` enters with coefficient 1 fixed)
METHODS: dict[str, tuple[tuple[str, ...], bool]] = {
    "none": ((), True),
    "offset": (("const",), True),
    "linear": (("sum", "const"), False),
    "per_op": (("n_ops", "const"), True),
    "weights": (("mparams", "const"), True),
    "full": (("sum", "n_ops", "mparams", "const"), False),
    "per_class": (("sum", "n_ops", "mparams", "const"), False),  # + ridge-penalised class deviations
}
FEATURES = CALIBRATION_FEATURES
RIDGE_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
"""Penalties ``per_class`` chooses among (relative residuals; a class's deviation ``d`` costs
``lambda * d^2``, against a squared relative error per network)."""
MIN_CLASS_NETWORKS = 3
"""An op class gets its own scale only when this many fitted networks contain it."""

__all__ = ["METHODS", "FEATURES", "RIDGE_GRID", "Fit", "features", "op_params", "fit", "fit_calibration",
           "loo_predictions", "LatencyPredictor", "op_control", "source_units", "measurement_records", "control_reference",
           "calibrate"]


@dataclass(frozen=True)
class Fit:
    """One fitted calibration model: its coefficients, its MAPE (%) on the fitted data and, for
    ``per_class``, the ridge penalty it was fitted under."""

    coef: dict[str, float]
    fit_mape: float
    ridge: float | None = None


def _classes(feats: Sequence[dict[str, float]]) -> list[str]:
    """The ``sum:<class>`` features present (> 0) in at least :data:`MIN_CLASS_NETWORKS` networks."""
    counts: dict[str, int] = {}
    for f in feats:
        for k, v in f.items():
            if k.startswith(CLASS_PREFIX) and v > 0:
                counts[k] = counts.get(k, 0) + 1
    return sorted(k for k, c in counts.items() if c >= MIN_CLASS_NETWORKS)


def fit(method: str, feats: Sequence[dict[str, float]], measured: Sequence[float], *,
        ridge: float | None = None) -> Fit:
    """Fit one calibration model (see the module doc) by relative least squares; ``per_class``
    under penalty ``ridge`` (default: the middle of :data:`RIDGE_GRID`)."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(METHODS)}")
    names, sum_fixed = METHODS[method]
    y = np.asarray(measured, dtype=np.float64)
    if y.size == 0 or np.any(y <= 0):
        raise ValueError("calibration needs at least one measurement, all > 0")
    base = np.array([f["sum"] for f in feats]) if sum_fixed else np.zeros_like(y)
    coef = {"sum": 1.0} if sum_fixed else {}
    classes = _classes(feats) if method == "per_class" else []
    lam = (RIDGE_GRID[len(RIDGE_GRID) // 2] if ridge is None else ridge) if method == "per_class" else None
    if names:
        if y.size < len(names):
            raise ValueError(f"method {method!r} needs at least {len(names)} measured networks, got {y.size}")
        cols = [*names, *classes]
        x = np.array([[f.get(n, 0.0) for n in cols] for f in feats], dtype=np.float64) / y[:, None]
        target = (y - base) / y
        if classes:  # ridge rows: sqrt(lambda) * d_c = 0
            penalty = np.zeros((len(classes), len(cols)))
            penalty[:, len(names):] = np.sqrt(lam) * np.eye(len(classes))
            x = np.vstack([x, penalty])
            target = np.concatenate([target, np.zeros(len(classes))])
        sol, *_ = np.linalg.lstsq(x, target, rcond=None)
        coef.update({n: float(v) for n, v in zip(cols, sol, strict=True)})
    pred = np.array([predict_from(coef, f) for f in feats])
    return Fit(coef, float(np.mean(np.abs(pred - y) / y) * 100), lam)


def predict_from(coef: dict[str, float], feats: dict[str, float]) -> float:
    """``sum_f coef[f] * feats[f]`` (a class sum ``feats`` lacks counts 0)."""
    return float(sum(c * feats.get(name, 0.0) for name, c in coef.items()))


def loo_predictions(method: str, feats: Sequence[dict[str, float]], measured: Sequence[float], *,
                    ridge: float | None = None) -> list[float]:
    """Each network's prediction by ``method`` fitted on all the others (leave-one-out); NaN for
    all when there are too few networks to leave one out."""
    names, _ = METHODS[method]
    n = len(measured)
    if n <= len(names) + 1:
        return [float("nan")] * n
    out = []
    for i in range(n):
        keep = [j for j in range(n) if j != i]
        f = fit(method, [feats[j] for j in keep], [measured[j] for j in keep], ridge=ridge)
        out.append(predict_from(f.coef, feats[i]))
    return out


def _loo_mape(method: str, feats: Sequence[dict[str, float]], measured: Sequence[float],
              ridge: float | None = None) -> float:
    pred = np.array(loo_predictions(method, feats, measured, ridge=ridge))
    y = np.asarray(measured, dtype=np.float64)
    return float(np.mean(np.abs(pred - y) / y) * 100)


def _best_ridge(feats: Sequence[dict[str, float]], measured: Sequence[float]) -> tuple[float, float]:
    """``(lambda, leave-one-out MAPE)`` of the :data:`RIDGE_GRID` penalty that predicts
    left-out networks best."""
    scores = [(_loo_mape("per_class", feats, measured, lam), lam) for lam in RIDGE_GRID]
    finite = [s for s in scores if np.isfinite(s[0])]
    if not finite:
        return RIDGE_GRID[len(RIDGE_GRID) // 2], float("nan")
    mape, lam = min(finite)
    return lam, mape


def fit_calibration(feats: Sequence[dict[str, float]], measured: Sequence[float], method: str = "auto",
                    records: Sequence[dict[str, Any]] = ()) -> Calibration:
    """Fit ``method`` (or, for ``auto``, every method, keeping the lowest leave-one-out MAPE)."""
    if method != "auto" and method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; known: auto, {', '.join(METHODS)}")
    loo = {m: _loo_mape(m, feats, measured) for m in METHODS if m != "per_class"}
    ridge, loo["per_class"] = _best_ridge(feats, measured)
    if method == "auto":  # the best leave-one-out figure; the plain sum when none can be computed
        finite = {m: v for m, v in loo.items() if np.isfinite(v)}
        candidates = [*sorted(finite, key=finite.__getitem__), "none"]
    else:
        candidates = [method]
    for name in candidates:
        f = fit(name, feats, measured, ridge=ridge)
        # A model that predicts <= 0 ms for a network it was fitted on (a few networks, noisy
        # timings, a steep extrapolation) would be refused when the table is loaded: skip it.
        if all(predict_from(f.coef, x) > 0 for x in feats):
            return Calibration(name, f.coef, f.fit_mape, loo, list(records), now_iso(), f.ridge)
    raise ValueError(f"calibration method {method!r} predicts <= 0 ms for a network it was fitted on; measure more "
                     "networks (-n) or choose another --method")


def features(op_sum_ms: float, n_ops: int, params: int = 0,
             class_sums: dict[str, float] | None = None) -> dict[str, float]:
    """The calibration features of a network (``params``: its weight count; ``class_sums``: its
    op medians summed per :func:`~latency_tables.table.op_class`)."""
    out = {"sum": float(op_sum_ms), "n_ops": float(n_ops), "mparams": params / 1e6, "const": 1.0}
    out.update({CLASS_PREFIX + k: float(v) for k, v in (class_sums or {}).items()})
    return out


@functools.cache
def op_params(config: OpConfig) -> int:
    """Weights of one op configuration (built once per configuration and process)."""
    return sum(p.numel() for p in config.build().parameters())


class LatencyPredictor:
    """Latency of architectures from a :class:`~latency_tables.table.LatencyTable`.

    ``predict(arch)`` = the calibrated model over the arch's op medians (the plain sum when the
    table has no calibration), written per op (:meth:`~latency_tables.table.Calibration.op_cost`).
    An op configuration missing from the table raises
    :class:`~latency_tables.table.MissingKeyError` naming its key, unless ``measure_missing``:
    then it is measured on the spot with the table's settings and added to the table (in
    memory; :attr:`added` counts them, save the table to keep them). A table adapted from another
    device (:mod:`latency_tables.adapt`) refuses that: its entries were measured there.
    """

    def __init__(self, table: LatencyTable, *, measure_missing: bool = False):
        self.table = table
        self.measure_missing = measure_missing
        self.added = 0
        self._to_source = source_units(table) if measure_missing else 1.0

    def _fill_missing(self, arch: Arch) -> None:
        missing = [c for c in arch.op_configs() if c.key() not in self.table]
        if not missing:
            return
        harness = {k: v for k, v in self.table.meta.get("harness", {}).items() if k in Settings.__dataclass_fields__}
        settings = Settings(**self.table.settings_identity(), **harness)
        f = self._to_source
        # A table built here with a drift control: time them beside it, in its units (an adapted
        # table's control belongs to the source device; source_units converts instead).
        ctrl = None if "adapted_from" in self.table.meta else op_control(self.table)
        timings = measure_ops(missing, settings, control=ctrl[0] if ctrl else None, anchor_ms=ctrl[1] if ctrl else None)
        for cfg, t in zip(missing, timings, strict=True):
            self.table.add(cfg.key(), Timing(t.median_ms * f, t.p10_ms * f, t.p90_ms * f, t.n))
            self.added += 1

    def median(self, cfg: OpConfig) -> float:
        """The table's median of one op configuration (ms); a missing one raises
        :class:`~latency_tables.table.MissingKeyError` naming it."""
        return self.table.get(cfg.key()).median_ms

    def op_latencies(self, arch: Arch) -> list[tuple[OpConfig, float]]:
        """``(op configuration, median_ms)`` of every layer of ``arch``, stem first."""
        if self.measure_missing:
            self._fill_missing(arch)
        out = []
        for cfg in arch.op_configs():
            try:
                out.append((cfg, self.median(cfg)))
            except MissingKeyError as exc:
                if arch.resolution != self.table.resolution:
                    exc.hint += (f"; the architecture's input is {arch.resolution}px, "
                                 f"the table was measured for {self.table.resolution}px")
                raise
        return out

    def op_sum(self, arch: Arch) -> float:
        """Sum of the op medians of ``arch`` (ms), uncalibrated."""
        return float(sum(ms for _, ms in self.op_latencies(arch)))

    def features(self, arch: Arch, names: Sequence[str] = FEATURES) -> dict[str, float]:
        """Calibration features of ``arch``, per-class sums included; the weight count (which
        builds each op configuration once) only when ``names`` asks for ``mparams``."""
        lat = self.op_latencies(arch)
        params = sum(op_params(c) for c, _ in lat) if "mparams" in names else 0
        classes: dict[str, float] = {}
        for cfg, ms in lat:
            cls = op_class(cfg.op, cfg.in_size)
            classes[cls] = classes.get(cls, 0.0) + ms
        return features(sum(ms for _, ms in lat), len(lat), params, classes)

    def op_cost(self, cfg: OpConfig, median_ms: float | None = None) -> float:
        """One op's share of the calibrated prediction (ms); its table median unless given."""
        ms = self.median(cfg) if median_ms is None else median_ms
        cal = self.table.calibration
        if cal is None:
            return ms
        mparams = op_params(cfg) / 1e6 if cal.coef.get("mparams") else 0.0
        return cal.op_cost(op_class(cfg.op, cfg.in_size), ms, mparams)

    def op_cost_floor(self, cfg: OpConfig) -> float:
        """A lower bound of :meth:`op_cost` that needs no weight count where it can: a calibration
        that charges weights (a positive ``mparams`` coefficient) is taken without that charge,
        which would build every op to count its weights (seconds for the 17,000 ops of a
        ``mobile`` space, for a term worth hundredths of a millisecond in its fastest networks);
        otherwise :meth:`op_cost` itself."""
        cal = self.table.calibration
        if cal is None or cal.coef.get("mparams", 0.0) < 0:
            return self.op_cost(cfg)
        return cal.op_cost(op_class(cfg.op, cfg.in_size), self.median(cfg), 0.0)

    def predict(self, arch: Arch) -> float:
        """Predicted latency of ``arch`` in ms; a calibration that predicts <= 0 ms (a network
        far smaller than those it was fitted on) is a ``ValueError`` naming the table."""
        cal = self.table.calibration
        lat = self.op_latencies(arch)
        if cal is None:
            return float(sum(ms for _, ms in lat))
        ms = cal.constant + sum(self.op_cost(c, m) for c, m in lat)
        if not ms > 0:
            raise ValueError(f"{self.table.path or 'latency table'}: its calibration ({cal.method}) predicts {ms:.4g} ms "
                             f"(<= 0) for {arch.hash()}, whose ops sum to {sum(m for _, m in lat):.4g} ms; calibrate "
                             "the table on networks this small (nas latency calibrate)")
        return float(ms)

    __call__ = predict


def op_control(table: LatencyTable) -> tuple[OpConfig, float] | None:
    """The drift control a table's ops were timed beside (``meta["op_control"]``, see
    :mod:`latency_tables.build`): the op and its anchor time (ms); ``None`` for a table built
    without one. ``ValueError`` naming the table for a malformed record."""
    ref = table.meta.get("op_control")
    if ref is None:
        return None
    try:
        ms = float(ref["ms"])
        if not ms > 0 or not math.isfinite(ms):
            raise ValueError("ms must be a finite number > 0")
        return OpConfig.from_key(str(ref["key"])), ms
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{table.path or 'latency table'}: meta op_control is not a control op and its time "
                         f"({exc})") from None


def source_units(table: LatencyTable) -> float:
    """The factor that turns an op timed alone on this device into the units of ``table``'s
    entries: 1 for a table measured here; for an adapted one, the median ratio of the entries to
    the probe ops timed here when it was adapted (``meta["probe"]``). ``ValueError`` for an adapted
    table without such a probe."""
    if "adapted_from" not in table.meta:
        return 1.0
    probe = table.meta.get("probe", {}).get("ms", {}) if isinstance(table.meta.get("probe"), dict) else {}
    ratios = [table.get(k).median_ms / float(v) for k, v in probe.items() if k in table and float(v) > 0]
    if not ratios:
        raise ValueError(f"{table.path or 'latency table'}: adapted from another device without a probe of its ops "
                         "timed here, so ops measured here cannot be put in its units (adapt it again, or drop "
                         "--measure-missing)")
    return float(np.median(ratios))


def measurement_records(archs: Sequence[Arch], feats: Sequence[dict[str, float]],
                        measured: Sequence[float]) -> list[dict[str, Any]]:
    """What a calibration keeps of each network it was fitted on (to audit or re-fit it, and for
    ``nas latency check`` to time a few of them again)."""
    return [{"hash": a.hash(), "arch": a.to_str(), "n_ops": int(f["n_ops"]), "mparams": f["mparams"], "sum_ms": f["sum"],
             "class_sums": {k[len(CLASS_PREFIX):]: v for k, v in f.items() if k.startswith(CLASS_PREFIX)},
             "measured_ms": m} for a, f, m in zip(archs, feats, measured, strict=True)]


def calibrate(table: LatencyTable, archs: Sequence[Arch], *, method: str = "auto", measure_missing: bool = False,
              harness: dict[str, Any] | None = None, passes: int = 3, control: bool = True,
              progress: bool = True) -> Calibration:
    """Measure ``archs`` whole on this device with the table's settings (``passes`` times each,
    see :func:`latency_tables.measure.measure_archs`, with its drift ``control``), fit, store the calibration in ``table``
    (in memory) and return it."""
    if not archs:
        raise ValueError("calibration needs at least one architecture")
    settings = Settings(**table.settings_identity(), **(harness or {}))
    predictor = LatencyPredictor(table, measure_missing=measure_missing)
    feats = [predictor.features(a) for a in archs]
    control_ms: list[float] = []
    timings = measure_archs(archs, settings, passes=passes, progress=progress, desc="calibrating", control=control,
                            control_ms=control_ms)
    measured = [t.median_ms for t in timings]
    cal = fit_calibration(feats, measured, method, measurement_records(archs, feats, measured))
    table.calibration = replace(cal, reference=control_reference(archs, control_ms))
    return table.calibration


def control_reference(archs: Sequence[Arch], control_ms: Sequence[float]) -> dict[str, Any] | None:
    """What a calibration records of the drift control its networks were timed beside (``None``
    when they were timed without one): :attr:`~latency_tables.table.Calibration.reference`."""
    if not control_ms:
        return None
    return {"arch": control_arch(archs).to_str(), "ms": float(np.median(control_ms))}
