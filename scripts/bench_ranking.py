"""Ranking benchmark, ground truth: networks of the ``mobile`` space at 32x32 trained stand-alone on
CIFAR-10 with one recipe, and how well cheap estimators rank them (Kendall tau with top-1).

Why: a NAS estimator (a supernet, an accuracy predictor, a zero-cost proxy, MACs) is only as good
as its ranking of networks trained for real. This script builds that ground truth once, on
networks that span the whole latency range (not only the band where random networks fall), and
scores every estimator in :data:`ESTIMATORS` against it.

Networks (deterministic in ``--sample-seed``):

- sampled: ``--pool`` random points of ``mobile``@32 (10 classes), their latency predicted by the
  latency table (``--latency-table``); the predicted-latency range is split into ``--archs``
  equal-count (quantile) bins and the first-drawn network of each bin is kept. Points with an op
  the table lacks are skipped and reported.
- fixed points: every CIFAR network of the zoo (``cifar_*``, moved to 10 classes) that the space
  contains, under its zoo name (duplicates by hash are dropped from the sample).
- view: ``--view-archs`` networks sampled the same way (seed + 1) from the part of the space a
  supernet holds (width 1.0, deepest stages, fixed stem and head): the only networks the
  supernet estimator can score.
- earlier: networks trained for an earlier plan (before ``mobile``@32 sampled the CIFAR layout,
  their maps ended at 1x1 or 2x2); they stay in the results and count in the "all" group only.

Estimators (:data:`ESTIMATORS`): MACs, params, minus the table latency, each zero-cost proxy; the
accuracy predictor, out-of-fold (each network scored by a predictor fitted on the other folds);
the train evaluator and (``--supernet DIR``) the supernet evaluator exactly as a ``nas search``
with their defaults runs them, on images held out of the training set.

Ground truth: each network trained with :func:`evaluators.train.train_and_evaluate` (the loop of
``nas train``): ``TrainConfig(epochs=--epochs, batch_size=128, seed=--seed)`` on a class-balanced
subset of ``--train-per-class`` training images per class (subset seed 0), top-1 on
``--test-per-class`` test images per class (1000: the whole CIFAR-10 test set), fp32
``channels_last`` on ``--threads`` CPU threads. Results go to a
:class:`~evaluators.trained_nets.TrainedNets` file (``--results``, meant to be committed),
written atomically after every network: killed at any moment, the script continues where it
stopped when started again. Order: fixed points first, then the sampled networks in a
farthest-first order of their latency bins (lowest, highest, middle, quarters, ...), so a
partial run already spans the latency range. ``--limit`` and ``--time-budget-s`` cut an
invocation to fit a session; ``--shard I/N`` splits the plan over N processes that share the
results file (one per core).

Report (``--out``.md and .json, regenerated from the results file at the end of every
invocation, or alone with ``--report-only``): recipe, data, progress (trained / planned, what
remains), one row per trained network, and per estimator the Kendall tau-b of its score with
top-1 over the sampled networks and over all (fixed points included), with n and its measured
CPU-seconds per candidate. Estimator scores are cached in ``--scores``.

Full ground truth (64 networks: 40 sampled + 16 from the supernet's part + 8 fixed points; measured
at one thread beside other work: 40 s for the smallest network to about 11 min for the largest,
several hours in all, resumable across sessions)::

    python scripts/bench_ranking.py --data ../shared/data/cifar10-jpg.tar.gz --threads 2
"""

from __future__ import annotations

import argparse
import datetime
import functools
import hashlib
import json
import logging
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

import latency_tables
from evaluators.base import Evaluator
from evaluators.datasets import Dataset, load_dataset, synthetic
from evaluators.predictor import Featurizer, fit_predictor
from evaluators.proxies import PROXIES, ZeroCostProxies
from evaluators.train import Diverged, train_and_evaluate
from evaluators.trained_nets import TrainedNet, TrainedNets
from evaluators.training.plan import plan_for
from evaluators.training.recipe import TrainConfig
from latency_tables.predict import LatencyPredictor
from latency_tables.table import MissingKeyError
from nas.arch import Arch
from nas.complexity import complexity
from nas.io import atomic_write_json, atomic_write_text
from nas.rank_stats import kendall_tau
from nas.runtime import fixed_threads
from nas.search.config import SearchConfig
from nas.search.scoring import load_search_data, make_score_evaluator
from search_spaces import zoo
from search_spaces.layerwise import ViewSpace, layerwise_view
from search_spaces.space import SearchSpace
from search_spaces.spaces import get_space

log = logging.getLogger("bench_ranking")

SOURCE = "bench_ranking"
SPACE = "mobile"
RESOLUTION = 32
NUM_CLASSES = 10
BATCH_SIZE = 128
SUBSET_SEED = 0
SCORES_FORMAT = "litenas.bench_ranking_scores"
GROUPS = ("sampled", "view", "all")
"""Networks a tau is taken over: the sample of the whole space, the sample of the supernet's part
of it, and every trained network (fixed points included)."""


