"""Latency evaluators: measured on this device, or predicted from a latency table.

- :class:`MeasuredLatency` times the whole built network with the harness of
  :mod:`latency_tables.measure` (eager eval-mode forward passes under ``inference_mode``, a fixed
  thread count, warm-up, then the median of repeats; see that module for the method), so whole-
  network measurements and op tables are taken the same way.
- :class:`TableLatency` sums a latency table's per-op entries (FBNet, Wu et al. CVPR 2019;
  ProxylessNAS, Cai et al. ICLR 2019), through :mod:`latency_tables`' predictor.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import torch

from evaluators.base import BaseEvaluator, Metric
from latency_tables.device import device_name
from latency_tables.measure import Settings, measure_module
from latency_tables.predict import LatencyPredictor
from latency_tables.table import LatencyTable
from nas.arch import Arch
from nas.builder import build_model

__all__ = ["MeasuredLatency", "TableLatency"]


class MeasuredLatency(BaseEvaluator):
    """``latency_ms``: median time of one forward pass of the whole network, measured here.

    ``settings`` (default: CPU, one thread, batch 1, float32, eager) fix what is measured; the
    cache key holds them with the device's name and the torch version, so a result measured on
    another machine is never mistaken for one of this machine.
    """

    name = "latency"
    metrics = (Metric("latency_ms", "min", "ms", "median forward time of the whole network on this device"),)

    def __init__(self, *, settings: Settings | None = None):
        if settings is None:
            settings = Settings()
        if not isinstance(settings, Settings):
            raise ValueError(f"settings must be latency_tables.measure.Settings, got {type(settings).__name__}")
        self.settings = settings

    def config(self) -> dict[str, Any]:
        return {"settings": self.settings.identity(), "device": device_name(self.settings.device),
                "torch": torch.__version__}

    def compute(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        shape = (self.settings.batch_size, arch.in_chans, arch.resolution, arch.resolution)
        t = measure_module(build_model(arch), shape, self.settings)
        return {"latency_ms": t.median_ms}, {"p10_ms": t.p10_ms, "p90_ms": t.p90_ms, "samples": t.n}


class TableLatency(BaseEvaluator):
    """``latency_pred_ms``: the latency a :class:`~latency_tables.table.LatencyTable` predicts
    (:class:`~latency_tables.predict.LatencyPredictor`: the sum of the ops' medians, calibrated
    when the table carries a calibration).

    ``table`` is a loaded table or the path of one. An op configuration missing from the table
    fails the candidate with the key in the reason, unless ``measure_missing`` measures it on the
    spot (added to the table in memory). The cache key holds the table's measurement identity,
    calibration and a digest of its entries, so a re-measured table is never mixed up with the old.
    """

    name = "latency_table"
    metrics = (Metric("latency_pred_ms", "min", "ms", "latency predicted from a per-op latency table"),)

    def __init__(self, table: LatencyTable | str | os.PathLike[str], *, measure_missing: bool = False):
        if isinstance(table, (str, os.PathLike)):
            table = LatencyTable.load(table)
        if not isinstance(table, LatencyTable):
            raise ValueError(f"table must be a LatencyTable or a path, got {type(table).__name__}")
        self.table = table
        self.predictor = LatencyPredictor(table, measure_missing=measure_missing)
        entries = json.dumps({k: table.entries[k].to_dict() for k in sorted(table.entries)}, sort_keys=True)
        self._entries_digest = hashlib.sha256(entries.encode()).hexdigest()[:16]

    def config(self) -> dict[str, Any]:
        m = self.table.meta
        cal = self.table.calibration
        return {"identity": self.table.settings_identity(), "device_name": m["device_name"], "torch": m["torch"],
                "resolution": self.table.resolution, "entries": self._entries_digest,
                "calibration": None if cal is None else {"method": cal.method, "coef": cal.coef}}

    def check(self, arch: Arch) -> None:
        super().check(arch)
        if arch.resolution != self.table.resolution and not self.predictor.measure_missing:
            raise ValueError(f"the latency table was measured for {self.table.resolution}px inputs, the "
                             f"architecture takes {arch.resolution}px ({self.table.describe()})")

    def compute(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        feats = self.predictor.features(arch)
        return {"latency_pred_ms": self.predictor.predict(arch)}, {"op_sum_ms": feats["sum"], "n_ops": int(feats["n_ops"])}
