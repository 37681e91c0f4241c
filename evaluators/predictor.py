"""Accuracy predictors fitted on networks trained stand-alone: rank candidates in milliseconds by
something that was measured.

Once-for-All (Cai et al., ICLR 2020) ranks sub-networks with a small MLP fitted on measured
accuracies; HW-NAS-Bench and NAS-Bench-Suite (White et al., 2021) compare such predictors and find
tree ensembles and ridge regression competitive at a few dozen training points. This module fits
three kinds on a :class:`~evaluators.trained_nets.TrainedNets` dataset and keeps the one with the
best cross-validated Kendall tau (the measure a search cares about: the order, not the value):

- ``ridge``: closed-form ridge regression on standardised features, the penalty picked by
  cross-validation; its uncertainty is the spread of a bootstrap ensemble;
- ``gbm``: gradient-boosted regression trees (scikit-learn's ``GradientBoostingRegressor``),
  stored as plain JSON trees (no pickle); no uncertainty;
- ``mlp``: a two-layer perceptron (torch), an ensemble of seeds whose spread is the uncertainty.

Features: for every choice of the space one indicator per label (zero when the choice is
inactive), plus log10 of conv+linear MACs and of parameters. A predictor belongs to one space (its
resolution and classes) and one dataset fingerprint; :meth:`Predictor.check` refuses others.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evaluators.base import BaseEvaluator, Metric
from evaluators.scorers import ScoreSettings, register_scorer
from evaluators.trained_nets import TrainedNet
from nas.arch import Arch, legacy_hash
from nas.complexity import complexity
from nas.io import JSONFileError, atomic_write_json, read_json_file
from nas.rank_stats import kendall_tau
from search_spaces.space import SearchSpace
from search_spaces.spaces import get_space

__all__ = ["MODELS", "FORMAT", "SHIPPED_DIR", "shipped_predictors", "resolve_predictor", "Featurizer", "Predictor",
           "fit_predictor", "PredictedAccuracy"]

MODELS = ("ridge", "gbm", "mlp")
FORMAT = "litenas.accuracy_predictor"
VERSION = 1
SHIPPED_DIR = Path(__file__).resolve().parent / "predictors"
"""Predictors shipped with litenas (``<name>.json``) and the trained networks each was fitted on
(``<name>_nets.json``); ``docs/bench_ranking.md`` measured those networks."""
_RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0)
_BOOTSTRAP = 16
_MLP_SEEDS = 4


@dataclass(frozen=True)
class Featurizer:
    """Architecture -> feature vector for one space (see the module docstring)."""

    space: SearchSpace

    @property
    def columns(self) -> list[str]:
        cols = [f"{c.name}={label}" for c in self.space.choices for label in c.labels]
        return cols + ["log10_macs", "log10_params"]

    def __call__(self, arch: Arch) -> np.ndarray:
        point = self.space.encode(arch)  # ValueError naming the layer for an arch outside the space
        active = self.space.active(point)
        parts = []
        for c, v, a in zip(self.space.choices, point, active, strict=True):
            onehot = np.zeros(len(c))
            if a:
                onehot[v] = 1.0
            parts.append(onehot)
        cx = complexity(arch, ptflops=False)
        parts.append(np.array([math.log10(max(cx.macs_conv_linear, 1)), math.log10(max(cx.params, 1))]))
        return np.concatenate(parts)


# --------------------------------------------------------------------------------------------- models
def _ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float) -> dict[str, Any]:
    mu, sd = x.mean(0), x.std(0)
    sd[sd == 0] = 1.0
    z = (x - mu) / sd
    ym = y.mean()
    n, d = z.shape
    if n < d:  # dual form: (Z^T Z + aI)^-1 Z^T = Z^T (Z Z^T + aI)^-1, an n x n solve (thousands of features)
        w = z.T @ np.linalg.solve(z @ z.T + alpha * np.eye(n), y - ym)
    else:
        w = np.linalg.solve(z.T @ z + alpha * np.eye(d), z.T @ (y - ym))
    return {"mu": mu.tolist(), "sd": sd.tolist(), "w": w.tolist(), "b": float(ym)}


def _ridge_predict(m: dict[str, Any], x: np.ndarray) -> np.ndarray:
    return ((x - np.asarray(m["mu"])) / np.asarray(m["sd"])) @ np.asarray(m["w"]) + m["b"]


def _gbm_fit(x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, Any]:
    from sklearn.ensemble import GradientBoostingRegressor

    gbm = GradientBoostingRegressor(n_estimators=200, max_depth=3, learning_rate=0.05, subsample=0.8,
                                    max_features="sqrt", random_state=seed).fit(x, y)
    trees = []
    for est in gbm.estimators_[:, 0]:
        t = est.tree_
        trees.append({"left": t.children_left.tolist(), "right": t.children_right.tolist(),
                      "feature": t.feature.tolist(), "threshold": t.threshold.tolist(),
                      "value": t.value[:, 0, 0].tolist()})
    return {"init": float(gbm.init_.constant_[0, 0]), "lr": gbm.learning_rate, "trees": trees}


def _gbm_predict(m: dict[str, Any], x: np.ndarray) -> np.ndarray:
    out = np.full(len(x), m["init"])
    for t in m["trees"]:
        for i, row in enumerate(x):
            node = 0
            while t["left"][node] != -1:
                node = t["left"][node] if row[t["feature"][node]] <= t["threshold"][node] else t["right"][node]
            out[i] += m["lr"] * t["value"][node]
    return out


def _mlp_fit(x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, Any]:
    keep = np.flatnonzero(x.std(0) > 0)  # one-hot columns no training network uses carry nothing
    x = x[:, keep]
    mu, sd = x.mean(0), x.std(0)
    ym, ys = float(y.mean()), float(y.std() or 1.0)
    xt = torch.tensor((x - mu) / sd, dtype=torch.float32)
    yt = torch.tensor((y - ym) / ys, dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-3)
        for _ in range(300):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(net(xt).squeeze(1), yt)
            loss.backward()
            opt.step()
    return {"keep": keep.tolist(), "mu": mu.tolist(), "sd": sd.tolist(), "ym": ym, "ys": ys,
            "state": {k: v.tolist() for k, v in net.state_dict().items()}}


def _mlp_predict(m: dict[str, Any], x: np.ndarray) -> np.ndarray:
    z = (x[:, m["keep"]] - np.asarray(m["mu"])) / np.asarray(m["sd"])
    s = {k: np.asarray(v) for k, v in m["state"].items()}
    h = np.maximum(z @ s["0.weight"].T + s["0.bias"], 0.0)
    return (h @ s["2.weight"].T + s["2.bias"])[:, 0] * m["ys"] + m["ym"]


def _fit(kind: str, x: np.ndarray, y: np.ndarray, seed: int, alpha: float = 1.0) -> dict[str, Any]:
    """One model of ``kind`` with its ensemble members (bootstrap for ridge, seeds for the MLP)."""
    if kind == "ridge":
        rng = np.random.default_rng(seed)
        members = [_ridge_fit(x, y, alpha)]
        for _ in range(_BOOTSTRAP):
            idx = rng.integers(0, len(x), len(x))
            members.append(_ridge_fit(x[idx], y[idx], alpha))
        return {"kind": kind, "alpha": alpha, "members": members}
    if kind == "gbm":
        return {"kind": kind, "members": [_gbm_fit(x, y, seed)]}
    return {"kind": kind, "members": [_mlp_fit(x, y, seed + i) for i in range(_MLP_SEEDS)]}


_PREDICT = {"ridge": _ridge_predict, "gbm": _gbm_predict, "mlp": _mlp_predict}


def _predict(model: dict[str, Any], x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean and (for ensembles that have one) spread of the prediction. Ridge's point estimate is its
    full-data fit (member 0); the bootstrap members give the spread."""
    outs = np.stack([_PREDICT[model["kind"]](m, x) for m in model["members"]])
    if model["kind"] == "ridge":
        return outs[0], outs[1:].std(0)
    return outs.mean(0), (outs.std(0) if len(outs) > 1 else None)