# ---------------------------------------------------------------------------------------------
# Which networks
@dataclass(frozen=True)
class Candidate:
    """A planned network: a zoo fixed point (``name``) or a sampled one (its latency ``bin``)."""

    arch: Arch
    latency_ms: float
    name: str | None = None
    bin: int | None = None
    group: str = "sampled"

    @property
    def kind(self) -> str:
        """``fixed``, ``sampled`` (from the whole space) or ``view`` (from the supernet's part)."""
        return "fixed" if self.name is not None else self.group

    @property
    def label(self) -> str:
        return self.name or self.arch.hash()


@dataclass
class Sample:
    """The stratified sample: the chosen networks (one per bin, in bin order), the latencies of the
    whole pool (distinct, predictable points, in draw order) and the points left out."""

    chosen: list[Candidate]
    pool_latencies: list[float]
    drawn: int
    duplicates: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)


def get_mobile_space() -> SearchSpace:
    return get_space(SPACE, resolution=RESOLUTION, num_classes=NUM_CLASSES)


def load_predictor(table: str) -> LatencyPredictor:
    return LatencyPredictor(latency_tables.load(table))


def stratified_sample(space: SearchSpace, predictor: LatencyPredictor, *, pool: int, archs: int, seed: int,
                      exclude: frozenset[str] = frozenset(), progress: bool = True) -> Sample:
    """Draw ``pool`` points with ``seed``, predict their latency, split the pool sorted by latency
    into ``archs`` equal-count bins and keep the first-drawn network of each bin. Duplicates (by
    hash, ``exclude`` included) and points with an op missing from the table leave the pool."""
    if archs < 1 or pool < archs:
        raise ValueError(f"need 1 <= archs <= pool, got archs={archs}, pool={pool}")
    rng = np.random.default_rng(seed)
    seen = set(exclude)
    nets: list[Arch] = []
    lats: list[float] = []
    skipped: list[dict[str, str]] = []
    duplicates = 0
    for _ in tqdm(range(pool), desc="sampling pool", unit="net", disable=not progress):
        arch = space.decode(space.sample_point(rng))
        h = arch.hash()
        if h in seen:
            duplicates += 1
            continue
        seen.add(h)
        try:
            lat = predictor.predict(arch)
        except MissingKeyError as exc:
            skipped.append({"network": h, "reason": str(exc)})
            continue
        nets.append(arch)
        lats.append(lat)
    if len(nets) < archs:
        raise ValueError(f"the pool has {len(nets)} usable distinct networks, fewer than --archs {archs}; "
                         "raise --pool")
    order = np.argsort(np.asarray(lats), kind="stable")
    chosen = []
    group = "view" if isinstance(space, ViewSpace) else "sampled"
    for b, members in enumerate(np.array_split(order, archs)):
        first = int(members.min())  # the first drawn of the bin
        chosen.append(Candidate(nets[first], lats[first], bin=b, group=group))
    return Sample(chosen, lats, pool, duplicates, skipped)


def fixed_points(space: SearchSpace) -> list[tuple[str, Arch]]:
    """The zoo's CIFAR networks (``cifar_*``, moved to the space's class count) the space
    contains, in zoo order."""
    out = []
    for name in zoo.names():
        if not name.startswith("cifar_"):
            continue
        arch = zoo.get(name).replace(num_classes=NUM_CLASSES)
        try:
            space.encode(arch)
        except ValueError:
            continue
        out.append((name, arch))
    return out


def spread_order(k: int) -> list[int]:
    """``0..k-1`` farthest-first: both ends, then each next index the farthest from those taken
    (the smallest on ties), so any prefix spans the range."""
    if k <= 0:
        return []
    order = [0] + ([k - 1] if k > 1 else [])
    rest = [i for i in range(k) if i not in order]
    while rest:
        best = max(rest, key=lambda i: min(abs(i - o) for o in order))
        order.append(best)
        rest.remove(best)
    return order


@dataclass
class Plan:
    """Every planned network in training order, and what was left out."""

    candidates: list[Candidate]
    sample: Sample
    skipped_fixed: list[dict[str, str]]
    view_sample: Sample | None = None


def make_plan(space: SearchSpace, predictor: LatencyPredictor, *, pool: int, archs: int, seed: int,
              with_fixed: bool = True, view_archs: int = 0, progress: bool = True) -> Plan:
    """Fixed points first, then the sample of the whole space and (``view_archs``) the sample of
    the supernet's part of it, interleaved, each in its farthest-first order of latency bins."""
    fixed, skipped_fixed = [], []
    for name, arch in fixed_points(space) if with_fixed else []:
        if any(c.arch.hash() == arch.hash() for c in fixed):
            continue
        try:
            fixed.append(Candidate(arch, predictor.predict(arch), name=name))
        except MissingKeyError as exc:
            skipped_fixed.append({"network": name, "reason": str(exc)})
    sample = stratified_sample(space, predictor, pool=pool, archs=archs, seed=seed,
                               exclude=frozenset(c.arch.hash() for c in fixed), progress=progress)
    queues = [[(i / len(sample.chosen), sample.chosen[b]) for i, b in enumerate(spread_order(len(sample.chosen)))]]
    view = None
    if view_archs:
        view = stratified_sample(ViewSpace(layerwise_view(space)), predictor, pool=pool, archs=view_archs,
                                 seed=seed + 1, progress=progress,
                                 exclude=frozenset(c.arch.hash() for c in fixed + sample.chosen))
        queues.append([(i / view_archs, view.chosen[b]) for i, b in enumerate(spread_order(view_archs))])
    merged = [c for _, c in sorted((q for queue in queues for q in queue), key=lambda q: q[0])]
    return Plan(fixed + merged, sample, skipped_fixed, view)


