"""Rank correlations, the one yardstick of estimators (proxies, predictors, supernets, latency
tables): how well a score orders networks as their measured figure does.

Thin wrappers over :mod:`scipy.stats` (a dependency through scikit-learn), so every benchmark and
report computes tau and rho the same way, with one policy: the two sequences must be equally long,
1-D and finite, and a constant sequence (no order to agree with) gives ``nan`` without a warning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["kendall_tau", "spearman_rho"]


def _pair(x: Sequence[float], y: Sequence[float], name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Both sequences as float arrays, or ``None`` when either is constant; ``ValueError`` on
    mismatched shapes, fewer than two values or a non-finite one."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"{name}: need two 1-D sequences of the same length >= 2, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError(f"{name}: needs finite values")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return a, b


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties accounted for); ``nan`` when either sequence is constant."""
    pair = _pair(x, y, "kendall_tau")
    return math.nan if pair is None else float(stats.kendalltau(*pair).statistic)


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho (Pearson correlation of average ranks); ``nan`` when either is constant."""
    pair = _pair(x, y, "spearman_rho")
    return math.nan if pair is None else float(stats.spearmanr(*pair).statistic)
