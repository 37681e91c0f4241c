"""Complexity evaluator: parameters and MACs in both conventions of :mod:`nas.complexity`."""

from __future__ import annotations

from typing import Any

from evaluators.base import BaseEvaluator, Metric
from nas.arch import Arch
from nas.complexity import complexity

__all__ = ["ComplexityEvaluator"]


class ComplexityEvaluator(BaseEvaluator):
    """``params``, ``macs_conv_linear`` (the MobileNet-paper convention) and, unless
    ``ptflops=False``, ``macs_ptflops`` (ptflops' total), at the architecture's own resolution."""

    name = "complexity"

    def __init__(self, *, ptflops: bool = True):
        self.ptflops = bool(ptflops)
        metrics = [
            Metric("params", "min", "", "trainable parameters"),
            Metric("macs_conv_linear", "min", "MAC", "multiply-adds of convolutions and linear layers"),
        ]
        if self.ptflops:
            metrics.append(Metric("macs_ptflops", "min", "MAC", "ptflops total (BN, activations, pooling too)"))
        self.metrics = tuple(metrics)

    def config(self) -> dict[str, Any]:
        return {"ptflops": self.ptflops}

    def compute(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        c = complexity(arch, ptflops=self.ptflops)
        out: dict[str, float] = {"params": c.params, "macs_conv_linear": c.macs_conv_linear}
        if c.macs_ptflops is not None:
            out["macs_ptflops"] = c.macs_ptflops
        return out, {}