PLAN_FORMAT = "litenas.bench_ranking_plan"


def _candidate_to_dict(c: Candidate) -> dict[str, Any]:
    return {"arch": c.arch.to_dict(), "latency_ms": c.latency_ms, "name": c.name, "bin": c.bin, "group": c.group}


def _sample_to_dict(sample: Sample) -> dict[str, Any]:
    return {"chosen": [_candidate_to_dict(c) for c in sample.chosen], "pool_latencies": sample.pool_latencies,
            "drawn": sample.drawn, "duplicates": sample.duplicates, "skipped": sample.skipped}


def _candidate(d: dict[str, Any]) -> Candidate:
    return Candidate(Arch.from_dict(d["arch"]), d["latency_ms"], d["name"], d["bin"], d["group"])


def _sample(d: dict[str, Any]) -> Sample:
    return Sample([_candidate(c) for c in d["chosen"]], d["pool_latencies"], d["drawn"], d["duplicates"],
                  d["skipped"])


def frozen_plan(path: Path, settings: dict[str, Any], draw: Callable[[], Plan]) -> Plan:
    """The plan stored in ``path`` for ``settings``, or a new one drawn and stored there. A plan
    is drawn once: which network falls in which latency bin then no longer moves when the table is
    re-measured or re-calibrated (what was trained stays planned); the latencies shown are the
    table's at drawing time."""
    if path.is_file():
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            if d.get("format") == PLAN_FORMAT and d.get("settings") == settings:
                return Plan([_candidate(c) for c in d["candidates"]], _sample(d["sample"]), d["skipped_fixed"],
                            _sample(d["view_sample"]) if d["view_sample"] else None)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a readable plan ({exc}); move it aside to draw the plan again") from None
        log.info("%s holds a plan for other settings; drawing a new one", path)
    plan = draw()
    atomic_write_json(path, {"format": PLAN_FORMAT, "settings": settings,
                             "candidates": [_candidate_to_dict(c) for c in plan.candidates],
                             "sample": _sample_to_dict(plan.sample), "skipped_fixed": plan.skipped_fixed,
                             "view_sample": _sample_to_dict(plan.view_sample) if plan.view_sample else None})
    return plan


# ---------------------------------------------------------------------------------------------
# Estimators: add one by adding a factory to ESTIMATORS
@dataclass(frozen=True)
class Context:
    """What estimators may use: the training data (its train split), the latency predictor and
    the run's settings."""

    data: Dataset
    predictor: LatencyPredictor
    table: str
    threads: int
    seed: int
    proxy_batch: int
    data_path: str = "synthetic"
    records: tuple[TrainedNet, ...] = ()
    supernet: str | None = None


@dataclass(frozen=True)
class Estimator:
    """A score of an architecture, higher meaning "expected more accurate". ``identity`` holds
    whatever changes the score (it keys the score cache)."""

    score: Callable[[Arch], float]
    doc: str
    identity: dict[str, Any] = field(default_factory=dict)


def _macs(ctx: Context) -> Estimator:
    return Estimator(lambda a: float(complexity(a, ptflops=False).macs_conv_linear), "conv+linear MACs")


def _params(ctx: Context) -> Estimator:
    return Estimator(lambda a: float(complexity(a, ptflops=False).params), "parameters")


def _neg_latency(ctx: Context) -> Estimator:
    cal = ctx.predictor.table.calibration
    return Estimator(lambda a: -ctx.predictor.predict(a), f"minus the latency predicted by `{ctx.table}`",
                     {"table": ctx.table, "entries": len(ctx.predictor.table),
                      "calibration": None if cal is None else cal.coef})


def _metric_of(evaluator: Evaluator, metric: str) -> Callable[[Arch], float]:
    """``evaluator``'s ``metric`` of an architecture; its refusal as a ``ValueError``."""
    def score(arch: Arch) -> float:
        res = evaluator(arch)
        if not res.ok:
            raise ValueError(res.reason)
        return res[metric]

    return score


def _proxy(name: str, ctx: Context) -> Estimator:
    ev = ZeroCostProxies(ctx.data, proxies=(name,), batch_size=ctx.proxy_batch, seed=ctx.seed, threads=ctx.threads)
    return Estimator(_metric_of(ev, name), PROXIES[name].doc, ev.config())




def _as_search_scores(ctx: Context, **settings: Any) -> Evaluator:
    """The evaluator a ``nas search`` of ``mobile``@32 on ``ctx.data_path`` with ``settings`` ranks
    by (its defaults otherwise): the held-out split of the training set, never the test set."""
    config = SearchConfig.of(space=SPACE, resolution=RESOLUTION, data=ctx.data_path, seed=ctx.seed, threads=ctx.threads,
                          strategy="random", objective="pareto", latency_table=ctx.table,
                          **settings)
    return make_score_evaluator(config, load_search_data(config, RESOLUTION), RESOLUTION)