def _cv_tau(kind: str, x: np.ndarray, y: np.ndarray, folds: int, seed: int, alpha: float = 1.0) -> float:
    """Kendall tau of out-of-fold predictions with the truth (every network predicted by a model that
    never saw it)."""
    order = np.random.default_rng(seed).permutation(len(x))
    pred = np.empty(len(x))
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        pred[test] = _predict(_fit(kind, x[train], y[train], seed, alpha), x[test])[0]
    return kendall_tau(pred, y)


# ------------------------------------------------------------------------------------------- predictor
#: The fields of a predictor file and their JSON types (``fitted_on`` may be absent: older files).
_FIELDS: dict[str, type | tuple[type, ...]] = {
    "space": str, "resolution": (int, type(None)), "num_classes": int, "data": dict, "columns": list, "model": dict,
    "cv_kendall_tau": dict, "n": int, "fitted_on": list}
_FIELD_KINDS = {str: "a string", (int, type(None)): "an integer or null", int: "an integer", dict: "an object",
                list: "an array"}


def shipped_predictors() -> list[str]:
    """Names of the shipped predictors (``--predictor NAME``)."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.json") if not p.stem.endswith("_nets"))


def resolve_predictor(name_or_path: str | os.PathLike[str]) -> Path:
    """The file of a shipped predictor's name, or ``name_or_path`` itself when it is a file;
    ``ValueError`` naming the shipped ones otherwise."""
    key = str(name_or_path)
    if key in shipped_predictors():
        return SHIPPED_DIR / f"{key}.json"
    if Path(key).is_file():
        return Path(key)
    raise ValueError(f"predictor: {key}: neither a file nor a shipped predictor (shipped: "
                     f"{', '.join(shipped_predictors()) or 'none'}; fit one with `nas predictor fit`)")


@dataclass
class Predictor:
    """A fitted predictor: the space it encodes, the data it was fitted on, the chosen model, the
    cross-validation report, and the hashes of the networks it was fitted on (their predictions are
    in-sample: a report says so; a file fitted by an older litenas holds their legacy hashes,
    :func:`nas.arch.legacy_hash`, which :class:`PredictedAccuracy` recognises as well)."""

    space: str
    resolution: int | None
    num_classes: int
    data: dict[str, Any]
    columns: list[str]
    model: dict[str, Any]
    cv: dict[str, float]
    n: int
    fitted_on: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "space": self.space, "resolution": self.resolution,
                "num_classes": self.num_classes, "data": self.data, "columns": self.columns, "model": self.model,
                "cv_kendall_tau": self.cv, "n": self.n, "fitted_on": list(self.fitted_on)}

    def save(self, path: str | os.PathLike[str]) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Predictor:
        """A predictor file, or a shipped predictor by name (:func:`shipped_predictors`); a file that
        is not a well-formed predictor is a :class:`~nas.io.JSONFileError` naming it."""
        p = resolve_predictor(path)
        d = read_json_file(p, "an accuracy predictor")
        if d.get("format") != FORMAT or d.get("version") != VERSION:
            raise JSONFileError(f"{p}: not a litenas accuracy predictor (format {FORMAT!r} version {VERSION})")
        for key, kinds in _FIELDS.items():
            if key not in d:
                if key == "fitted_on":
                    continue
                raise JSONFileError(f"{p}: predictor without {key!r}")
            if isinstance(d[key], bool) or not isinstance(d[key], kinds):
                raise JSONFileError(f"{p}: predictor field {key!r}: expected {_FIELD_KINDS[kinds]}, got "
                                    f"{json.dumps(d[key])[:40]}")
        if not isinstance(d["model"].get("name"), str):
            raise JSONFileError(f"{p}: predictor field 'model' has no 'name'")
        return cls(d["space"], d["resolution"], d["num_classes"], d["data"], d["columns"], d["model"],
                   d["cv_kendall_tau"], d["n"], tuple(d.get("fitted_on", ())))

    def check(self, space: SearchSpace, data_fingerprint: str | None = None) -> None:
        """``ValueError`` naming both sides unless ``space`` (and the data, if given) are the
        predictor's."""
        cols = Featurizer(space).columns
        if space.name != self.space or cols != self.columns:
            differ = next((f"feature {i}: {a!r} (predictor) vs {b!r} (search)"
                           for i, (a, b) in enumerate(zip(self.columns, cols, strict=False)) if a != b),
                          f"{len(self.columns)} features (predictor) vs {len(cols)} (search)")
            raise ValueError(f"the predictor encodes space {self.space!r}, the search uses {space.name!r} with "
                             f"another encoding ({differ}): fit the predictor again for this space")
        if data_fingerprint is not None and data_fingerprint != self.data.get("fingerprint"):
            raise ValueError(f"the predictor was fitted on data {self.data.get('fingerprint')}, the search uses "
                             f"{data_fingerprint}")

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Predicted top-1 (and its spread, where the model gives one) of feature rows."""
        return _predict(self.model, np.atleast_2d(features))


def fit_predictor(records: Sequence[TrainedNet], space: SearchSpace, *, models: Sequence[str] = MODELS,
                  folds: int = 5, seed: int = 0) -> Predictor:
    """Fit every kind in ``models`` (ridge over its penalties), keep the best cross-validated Kendall
    tau, refit it on all records. Records must share one dataset; at least ``2 * folds`` of them."""
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"models must be among {', '.join(MODELS)}, got {list(models)}")
    if len(records) < 2 * folds:
        raise ValueError(f"need at least {2 * folds} trained networks for {folds}-fold cross-validation, got "
                         f"{len(records)}")
    prints = {r.data["fingerprint"] for r in records}
    if len(prints) != 1:
        raise ValueError(f"records come from {len(prints)} datasets ({', '.join(sorted(prints))}); fit one each")
    feat = Featurizer(space)
    x = np.stack([feat(r.to_arch()) for r in records])
    y = np.array([r.top1 for r in records], dtype=np.float64)
    cv: dict[str, float] = {}
    for kind in models:
        for alpha in (_RIDGE_ALPHAS if kind == "ridge" else (1.0,)):
            name = f"ridge(alpha={alpha:g})" if kind == "ridge" else kind
            cv[name] = round(_cv_tau(kind, x, y, folds, seed, alpha), 4)
    best = max(cv, key=lambda k: cv[k])
    kind, alpha = (("ridge", float(best.split("=")[1].rstrip(")"))) if best.startswith("ridge") else (best, 1.0))
    arch0 = records[0].to_arch()
    return Predictor(space.name, arch0.resolution, arch0.num_classes, dict(records[0].data), feat.columns,
                     {**_fit(kind, x, y, seed, alpha), "name": best}, cv, len(records),
                     tuple(sorted(r.arch_hash for r in records)))


class PredictedAccuracy(BaseEvaluator):
    """``top1`` predicted by a fitted :class:`Predictor` for architectures of its space (milliseconds
    per candidate; the spread goes to the result's info where the model gives one)."""

    name = "predictor"
    metrics = (Metric("top1", "max", "%", "top-1 predicted by an accuracy predictor"),)

    def __init__(self, predictor: Predictor, space: SearchSpace):
        predictor.check(space)
        self.predictor, self.space = predictor, space
        self.featurizer = Featurizer(space)
        self._fitted_on = frozenset(predictor.fitted_on)

    @classmethod
    def from_settings(cls, s: ScoreSettings) -> PredictedAccuracy:
        """``--evaluator predictor``: the fitted predictor of ``s.predictor``, checked against the
        space at the search's resolution (its networks have the predictor's classes:
        :attr:`num_classes`)."""
        if s.predictor is None:
            raise ValueError("predictor: the predictor evaluator needs a fitted predictor file (--predictor)")
        predictor = Predictor.load(s.predictor)
        if s.resolution is not None and predictor.resolution not in (None, s.resolution):
            raise ValueError(f"predictor: {s.predictor} was fitted at resolution {predictor.resolution}, the "
                             f"search runs at {s.resolution}")
        return cls(predictor, get_space(s.space, resolution=s.resolution, num_classes=predictor.num_classes))

    def config(self) -> dict[str, Any]:
        digest = hashlib.sha256(json.dumps(self.predictor.model, sort_keys=True).encode()).hexdigest()[:16]
        return {"predictor": {"space": self.predictor.space, "data": self.predictor.data,
                              "model": self.predictor.model.get("name"), "n": self.predictor.n, "digest": digest}}

    def check(self, arch: Arch) -> None:
        super().check(arch)
        self.space.encode(arch)  # a candidate outside the predictor's space is a bad request

    def compute(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        mean, spread = self.predictor.predict(self.featurizer(arch))
        info: dict[str, Any] = {} if spread is None else {"top1_std": float(spread[0])}
        if arch.hash() in self._fitted_on or legacy_hash(arch) in self._fitted_on:
            info["note"] = "in-sample: the predictor was fitted on this network's measured top-1"
        return {"top1": float(mean[0])}, info


register_scorer("predictor", PredictedAccuracy.from_settings, "an accuracy predictor fitted on trained networks (--predictor)")
