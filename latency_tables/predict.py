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
============  ==============================================  ==============================

Each is fitted by least squares on *relative* residuals (``(pred - measured) / measured``, the
quantity MAPE and the +-10% band judge), and ``auto`` keeps the one with the lowest
leave-one-out MAPE, so an extra parameter is only used when it predicts unseen networks better.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from latency_tables.table import CALIBRATION_FEATURES, Calibration, LatencyTable, MissingKeyError, now_iso
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
}
FEATURES = CALIBRATION_FEATURES

__all__ = ["METHODS", "FEATURES", "Fit", "features", "op_params", "fit", "fit_calibration", "LatencyPredictor", "calibrate"]


@dataclass(frozen=True)
class Fit:
    """One fitted calibration model: its coefficients and its MAPE (%) on the fitted data."""

    coef: dict[str, float]
    fit_mape: float


def fit(method: str, feats: Sequence[dict[str, float]], measured: Sequence[float]) -> Fit:
    """Fit one calibration model (see the module doc) by relative least squares."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; known: {', '.join(METHODS)}")
    names, sum_fixed = METHODS[method]
    y = np.asarray(measured, dtype=np.float64)
    if y.size == 0 or np.any(y <= 0):
        raise ValueError("calibration needs at least one measurement, all > 0")
    base = np.array([f["sum"] for f in feats]) if sum_fixed else np.zeros_like(y)
    coef = {"sum": 1.0} if sum_fixed else {}
    if names:
        if y.size < len(names):
            raise ValueError(f"method {method!r} needs at least {len(names)} measured networks, got {y.size}")
        x = np.array([[f[n] for n in names] for f in feats], dtype=np.float64)
        sol, *_ = np.linalg.lstsq(x / y[:, None], (y - base) / y, rcond=None)
        coef.update({n: float(v) for n, v in zip(names, sol, strict=True)})
    pred = np.array([predict_from(coef, f) for f in feats])
    return Fit(coef, float(np.mean(np.abs(pred - y) / y) * 100))


def predict_from(coef: dict[str, float], feats: dict[str, float]) -> float:
    """``sum_f coef[f] * feats[f]``."""
    return float(sum(c * feats[name] for name, c in coef.items()))


def _loo_mape(method: str, feats: Sequence[dict[str, float]], measured: Sequence[float]) -> float:
    names, _ = METHODS[method]
    n = len(measured)
    if n <= len(names) + 1:
        return float("nan")
    errs = []
    for i in range(n):
        keep = [j for j in range(n) if j != i]
        f = fit(method, [feats[j] for j in keep], [measured[j] for j in keep])
        errs.append(abs(predict_from(f.coef, feats[i]) - measured[i]) / measured[i])
    return float(np.mean(errs) * 100)


def fit_calibration(feats: Sequence[dict[str, float]], measured: Sequence[float], method: str = "auto",
                    records: Sequence[dict[str, Any]] = ()) -> Calibration:
    """Fit ``method`` (or, for ``auto``, every method, keeping the lowest leave-one-out MAPE)."""
    if method != "auto" and method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; known: auto, {', '.join(METHODS)}")
    loo = {m: _loo_mape(m, feats, measured) for m in METHODS}
    if method == "auto":
        finite = {m: v for m, v in loo.items() if np.isfinite(v)}
        method = min(finite, key=finite.__getitem__) if finite else "none"
    f = fit(method, feats, measured)
    return Calibration(method, f.coef, f.fit_mape, loo, list(records), now_iso())


def features(op_sum_ms: float, n_ops: int, params: int = 0) -> dict[str, float]:
    """The calibration features of a network (``params``: its weight count)."""
    return {"sum": float(op_sum_ms), "n_ops": float(n_ops), "mparams": params / 1e6, "const": 1.0}


@functools.cache
def op_params(config: OpConfig) -> int:
    """Weights of one op configuration (built once per configuration and process)."""
    return sum(p.numel() for p in config.build().parameters())


class LatencyPredictor:
    """Latency of architectures from a :class:`~latency_tables.table.LatencyTable`.

    ``predict(arch)`` = the calibrated model over the sum of the arch's op medians (the plain sum
    when the table has no calibration). An op configuration missing from the table raises
    :class:`~latency_tables.table.MissingKeyError` naming its key, unless ``measure_missing``:
    then it is measured on the spot with the table's settings and added to the table (in
    memory; :attr:`added` counts them, save the table to keep them).
    """

    def __init__(self, table: LatencyTable, *, measure_missing: bool = False):
        self.table = table
        self.measure_missing = measure_missing
        self.added = 0

    def _fill_missing(self, arch: Arch) -> None:
        from latency_tables.measure import Settings, measure_ops

        missing = [c for c in arch.op_configs() if c.key() not in self.table]
        if not missing:
            return
        harness = {k: v for k, v in self.table.meta.get("harness", {}).items() if k in Settings.__dataclass_fields__}
        settings = Settings(**self.table.settings_identity(), **harness)
        for cfg, timing in zip(missing, measure_ops(missing, settings), strict=True):
            self.table.add(cfg.key(), timing)
            self.added += 1

    def op_latencies(self, arch: Arch) -> list[tuple[str, float]]:
        """``(key, median_ms)`` of every layer of ``arch``, stem first."""
        if self.measure_missing:
            self._fill_missing(arch)
        out = []
        for cfg in arch.op_configs():
            key = cfg.key()
            try:
                out.append((key, self.table.get(key).median_ms))
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
        """Calibration features of ``arch``; the weight count (which builds each op
        configuration once) only when ``names`` asks for ``mparams``."""
        lat = self.op_latencies(arch)
        params = sum(op_params(c) for c in arch.op_configs()) if "mparams" in names else 0
        return features(sum(ms for _, ms in lat), len(lat), params)

    def predict(self, arch: Arch) -> float:
        """Predicted latency of ``arch`` in ms; a calibration that predicts <= 0 ms (a network
        far smaller than those it was fitted on) is a ``ValueError`` naming the table."""
        cal = self.table.calibration
        if cal is None:
            return self.op_sum(arch)
        feats = self.features(arch, tuple(cal.coef))
        ms = cal.predict(feats)
        if not ms > 0:
            raise ValueError(f"{self.table.path or 'latency table'}: its calibration ({cal.method}) predicts {ms:.4g} ms "
                             f"(<= 0) for {arch.hash()}, whose ops sum to {feats['sum']:.4g} ms; calibrate the table "
                             "on networks this small (nas latency calibrate)")
        return ms

    __call__ = predict


def calibrate(table: LatencyTable, archs: Sequence[Arch], *, method: str = "auto", measure_missing: bool = False,
              harness: dict[str, Any] | None = None, passes: int = 3, progress: bool = True) -> Calibration:
    """Measure ``archs`` whole on this device with the table's settings (``passes`` times each,
    see :func:`latency_tables.measure.measure_archs`), fit, store the calibration in ``table``
    (in memory) and return it."""
    from latency_tables.measure import Settings, measure_archs

    if not archs:
        raise ValueError("calibration needs at least one architecture")
    settings = Settings(**table.settings_identity(), **(harness or {}))
    predictor = LatencyPredictor(table, measure_missing=measure_missing)
    feats = [predictor.features(a) for a in archs]
    timings = measure_archs(archs, settings, passes=passes, progress=progress, desc="calibrating")
    measured = [t.median_ms for t in timings]
    records = [{"hash": a.hash(), "n_ops": int(f["n_ops"]), "mparams": f["mparams"], "sum_ms": f["sum"], "measured_ms": m}
               for a, f, m in zip(archs, feats, measured, strict=True)]
    cal = fit_calibration(feats, measured, method, records)
    table.calibration = cal
    return cal


# ---------------------------------------------------------------------------------------------
# Command line


def add_calibrate_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``calibrate``."""
    from latency_tables.measure import add_harness_arguments

    parser.add_argument("--table", required=True, help="latency table file to calibrate (updated in place)")
    parser.add_argument("--space", help="search space to sample networks from (default: the table's)")
    parser.add_argument("-n", type=int, default=30, help="random networks to measure (default %(default)s)")
    parser.add_argument("--seed", type=int, default=1,
                        help="sampling seed; keep it apart from validation's (default %(default)s)")
    parser.add_argument("--method", default="auto", choices=("auto", *METHODS),
                        help="overhead model (default: lowest leave-one-out MAPE)")
    parser.add_argument("--measure-missing", action="store_true",
                        help="measure ops the table lacks on the spot and add them")
    add_harness_arguments(parser, passes=True)
    parser.add_argument("--json", action="store_true", help="print the calibration as JSON")