def _supernet(ctx: Context) -> Estimator:
    if ctx.supernet is None:
        raise SystemExit("bench_ranking: the supernet estimator needs --supernet DIR (a `nas supernet train` run)")
    ev = _as_search_scores(ctx, evaluator="supernet", supernet=ctx.supernet)
    meta = json.loads((Path(ctx.supernet) / "metrics.json").read_text(encoding="utf-8"))
    seconds = sum(e.get("seconds") or 0.0 for e in meta.get("epochs", []))
    weights = hashlib.sha256((Path(ctx.supernet) / "weights.pt").read_bytes()).hexdigest()[:16]
    return Estimator(_metric_of(ev, "top1"), f"top-1 on held-out training images with weights inherited from the supernet "
                     f"`{ctx.supernet}` after BN re-calibration (search defaults); training it took "
                     f"{seconds / 60:.0f} min once", {**ev.config(), "supernet_seconds": round(seconds, 1), "weights": weights})


def _train_default(ctx: Context) -> Estimator:
    ev = _as_search_scores(ctx, evaluator="train")
    return Estimator(_metric_of(ev, "top1"), "the train evaluator at a search's defaults (1 epoch on 500 images/class, top-1 on "
                     "100 held-out images/class)", ev.config())


def _predictor(ctx: Context, folds: int = 10) -> Estimator:
    """Out-of-fold predictions: each network is scored by a predictor fitted (model picked by its
    own cross-validation) on the other folds' networks only, never on itself."""
    records = sorted(ctx.records, key=lambda r: r.arch_hash)
    space = get_space(SPACE, resolution=RESOLUTION, num_classes=NUM_CLASSES)
    featurize = Featurizer(space)
    predicted: dict[str, float] = {}
    start = time.process_time()
    if len(records) >= max(2 * 5 + 2, folds):
        order = np.random.default_rng(ctx.seed).permutation(len(records))
        for k in range(folds):
            held = set(order[k::folds].tolist())
            fitted = fit_predictor([r for i, r in enumerate(records) if i not in held], space, seed=ctx.seed)
            for i in held:
                predicted[records[i].arch_hash] = float(fitted.predict(featurize(records[i].to_arch())[None])[0][0])
    identity = {"folds": folds, "records": sorted(f"{r.arch_hash}:{r.top1}" for r in records)}

    def score(arch: Arch) -> float:
        if arch.hash() not in predicted:
            raise ValueError(f"no out-of-fold prediction (needs >= {max(12, folds)} trained networks)")
        return predicted[arch.hash()]

    fit_s = time.process_time() - start
    return Estimator(score, f"accuracy predictor ({folds}-fold out-of-fold: fitted without the network it scores; "
                     f"fitting the {folds} folds took {fit_s:.0f} CPU-s)", {"predictor": identity})


ESTIMATORS: dict[str, Callable[[Context], Estimator]] = {
    "macs": _macs,
    "params": _params,
    "neg_latency": _neg_latency,
    **{p: functools.partial(_proxy, p) for p in PROXIES},
    "predictor": _predictor,
    "train_default": _train_default,
    "supernet": _supernet,
}
"""Estimator name -> factory building it from a :class:`Context`."""


class ScoreCache:
    """Estimator scores and their CPU cost per network, in a JSON file written atomically."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.scores: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("format") != SCORES_FORMAT:
                raise SystemExit(f"{self.path}: not a bench_ranking score cache")
            self.scores = data["scores"]

    @staticmethod
    def key(name: str, est: Estimator, arch: Arch) -> str:
        digest = hashlib.sha256(json.dumps(est.identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
        return f"{name}/{digest}/{arch.hash()}"

    def save(self) -> None:
        atomic_write_json(self.path, {"format": SCORES_FORMAT, "version": 1, "scores": self.scores})


def score_all(estimators: dict[str, Estimator], archs: list[Arch], cache: ScoreCache, threads: int,
              progress: bool = True) -> dict[str, dict[str, dict[str, Any]]]:
    """``{arch hash: {estimator: {"score": float | None, "cpu_seconds": float, "error"?}}}``; CPU
    time is this process's (all threads) for one score."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for arch in tqdm(archs, desc="estimators", unit="net", disable=not progress):
        row = out.setdefault(arch.hash(), {})
        dirty = False
        for name, est in estimators.items():
            key = ScoreCache.key(name, est, arch)
            if key not in cache.scores:
                start = time.process_time()
                entry: dict[str, Any] = {}
                try:
                    with fixed_threads(threads):
                        value = float(est.score(arch))
                    if not math.isfinite(value):
                        raise ValueError(f"non-finite score {value}")
                    entry["score"] = value
                except Exception as exc:  # noqa: BLE001 - an estimator failing on one net is reported
                    entry.update(score=None, error=f"{type(exc).__name__}: {exc}"[:300])
                    log.warning("%s failed on %s: %s", name, arch.hash(), entry["error"])
                entry["cpu_seconds"] = round(time.process_time() - start, 4)
                cache.scores[key] = entry
                dirty = True
            row[name] = cache.scores[key]
        if dirty:
            cache.save()
    return out


