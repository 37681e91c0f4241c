"""What a search optimises: a single MnasNet-style reward or a Pareto front, under hard constraints.

- ``reward`` (Tan et al., "MnasNet: Platform-Aware Neural Architecture Search for Mobile",
  CVPR 2019): ``ACC * (LAT / T) ** w`` with ``w = alpha`` when ``LAT <= T`` and ``beta`` otherwise.
  The soft form uses ``alpha = beta = -0.07`` (the paper's choice); the hard form ``alpha = 0``,
  ``beta = -1`` (no reward for being faster than the target, a steep penalty beyond it).
  ``ACC`` is any metric to maximise that is positive (top-1, or a zero-cost proxy score).
- ``pareto``: the metric (maximised) and the latency (minimised) as two objectives.
- Constraints (max latency, params, MACs) are hard: a candidate that breaks one is never scored
  with the expensive evaluator.

Strategies maximise every value they are told (:mod:`nas.search.strategy`), so minimised
objectives are negated here, in one place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from nas.settings import Component, setting

LATENCY_METRIC = "latency_pred_ms"
OBJECTIVES = ("reward", "pareto")


@dataclass(frozen=True)
class Constraints:
    """Hard limits; ``None`` means no limit."""

    max_latency_ms: float | None = None
    max_params: int | None = None
    max_macs: int | None = None

    def violations(self, metrics: Mapping[str, float], *, known_only: bool = False) -> list[str]:
        """Human-readable list of the limits ``metrics`` break (empty: feasible); with
        ``known_only`` a limit whose metric is not in ``metrics`` (not computed yet) is skipped."""
        out = []
        checks = (("max_latency_ms", LATENCY_METRIC, "ms"), ("max_params", "params", ""),
                  ("max_macs", "macs_conv_linear", " MACs"))
        for field, metric, unit in checks:
            limit = getattr(self, field)
            if limit is not None and known_only and metric not in metrics:
                continue
            if limit is not None and metrics[metric] > limit:
                out.append(f"{metric} {metrics[metric]:.4g}{unit} > {field} {limit:.4g}{unit}")
        return out

    def metrics_needed(self) -> list[str]:
        need = []
        if self.max_latency_ms is not None:
            need.append(LATENCY_METRIC)
        if self.max_params is not None:
            need.append("params")
        if self.max_macs is not None:
            need.append("macs_conv_linear")
        return need


@dataclass(frozen=True)
class Objective:
    """How metrics become the values a strategy maximises.

    Args:
        kind: ``reward`` (one value) or ``pareto`` (metric and latency).
        metric: the quality metric to maximise (``top1``, ``naswot``...).
        target_ms: the reward's latency target ``T`` (required for ``reward``).
        w: the reward exponent for the soft form (MnasNet: -0.07).
        hard: the reward's hard form (``alpha = 0``, ``beta = -1``).
    """

    kind: str
    metric: str
    target_ms: float | None = None
    w: float = -0.07
    hard: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("reward", "pareto"):
            raise ValueError(f"objective kind must be 'reward' or 'pareto', got {self.kind!r}")
        if self.kind == "reward" and (self.target_ms is None or self.target_ms <= 0):
            raise ValueError("the reward objective needs a latency target > 0 (target_ms / --max-latency-ms)")
        if self.w > 0:
            raise ValueError(f"the reward exponent w must be <= 0 (MnasNet uses -0.07), got {self.w}")

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the values, in order (as stored with every trial)."""
        return ("reward",) if self.kind == "reward" else (self.metric, LATENCY_METRIC)

    @property
    def directions(self) -> tuple[str, ...]:
        """Optuna directions of :meth:`report_values`."""
        return ("maximize",) if self.kind == "reward" else ("maximize", "minimize")

    @property
    def n_values(self) -> int:
        return len(self.names)

    def metrics_needed(self) -> list[str]:
        return [self.metric, LATENCY_METRIC]

    def reward(self, quality: float, latency_ms: float) -> float:
        """MnasNet's reward ``quality * (latency / T) ** w`` (soft or hard form)."""
        if quality <= 0:
            raise ValueError(f"the reward needs a positive {self.metric}, got {quality:.4g}")
        ratio = latency_ms / float(self.target_ms)  # type: ignore[arg-type]
        if self.hard:
            w = 0.0 if ratio <= 1.0 else -1.0
        else:
            w = self.w
        return quality * math.pow(ratio, w)

    def report_values(self, metrics: Mapping[str, float]) -> tuple[float, ...]:
        """Objective values in their natural directions (stored in the study, shown to people)."""
        if self.kind == "reward":
            return (self.reward(metrics[self.metric], metrics[LATENCY_METRIC]),)
        return (metrics[self.metric], metrics[LATENCY_METRIC])

    def strategy_values(self, metrics: Mapping[str, float]) -> tuple[float, ...]:
        """Objective values to maximise (minimised ones negated), as strategies are told."""
        vals = self.report_values(metrics)
        return tuple(v if d == "maximize" else -v for v, d in zip(vals, self.directions, strict=True))

    def best_key(self, metrics: Mapping[str, float]) -> float:
        """A scalar to rank candidates for "best so far" and top-k: the reward, or the metric."""
        return self.report_values(metrics)[0]


@dataclass(frozen=True)
class ObjectiveConfig(Component):
    """What a search optimises, under which limits (``kind`` left unset is resolved by the
    search's configuration: ``reward`` with a latency target, else ``pareto``)."""

    title: ClassVar[str] = "what is optimised, under which limits"

    kind: str | None = setting(
        None,
        "reward (MnasNet ACC*(LAT/T)^w) | pareto (metric vs latency) (default: reward with a latency "
        "target, --max-latency-ms or --target-latency-ms; pareto without one)", key="objective")
    max_latency_ms: float | None = setting(
        None, "hard limit on predicted latency; also the reward target unless --target-latency-ms",
        range=(0, False, math.inf))
    target_latency_ms: float | None = setting(None, "the reward's latency target T", range=(0, False, math.inf))
    reward_w: float = setting(-0.07, "the reward exponent w (soft constraint, MnasNet: -0.07)",
                              range=(-math.inf, True, math.inf))
    hard_reward: bool = setting(False, "use the reward's hard form (alpha=0, beta=-1)")
    max_params: int | None = setting(None, "hard limit on parameters", range=(1, True, math.inf))
    max_macs: int | None = setting(None, "hard limit on conv+linear MACs", range=(1, True, math.inf))

    def check(self) -> None:
        if self.kind is not None and self.kind not in OBJECTIVES:
            raise ValueError(f"objective: {self.kind!r} is not one of {', '.join(OBJECTIVES)}")
        if self.kind == "reward" and self.target_ms is None:
            raise ValueError("objective 'reward' needs a latency target: set target_latency_ms or max_latency_ms")

    @property
    def target_ms(self) -> float | None:
        """The reward's latency target: ``target_latency_ms``, else ``max_latency_ms``."""
        return self.target_latency_ms if self.target_latency_ms is not None else self.max_latency_ms

    def constraints(self) -> Constraints:
        """The hard limits."""
        return Constraints(max_latency_ms=self.max_latency_ms, max_params=self.max_params, max_macs=self.max_macs)

    def objective(self, metric: str) -> Objective:
        """The objective of a search that scores candidates by ``metric``."""
        return Objective(self.kind or "pareto", metric, target_ms=self.target_ms, w=self.reward_w,
                         hard=self.hard_reward)