def run_calibrate(args: argparse.Namespace) -> int:
    """Handler of ``calibrate``."""
    from latency_tables.measure import harness_kwargs
    from latency_tables.validate import sample_archs
    from nas.cli.output import print_json

    table = LatencyTable.load(args.table)
    space = args.space or table.meta.get("space")
    if not space:
        raise ValueError(f"{args.table}: the table names no search space; give --space")
    archs = sample_archs(space, table.resolution, args.n, args.seed, table.meta.get("num_classes"))
    cal = calibrate(table, archs, method=args.method, measure_missing=args.measure_missing,
                    harness=harness_kwargs(args), passes=args.passes)
    table.meta["calibration_space"] = space
    table.meta["calibration_seed"] = args.seed
    table.save()
    out = {k: v for k, v in cal.to_dict().items() if k != "records"}
    if args.json:
        print_json(out)
    else:
        terms = " + ".join(f"{v:.4g}*{k}" for k, v in cal.coef.items())
        loo = ", ".join(f"{m} {v:.2f}%" for m, v in cal.loo_mape.items() if np.isfinite(v))
        print(f"{table.path}: calibrated on {len(archs)} networks: latency = {terms} (method {cal.method}, "
              f"fit MAPE {cal.fit_mape:.2f}%; leave-one-out MAPE: {loo})")
    return 0