# ---------------------------------------------------------------------------------------------
# Ground truth
def load_data(args: argparse.Namespace) -> Dataset:
    """The data (``synthetic``: a small generated 10-class 32x32 set for tests), reduced to the
    class-balanced subsets (seed 0)."""
    if args.data == "synthetic":
        data = synthetic(num_classes=NUM_CLASSES, resolution=RESOLUTION, train_per_class=8, test_per_class=4)
    else:
        data = load_dataset(args.data, cache_dir=args.data_cache)
    if data.num_classes != NUM_CLASSES or data.train.images.shape[1:] != (RESOLUTION, RESOLUTION, 3):
        raise SystemExit(f"{args.data}: need {NUM_CLASSES} classes of {RESOLUTION}x{RESOLUTION} RGB images, got "
                         f"{data.num_classes} of {data.train.images.shape[1:]}")
    return data.subset(train_per_class=args.train_per_class, test_per_class=args.test_per_class, seed=SUBSET_SEED)


def recipe(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(epochs=args.epochs, batch_size=BATCH_SIZE, seed=args.seed)


def train_missing(plan: Plan, data: Dataset, config: TrainConfig, store: TrainedNets, args: argparse.Namespace,
                  started: float) -> dict[str, Any]:
    """Train the planned networks the store lacks, in plan order, within ``--limit`` and
    ``--time-budget-s``; every result is added to the store at once."""
    done = {r.arch_hash for r in store.select(data_fingerprint=data.fingerprint, recipe=config.to_dict())}
    index, count = args.shard
    todo = [c for i, c in enumerate(plan.candidates) if i % count == index and c.arch.hash() not in done]
    if args.limit is not None:
        todo = todo[:args.limit]
    exec_plan = plan_for("cpu", threads=args.threads)
    trained, failed, stopped = [], [], None
    bar = tqdm(todo, desc="training", unit="net", disable=args.quiet)
    for c in bar:
        if args.time_budget_s is not None and time.monotonic() - started >= args.time_budget_s:
            stopped = f"time budget of {args.time_budget_s:g} s spent"
            break
        bar.set_postfix_str(f"{c.label} ({c.latency_ms:.2f} ms)")
        cx = complexity(c.arch, ptflops=False)
        try:
            out = train_and_evaluate(c.arch, data, config, plan=exec_plan, progress=not args.quiet)
        except Diverged as exc:
            log.warning("%s diverged (%s); not stored, retried next time", c.label, exc)
            failed.append({"network": c.label, "reason": f"diverged: {exc}"})
            continue
        except KeyboardInterrupt:
            stopped = "interrupted"
            break
        store.add(TrainedNet.of(c.arch, data.describe(), config.to_dict(), out.top1, top5=out.top5,
                                seconds=round(out.seconds, 2), source=SOURCE,
                                extra={"name": c.name, "kind": c.kind, "bin": c.bin,
                                       "latency_pred_ms": round(c.latency_ms, 4), "params": cx.params,
                                       "macs": cx.macs_conv_linear, "train_loss": out.train_loss,
                                       "threads": args.threads, "plan": exec_plan.describe(),
                                       "machine": machine()["cpu"]}))
        trained.append(c.label)
        log.info("%s: top-1 %.2f%% in %.0f s", c.label, out.top1, out.seconds)
    return {"trained": trained, "failed": failed, "stopped": stopped}


# ---------------------------------------------------------------------------------------------
# Report
@functools.cache
def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
        cpu = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name")), cpu)
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version()}


def _tau(pairs: list[tuple[float, float]]) -> float | None:
    if len(pairs) < 2:
        return None
    t = kendall_tau([p[0] for p in pairs], [p[1] for p in pairs])
    return None if math.isnan(t) else t


