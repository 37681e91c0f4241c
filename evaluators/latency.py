"""Latency evaluators: measured on this device, or predicted from a latency table.

- :class:`MeasuredLatency` times the whole built network with the harness of
  :mod:`latency_tables.measure` (eager eval-mode forward passes under ``inference_mode``, a fixed
  thread count, warm-up, then the median of repeats; see that module for the method), so whole-
  network measurements and op tables are taken the same way.
- :class:`TableLatency` sums a latency table's per-op entries (FBNet, Wu et al. CVPR 2019;
  ProxylessNAS, Cai et al. ICLR 2019), through :mod:`latency_tables`' predictor.
"""

from __future__ import annotations

from typing import Any

import torch

from evaluators.base import BaseEvaluator, Metric
from latency_tables.measure import Settings, device_name, measure_module
from nas.arch import Arch
from nas.builder import build_model

__all__ = ["MeasuredLatency"]


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