def build_report(plan: Plan, data: Dataset, config: TrainConfig, store: TrainedNets, scores_of: Callable[
        [list[Arch]], dict[str, dict[str, dict[str, Any]]]], estimator_docs: dict[str, str],
        args: argparse.Namespace, command: str, invocation: dict[str, Any]) -> dict[str, Any]:
    records = store.select(data_fingerprint=data.fingerprint, recipe=config.to_dict())
    planned = {c.arch.hash(): c for c in plan.candidates}
    fixed_hashes = {c.arch.hash() for c in plan.candidates if c.kind == "fixed"}
    have = {r.arch_hash for r in records}
    scores = scores_of([r.to_arch() for r in records])
    rows = []
    for r in records:
        c = planned.get(r.arch_hash)
        # A trained network the plan no longer holds (an earlier plan's) counts in "all" only.
        kind = c.kind if c else ("fixed" if r.arch_hash in fixed_hashes else "earlier")
        rows.append({
            "network": r.extra.get("name") or (c.label if c else r.arch_hash), "arch_hash": r.arch_hash,
            "kind": kind, "planned": c is not None, "bin": c.bin if c else r.extra.get("bin"),
            "latency_pred_ms": c.latency_ms if c else r.extra.get("latency_pred_ms"),
            "params": r.extra.get("params"), "macs": r.extra.get("macs"), "top1": r.top1, "top5": r.top5,
            "seconds": r.seconds, "source": r.source, "arch": r.arch,
            "scores": {k: v.get("score") for k, v in scores[r.arch_hash].items()},
        })
    rows.sort(key=lambda row: (row["kind"] != "fixed", row["latency_pred_ms"] or 0.0))
    taus = {}
    for name in estimator_docs:
        entry: dict[str, Any] = {"doc": estimator_docs[name]}
        for group in GROUPS:
            pairs = [(row["scores"][name], row["top1"]) for row in rows
                     if row["scores"].get(name) is not None and group in ("all", row["kind"])]
            entry[group] = {"tau": _tau(pairs), "n": len(pairs)}
        costs = [scores[h][name]["cpu_seconds"] for h in scores  # of the scored networks: a refusal costs ~0
                 if name in scores[h] and scores[h][name].get("score") is not None]
        entry["cpu_seconds_median"] = statistics.median(costs) if costs else None
        entry["cpu_seconds_mean"] = statistics.fmean(costs) if costs else None
        taus[name] = entry
    remaining = [{"network": c.label, "kind": c.kind, "bin": c.bin, "latency_pred_ms": c.latency_ms}
                 for c in plan.candidates if c.arch.hash() not in have]
    train_seconds = [r["seconds"] for r in rows if r["seconds"]]
    return {
        "meta": {
            "command": command, "machine": machine(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "space": SPACE, "resolution": RESOLUTION, "num_classes": NUM_CLASSES,
            "latency_table": args.latency_table, "pool": args.pool, "archs": args.archs,
            "view_archs": args.view_archs,
            "sample_seed": args.sample_seed, "fixed_points": not args.no_fixed_points,
            "results": str(args.results), "scores": str(args.scores),
            "data": {"source": str(args.data), **data.describe(), "train_per_class": args.train_per_class,
                     "test_per_class": args.test_per_class, "subset_seed": SUBSET_SEED},
            "recipe": config.to_dict(), "threads": args.threads, "proxy_batch": args.proxy_batch,
            "pool_usable": len(plan.sample.pool_latencies), "pool_duplicates": plan.sample.duplicates,
            "pool_latency_range_ms": [min(plan.sample.pool_latencies), max(plan.sample.pool_latencies)],
        },
        "progress": {"planned": len(plan.candidates), "trained": len(set(planned) & have),
                     "planned_fixed": sum(c.kind == "fixed" for c in plan.candidates),
                     "trained_fixed": sum(c.kind == "fixed" and c.arch.hash() in have for c in plan.candidates),
                     "planned_view": sum(c.kind == "view" for c in plan.candidates),
                     "trained_view": sum(c.kind == "view" and c.arch.hash() in have for c in plan.candidates),
                     "records": len(rows), "train_seconds_total": sum(train_seconds),
                     "train_seconds_mean": statistics.fmean(train_seconds) if train_seconds else None},
        "invocation": invocation,
        "kendall_tau": taus,
        "rows": rows,
        "remaining": remaining,
        "skipped": plan.skipped_fixed + plan.sample.skipped,
    }


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def tau_table(report: dict[str, Any]) -> str:
    lines = ["| estimator | " + " | ".join(f"tau, {g} (n)" for g in GROUPS) + " | CPU-s / candidate (median) | what |",
             "|---|" + "---:|" * (len(GROUPS) + 1) + "---|"]
    for name, e in report["kendall_tau"].items():
        cells = " | ".join(f"{_f(e[g]['tau'], '+.3f')} ({e[g]['n']})" for g in GROUPS)
        lines.append(f"| {name} | {cells} | {_f(e['cpu_seconds_median'], '.3f')} | {e['doc']} |")
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    m, p = report["meta"], report["progress"]
    d, r = m["data"], m["recipe"]
    lo, hi = m["pool_latency_range_ms"]
    status = (f"**{p['trained']} of {p['planned']} planned networks trained** ({p['trained_fixed']} of "
              f"{p['planned_fixed']} fixed points, {p['trained_view']} of {p['planned_view']} sampled from the "
              "supernet's part, "
              f"{p['trained'] - p['trained_fixed'] - p['trained_view']} of "
              f"{p['planned'] - p['planned_fixed'] - p['planned_view']} sampled from the whole space).")
    if report["remaining"]:
        status += (f" {len(report['remaining'])} remain to be trained (listed at the end); re-run the command below "
                   "without `--report-only` to continue (it skips what the results file holds; one process per "
                   "core with `--shard I/N`).")
    else:
        status += " The ground truth is complete."
    lines = [
        f"# Ranking benchmark: estimators vs stand-alone training (`{m['space']}`@{m['resolution']}, CIFAR-10)",
        "",
        status,
        "",
        f"Networks: {m['archs']} sampled from a pool of {m['pool']} random `{m['space']}` points at "
        f"{m['resolution']}x{m['resolution']}, {m['num_classes']} classes (seed {m['sample_seed']}; "
        f"{m['pool_usable']} distinct with every op in the table), one per equal-count bin of the latency "
        f"predicted by `{m['latency_table']}` ({lo:.2f}-{hi:.2f} ms over the pool)"
        + (", plus the CIFAR fixed points of the zoo that the space contains" if m["fixed_points"] else "")
        + (f"; and {m['view_archs']} sampled the same way (seed {m['sample_seed'] + 1}) from the part of the space "
           "that a supernet holds." if m.get("view_archs") else "."),
        "",
        f"Recipe (one for all): {r['epochs']} epoch{'s' if r['epochs'] != 1 else ''}, batch {r['batch_size']}, "
        f"SGD lr {r['lr']} momentum {r['momentum']} Nesterov, weight decay {r['weight_decay']}, {r['warmup_fraction']:.0%} warm-up then cosine, "
        f"label smoothing {r['label_smoothing']}, random crop (pad {r['crop_padding']}) + flip, seed {r['seed']}; "
        f"fp32 channels_last on {m['threads']} CPU thread(s). Data: `{d['source']}`, {d['train']} training images "
        f"({d['train_per_class']} per class, subset seed {d['subset_seed']}), top-1 on {d['test']} test images "
        f"(fingerprint `{d['fingerprint']}`). Results file: `{m['results']}`.",
        "",
        "## Kendall tau of each estimator with top-1",
        "",
        "Kendall tau-b (1: the estimator ranks the networks exactly as their trained top-1; every score is "
        "\"higher is better\"). \"sampled\": the latency-stratified sample of the whole space; \"view\": the "
        "sample of the supernet's part of it (width 1.0, deepest stages, fixed stem and head: the only networks a "
        "supernet estimator can score); \"all\": every trained network, fixed points and networks of earlier "
        f"plans included; \"-\": fewer than 2 networks, or constant scores or top-1. CPU-s: process CPU time to "
        f"score one candidate ({m['threads']} thread(s)); proxies use one batch of {m['proxy_batch']} training "
        "images. Latencies are the table's predictions (how far they are from measured ones: "
        "`latency_tables/README.md`).",
        "",
        tau_table(report),
        "",
        "## Networks",
        "",
        "| network | kind | latency bin | pred. latency (ms) | params (M) | MACs (M) | top-1 (%) | top-5 (%) "
        "| train (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["rows"]:
        lines.append(
            f"| {row['network']} | {row['kind']} | {_f(row['bin'], 'd')} | {_f(row['latency_pred_ms'], '.2f')} | "
            f"{_f(None if row['params'] is None else row['params'] / 1e6, '.3f')} | "
            f"{_f(None if row['macs'] is None else row['macs'] / 1e6, '.1f')} | {row['top1']:.2f} | "
            f"{_f(row['top5'], '.2f')} | {_f(row['seconds'], '.0f')} |")
    if not report["rows"]:
        lines.append("| (none trained yet) | | | | | | | | |")
    if p["train_seconds_mean"] is not None:
        lines += ["", f"Training time: {p['train_seconds_total'] / 60:.1f} min in all, "
                      f"{p['train_seconds_mean']:.0f} s per network on average."]
    if report["remaining"]:
        lines += ["", f"## Not trained yet ({len(report['remaining'])})", "",
                  ", ".join(f"{x['network']} ({x['latency_pred_ms']:.2f} ms)" for x in report["remaining"])]
    if report["skipped"]:
        lines += ["", "## Skipped (ops missing from the latency table)", ""]
        lines += [f"- {s['network']}: {s['reason']}" for s in report["skipped"]]
    mc = m["machine"]
    lines += ["", f"Machine: {mc['cpu']}, {mc['cores']} cores, torch {mc['torch']}; report of {m['date']}.", "",
              f"Command: `{m['command']}`", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
def parse_shard(text: str, p: argparse.ArgumentParser) -> tuple[int, int]:
    """``"I/N"`` as ``(I, N)`` with ``0 <= I < N``; anything else is a usage error."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        p.error(f"--shard: expected I/N (e.g. 0/2), got {text!r}")
    if not 0 <= index < count:
        p.error(f"--shard: need 0 <= I < N, got {text!r}")
    return index, count


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/cifar10-jpg.tar.gz",
                   help="CIFAR-10 (.tar.gz, image folders or python batches), or 'synthetic' for tests "
                        "(default %(default)s)")
    p.add_argument("--data-cache", default=None, help="dataset extraction/decoding cache (default ~/.cache/litenas)")
    p.add_argument("--pool", type=int, default=2000, help="random points to stratify (default %(default)s)")
    p.add_argument("--archs", type=int, default=40, help="sampled networks = latency bins (default %(default)s)")
    p.add_argument("--view-archs", type=int, default=16,
                   help="networks sampled (stratified the same way) from the part of the space a supernet holds "
                        "(width 1.0, deepest, fixed stem/head): the supernet estimator can score only those; 0: none "
                        "(default %(default)s)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the sampling (default %(default)s)")
    p.add_argument("--latency-table", default="mobile_32_cpu", help="shipped table name or file (default %(default)s)")
    p.add_argument("--no-fixed-points", action="store_true", help="leave out the zoo's CIFAR fixed points")
    p.add_argument("--train-per-class", type=int, default=1000, help="training images per class (default %(default)s)")
    p.add_argument("--test-per-class", type=int, default=1000, help="test images per class (default %(default)s)")
    p.add_argument("--epochs", type=int, default=5, help="training epochs (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="training seed, also of the proxies (default %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default %(default)s)")
    p.add_argument("--proxy-batch", type=int, default=64, help="images of the proxies' batch (default %(default)s)")
    p.add_argument("--estimators", default=None,
                   help=f"comma-separated estimators to score (default: all of {', '.join(ESTIMATORS)}; supernet "
                        "only with --supernet)")
    p.add_argument("--supernet", default=None, help="`nas supernet train` directory of mobile@32 (supernet estimator)")
    p.add_argument("--limit", type=int, default=None, help="train at most N new networks in this invocation")
    p.add_argument("--time-budget-s", type=float, default=None,
                   help="start no new training after this many seconds of this invocation")
    p.add_argument("--shard", default="0/1", metavar="I/N",
                   help="train only the planned networks whose plan position is I modulo N: run N processes "
                        "(I = 0..N-1, --threads 1 each) to use N cores; they share --results safely "
                        "(default %(default)s)")
    p.add_argument("--report-only", action="store_true", help="only regenerate the report from the results file")
    p.add_argument("--results", default="docs/bench_ranking_trained.json",
                   help="TrainedNets results file (default %(default)s)")
    p.add_argument("--plan", default="docs/bench_ranking_plan.json",
                   help="the networks planned, drawn once per setting and kept (default %(default)s)")
    p.add_argument("--scores", default="docs/bench_ranking_scores.json",
                   help="cache of estimator scores and costs (default %(default)s)")
    p.add_argument("--out", default="docs/bench_ranking", help="report prefix: .md and .json (default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.archs < 2 or args.pool < args.archs:
        p.error("need --archs >= 2 and --pool >= --archs")
    if args.view_archs < 0 or args.view_archs > args.pool:
        p.error("need 0 <= --view-archs <= --pool")
    if args.threads < 1 or args.epochs < 1 or args.proxy_batch < 2:
        p.error("--threads and --epochs must be >= 1, --proxy-batch >= 2")
    if args.limit is not None and args.limit < 0:
        p.error("--limit must be >= 0")
    args.shard = parse_shard(args.shard, p)
    default = [e for e in ESTIMATORS if e != "supernet" or args.supernet]
    args.estimator_names = default if args.estimators is None else [
        e.strip() for e in args.estimators.split(",") if e.strip()]
    unknown = [e for e in args.estimator_names if e not in ESTIMATORS]
    if unknown or not args.estimator_names:
        p.error(f"unknown estimators {unknown}; known: {', '.join(ESTIMATORS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    command = shlex.join(["python", "scripts/bench_ranking.py", *(sys.argv[1:] if argv is None else argv)])

    space = get_mobile_space()
    predictor = load_predictor(args.latency_table)
    settings = {"space": SPACE, "resolution": RESOLUTION, "num_classes": NUM_CLASSES, "pool": args.pool,
                "archs": args.archs, "sample_seed": args.sample_seed, "view_archs": args.view_archs,
                "fixed_points": not args.no_fixed_points}
    try:
        plan = frozen_plan(Path(args.plan), settings, lambda: make_plan(
            space, predictor, pool=args.pool, archs=args.archs, seed=args.sample_seed, view_archs=args.view_archs,
            with_fixed=not args.no_fixed_points, progress=not args.quiet))
    except ValueError as exc:
        raise SystemExit(f"bench_ranking: {exc}") from None
    for s in plan.skipped_fixed + plan.sample.skipped:
        log.warning("skipped %s: %s", s["network"], s["reason"])
    data = load_data(args)
    config = recipe(args)
    store = TrainedNets(args.results)
    log.info("%d networks planned (%d fixed points); data %d train / %d test images; %d records in %s",
             len(plan.candidates), sum(c.kind == "fixed" for c in plan.candidates), len(data.train), len(data.test),
             len(store), args.results)

    invocation: dict[str, Any] = {"trained": [], "failed": [], "stopped": None, "report_only": args.report_only}
    if not args.report_only:
        invocation.update(train_missing(plan, data, config, store, args, started))

    ctx = Context(data, predictor, args.latency_table, args.threads, args.seed, args.proxy_batch, args.data,
                  tuple(store.select(data_fingerprint=data.fingerprint, recipe=config.to_dict())), args.supernet)
    estimators = {name: ESTIMATORS[name](ctx) for name in args.estimator_names}
    cache = ScoreCache(args.scores)
    report = build_report(plan, data, config, store,
                          lambda archs: score_all(estimators, archs, cache, args.threads, progress=not args.quiet),
                          {k: e.doc for k, e in estimators.items()}, args, command, invocation)
    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), report)
    atomic_write_text(out.with_suffix(".md"), markdown(report))

    p = report["progress"]
    print(f"{p['trained']} of {p['planned']} planned networks trained ({len(invocation['trained'])} new"
          + (f"; stopped: {invocation['stopped']}" if invocation["stopped"] else "") + f"); report {out}.md")
    print(tau_table(report))
    print(json.dumps({"planned": p["planned"], "trained": p["trained"], "new": len(invocation["trained"]),
                      "failed": len(invocation["failed"]), "remaining": len(report["remaining"]),
                      "kendall_tau": {k: {g: v[g]["tau"] for g in GROUPS}
                                      for k, v in report["kendall_tau"].items()},
                      "report": f"{out}.md"}))
    return 130 if invocation["stopped"] == "interrupted" else 0


if __name__ == "__main__":
    raise SystemExit(main())
