"""Does a search beat the surveyed networks at their own latency? For each CIFAR fixed point of the
zoo, search ``mobile``@32 for the best network within the fixed point's *measured* CPU latency, then
train both with one recipe over several seeds and report top-1 and measured latency side by side.

Why: the claim a NAS user judges litenas by is that what a search emits beats the networks it is
compared with, at equal latency on the target device. Goal (issue 15): at every budget a found
network at <= the fixed point's measured latency with >= +1.0 point top-1 over 2 seeds (each
seed's difference >= +1.0: the found and the fixed network trained with the same seed).

Per fixed point (``--fixed-points``; the four standard ones by default, their padding-free ``_pf``
variants on request or with ``all``):

1. Budget: its latency measured here exactly as ``bench_cifar10_zoo.py`` measures it (batch 1, one
   thread, eager float32, CPU time of the calling thread, median).
2. Search: ``nas search``'s runner (:class:`nas.search.runner.Search`): regularized evolution over
   ``mobile``@32 started from the fixed point (``start_from``; ``--no-warm-start`` for random
   starts), latency predicted by ``--latency-table`` adapted to this machine first
   (``--adapt-networks``), hard constraint ``--max-latency-ms`` = the larger of the budget and the
   table's prediction of the fixed point (no slower than the fixed point as the table sees it),
   MnasNet's hard reward (the estimated accuracy, nothing for being faster), ranked by
   ``--evaluator``: ``auto`` is ``predictor`` with ``--predictor`` or, without it, the shipped
   ``mobile_32_cifar10`` predictor; only where neither exists ``train`` (short
   training on images held out of the training set, never the test set).
3. Pick, confirmed by measurement: the search's ``--top-k`` best new candidates (the fixed point
   itself left out) are measured like the fixed point; the best-ranked one whose measured latency
   is <= the budget is the found network
   (none when all of them measure over it: the report says so).
4. Train the found networks and the fixed points with one recipe (the training loop of ``nas
   train``, through the train evaluator) for each seed in ``0..--seeds-1``; top-1 on the test set.

Presets (every number can be overridden by its flag):

- ``cpu`` (default; <= 3 hours on the project's 2-core CPU VM, even at ``--threads 1`` beside other
  work): recipe 1000 training images per class (10,000) x 3 epochs, batch 128 (the zoo benchmark's
  budget, so its figures compare), top-1 on all 10,000 test images; search 20 candidates per budget
  (population 10), ranked by the shipped accuracy predictor (milliseconds each). The estimate, from
  the training speed measured on that VM at one thread (``docs/bench_ranking_trained.json``: 72-235
  images/s for the four fixed points, about 130 on average; networks within their latency cost about
  the same): final training 2 seeds x (4 fixed + 4 found) x 30,000 images + the test set ~ 80 min;
  latency ~ 2 min: about 1.4 hours. ``--fixed-points all`` (8 budgets) doubles it. Without a
  predictor (``--evaluator train``) each candidate is trained 2 epochs on 300 images per class
  (batch 64, 94 steps) and ranked on 50 held-out training images per class: 4 x 20 candidates x
  ~50 s ~ 67 min more, by a weak signal (issue 15: 500 images/class x 1 epoch scores the fixed
  points at chance).
- ``gpu`` (``--device cuda``): the long schedule: the full 50,000 training images x 100 epochs,
  top-1 on the 10,000 test images; search 100 candidates per budget, each trained 10 epochs on 1,000
  images per class. Latency is still measured on this machine's CPU.
- ``smoke`` (tests): synthetic data, one fixed point, three candidates ranked by the naswot proxy
  (seconds; ``--evaluator train`` trains them), one tiny epoch.

Everything is cached under ``--work`` (atomic JSON): the measured latencies and every trained
(architecture hash, recipe, seed) result in ``cache/``, every search in its own run directory
(``search/<fixed point>-<settings digest>``, resumed by the runner); killed at any moment, the same
command continues where it stopped, and a finished run re-run only redraws the outputs.

Run it on an otherwise quiet machine: the search constrains the *table's* prediction (measured when
the machine was quiet) by a *measured* budget, so other work that slows the measurements (even the
CPU clock: a busy sibling core shares caches) widens the gap between the two, and every candidate
the table admits can then measure over the budget (the report shows the table's and the measured
figures of each candidate).

Writes ``--out``.md, .json and .png (top-1 vs measured latency), each naming its command::

    OMP_NUM_THREADS=1 python scripts/bench_search_vs_zoo.py --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import logging
import math
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch
from tqdm.auto import tqdm

import latency_tables
from evaluators import Cached, Dataset, JsonCache, MeasuredLatency, TrainConfig, TrainedAccuracy
from evaluators.datasets import load_dataset, synthetic
from evaluators.predictor import resolve_predictor, shipped_predictors
from evaluators.proxies import PROXIES
from latency_tables.adapt import adapt
from latency_tables.device import device_name, fingerprint
from latency_tables.measure import Settings
from latency_tables.predict import LatencyPredictor
from latency_tables.sampling import stratified_archs, zoo_archs
from latency_tables.table import MissingKeyError
from nas.arch import Arch
from nas.complexity import complexity
from nas.io import atomic_path, atomic_write_json, atomic_write_text
from nas.search.config import SearchConfig
from nas.search.runner import Search
from nas.search.store import Record
from search_spaces import zoo

log = logging.getLogger("bench_search_vs_zoo")

SPACE = "mobile"
RESOLUTION = 32
NUM_CLASSES = 10
SUBSET_SEED = 0
GOAL_POINTS = 1.0
STANDARD = ("cifar_shufflenet_v2_x0_5", "cifar_shufflenet_v2_x1_0", "cifar_mobilenet_v3_large", "cifar_ghostnet_100")
FIXED_POINTS = STANDARD + tuple(f"{n}_pf" for n in STANDARD)
"""The fixed points this benchmark knows: the standard CIFAR nets and their padding-free variants."""
MOONSHOT = ("cifar_shufflenet_v2_x1_0", "cifar_mobilenet_v3_large")
"""Issue 15's moonshot: at the first one's latency, the second one's accuracy."""
EVALUATOR_CHOICES = ("auto", "proxy", "predictor", "supernet", "train")
ADAPT_SEED = 3
"""Sampling seed of the networks the table is adapted on (``nas latency adapt``'s default)."""
SHIPPED_PREDICTOR = "mobile_32_cifar10"
"""The predictor ``auto`` ranks by when it is shipped (fitted on ``docs/bench_ranking_trained.json``)."""
BENCH_LATENCY = Settings(threads=1, clock="cpu")
"""Whole-network latency as ``bench_cifar10_zoo.py`` measures it (its harness defaults)."""


@dataclass(frozen=True)
class Preset:
    """A named set of defaults: data, which fixed points, the search's and the final recipe's
    budgets, how many candidates are measured, the training device and the latency harness."""

    doc: str
    data: str
    fixed_points: tuple[str, ...]
    evaluator: str
    search_budget: int
    population: int
    sample_size: int
    search_train_per_class: int | None
    search_holdout_per_class: int | None
    search_epochs: int
    train_per_class: int | None
    test_per_class: int | None
    epochs: int
    batch_size: int
    top_k: int
    adapt_networks: int
    device: str
    latency: Settings
    out: str


PRESETS: dict[str, Preset] = {
    "cpu": Preset("1000 images/class x 3 epochs; search 20 candidates (300 images/class x 2 epochs each)",
                  "../shared/data/cifar10-jpg.tar.gz", STANDARD, "auto", search_budget=20, population=10, sample_size=3,
                  search_train_per_class=300, search_holdout_per_class=50, search_epochs=2, train_per_class=1000,
                  test_per_class=None, epochs=3, batch_size=128, top_k=10, adapt_networks=40, device="cpu",
                  latency=BENCH_LATENCY, out="docs/bench_search_vs_zoo"),
    "gpu": Preset("full training set x 100 epochs; search 100 candidates (1000 images/class x 10 epochs each)",
                  "../shared/data/cifar10-jpg.tar.gz", STANDARD, "auto", search_budget=100, population=25, sample_size=5,
                  search_train_per_class=1000, search_holdout_per_class=100, search_epochs=10,
                  train_per_class=None, test_per_class=None, epochs=100, batch_size=128, top_k=10, adapt_networks=40,
                  device="cuda", latency=BENCH_LATENCY, out="docs/bench_search_vs_zoo_gpu"),
    "smoke": Preset("synthetic data, tiny budgets, candidates ranked by the naswot proxy (tests)", "synthetic",
                    STANDARD[:1], "proxy", search_budget=3,
                    population=2, sample_size=1, search_train_per_class=None, search_holdout_per_class=None,
                    search_epochs=1, train_per_class=8, test_per_class=4, epochs=1, batch_size=16, top_k=2,
                    adapt_networks=0, device="cpu", latency=Settings(threads=1, clock="cpu", warmup=2, min_repeats=5, max_repeats=20,
                                                   max_seconds=0.3),
                    out="runs/bench_search_vs_zoo/smoke/report"),
}


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line on stderr (naming the flag) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, with the preset's defaults filled in and every input checked."""
    p = _Parser(prog="bench_search_vs_zoo.py", description=__doc__.split("\n\n")[0],
                epilog="\n\n".join(__doc__.split("\n\n")[1:]), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=tuple(PRESETS), default="cpu",
                   help="; ".join(f"{k}: {v.doc}" for k, v in PRESETS.items()) + " (default %(default)s)")
    p.add_argument("--fixed-points", default=None,
                   help=f"comma-separated fixed points, or 'all' (known: {', '.join(FIXED_POINTS)}; default: the "
                        "preset's)")
    p.add_argument("--seeds", type=int, default=2, help="training seeds 0..N-1 of every network (default %(default)s)")
    p.add_argument("--data", default=None, help="CIFAR-10 (.tar.gz, image folders or python batches) or 'synthetic' "
                                                "(default: the preset's)")
    p.add_argument("--data-cache", default=None, help="dataset extraction/decoding cache (default ~/.cache/litenas)")
    p.add_argument("--evaluator", choices=EVALUATOR_CHOICES, default=None,
                   help="what the search ranks candidates by: auto = predictor (--predictor, else the shipped "
                        f"{SHIPPED_PREDICTOR}), else train "
                        "(short training, the preset's --search-* budget) (default: the preset's: auto, proxy for "
                        "smoke)")
    p.add_argument("--predictor", default=None, help="accuracy predictor file or shipped name (evaluator predictor)")
    p.add_argument("--supernet", default=None, help="`nas supernet train` directory of mobile@32 (evaluator supernet)")
    p.add_argument("--proxy", choices=tuple(PROXIES), default="naswot", help="evaluator proxy (default %(default)s)")
    p.add_argument("--latency-table", default="mobile_32_cpu", help="table the search predicts latency with "
                                                                    "(default %(default)s)")
    p.add_argument("--adapt-networks", type=int, default=None,
                   help="adapt --latency-table to this machine first (`nas latency adapt`: this many networks + the "
                        "fixed points measured, cached in --work per machine), so that the table's predictions and "
                        "the measured budgets agree; 0 uses the table as it is (default: the preset's: 40, smoke 0)")
    p.add_argument("--no-warm-start", action="store_true",
                   help="start each search from random networks only, not from its fixed point (evaluated first, "
                        "evolution then mutates the best: the budget of a fast fixed point lies where random "
                        "networks rarely go)")
    p.add_argument("--measure-missing", action=argparse.BooleanOptionalAction, default=True,
                   help="measure ops the latency table lacks on the spot (in memory; in the source's units on an "
                        "adapted table), instead of failing the candidate: the fixed points' neighbours use op "
                        "configurations the space's sampler does not (default: on)")
    p.add_argument("--search-budget", type=int, default=None, help="candidates evaluated per search")
    p.add_argument("--search-epochs", type=int, default=None, help="epochs of the train evaluator in the search")
    p.add_argument("--search-train-per-class", type=int, default=None,
                   help="training images per class of the train evaluator in the search")
    p.add_argument("--search-seed", type=int, default=0, help="seed of the searches (default %(default)s)")
    p.add_argument("--top-k", type=int, default=None, help="best candidates of a search measured for the pick")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the final recipe")
    p.add_argument("--train-per-class", type=int, default=None,
                   help="training images per class of the final recipe (0: the whole training set)")
    p.add_argument("--device", default=None, help="training device (default: the preset's)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of training and search (default %(default)s)")
    p.add_argument("--work", default=None, help="caches and search runs (default runs/bench_search_vs_zoo/PRESET)")
    p.add_argument("--out", default=None, help="report prefix: .md, .json, .png (default: the preset's)")
    p.add_argument("--json", action="store_true", help="print only a JSON summary on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)

    pre = PRESETS[args.preset]
    for name, value in (("search_budget", pre.search_budget), ("search_epochs", pre.search_epochs),
                        ("search_train_per_class", pre.search_train_per_class), ("top_k", pre.top_k),
                        ("adapt_networks", pre.adapt_networks),
                        ("epochs", pre.epochs), ("train_per_class", pre.train_per_class), ("device", pre.device),
                        ("data", pre.data), ("out", pre.out)):
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.train_per_class == 0:
        args.train_per_class = None
    args.work = args.work or f"runs/bench_search_vs_zoo/{args.preset}"

    names = (pre.fixed_points if args.fixed_points is None else FIXED_POINTS if args.fixed_points.strip() == "all"
             else tuple(dict.fromkeys(n.strip() for n in args.fixed_points.split(",") if n.strip())))
    unknown = [n for n in names if n not in FIXED_POINTS]
    if unknown or not names:
        p.error(f"--fixed-points: unknown {', '.join(map(repr, unknown)) or 'empty list'}; known: "
                f"{', '.join(FIXED_POINTS)}, or all")
    args.fixed_point_names = names
    for flag in ("seeds", "search_budget", "search_epochs", "top_k", "epochs", "threads"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')}: must be >= 1, got {getattr(args, flag)}")
    if args.adapt_networks < 0:
        p.error(f"--adapt-networks: must be >= 0, got {args.adapt_networks}")
    for flag in ("search_train_per_class", "train_per_class"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            p.error(f"--{flag.replace('_', '-')}: must be >= 1, got {getattr(args, flag)}")
    if args.data != "synthetic" and not Path(args.data).expanduser().exists():
        p.error(f"--data: {args.data}: no such file or directory")
    if args.evaluator is None:  # a predictor given is what ranks, whatever the preset's default
        args.evaluator = "predictor" if args.predictor else pre.evaluator
    if args.evaluator == "auto":  # the accuracy predictor shipped for this task, if any, ranks best
        if args.predictor is None and SHIPPED_PREDICTOR in shipped_predictors():
            args.predictor = SHIPPED_PREDICTOR
        args.evaluator = "predictor" if args.predictor else "train"
    if (args.evaluator == "predictor") != (args.predictor is not None):
        p.error(f"--predictor: give it exactly with --evaluator predictor or auto (evaluator {args.evaluator})")
    if (args.evaluator == "supernet") != (args.supernet is not None):
        p.error(f"--supernet: give it exactly with --evaluator supernet (evaluator {args.evaluator})")
    if args.predictor is not None:
        try:
            resolve_predictor(args.predictor)
        except ValueError as exc:
            p.error(f"--predictor: {exc}")
    if args.supernet is not None and not Path(args.supernet).is_dir():
        p.error(f"--supernet: {args.supernet}: not a directory")
    if not Path(args.latency_table).is_file() and args.latency_table not in latency_tables.names():
        p.error(f"--latency-table: {args.latency_table}: neither a file nor a shipped table "
                f"({', '.join(latency_tables.names())})")
    args.preset_settings = pre
    return args


# ---------------------------------------------------------------------------------------------
# Data, latency, training
def load_data(args: argparse.Namespace) -> Dataset:
    """The final recipe's data: ``--train-per-class`` training images per class (subset seed 0) and
    the preset's test images (all of them for ``cpu`` and ``gpu``). ``ValueError`` for data that is
    not 10 classes of 32x32 RGB images."""
    pre: Preset = args.preset_settings
    if args.data == "synthetic":
        return synthetic(num_classes=NUM_CLASSES, resolution=RESOLUTION, train_per_class=args.train_per_class or 8,
                         test_per_class=pre.test_per_class or 4)
    data = load_dataset(args.data, cache_dir=args.data_cache, progress=not args.quiet)
    if data.num_classes != NUM_CLASSES or data.train.images.shape[1:] != (RESOLUTION, RESOLUTION, 3):
        raise ValueError(f"{args.data}: need {NUM_CLASSES} classes of {RESOLUTION}x{RESOLUTION} RGB images, got "
                         f"{data.num_classes} of {data.train.images.shape[1:]}")
    return data.subset(train_per_class=args.train_per_class, test_per_class=pre.test_per_class, seed=SUBSET_SEED)


@dataclass
class Counters:
    """What this invocation computed (everything else came from the caches)."""

    measured: int = 0
    trained: int = 0
    search_evaluated: int = 0


class Measurer:
    """Measured latency (ms) of architectures through the result cache, counting new measurements."""

    def __init__(self, settings: Settings, cache: JsonCache, counters: Counters):
        self.evaluator = Cached(MeasuredLatency(settings=settings), cache)
        self.counters = counters

    def __call__(self, arch: Arch) -> float:
        if self.evaluator.lookup(arch) is None:
            self.counters.measured += 1
        res = self.evaluator(arch)
        if not res.ok:
            raise RuntimeError(f"measuring {arch.hash()} failed: {res.reason}")
        return float(res["latency_ms"])


def recipe(args: argparse.Namespace, seed: int) -> TrainConfig:
    return TrainConfig(epochs=args.epochs, batch_size=args.preset_settings.batch_size, seed=seed)


def train_all(nets: list[tuple[str, Arch]], data: Dataset, args: argparse.Namespace, cache: JsonCache,
              counters: Counters) -> dict[tuple[str, int], dict[str, Any]]:
    """Train every distinct network for every seed (seed by seed, so an interrupted run already has
    one seed of every network), through the cache; ``{(arch hash, seed): Result.to_dict()}``."""
    unique = list({arch.hash(): (label, arch) for label, arch in nets}.values())
    jobs = [(seed, label, arch) for seed in range(args.seeds) for label, arch in unique]
    out: dict[tuple[str, int], dict[str, Any]] = {}
    bar = tqdm(jobs, desc="training", unit="net", disable=args.quiet)
    for seed, label, arch in bar:
        bar.set_postfix_str(f"{label} seed {seed}")
        ev = Cached(TrainedAccuracy(data, recipe(args, seed), device=args.device, threads=args.threads,
                                    progress=False), cache)
        if ev.lookup(arch) is None:
            counters.trained += 1
        res = ev(arch)
        log.info("%s seed %d: %s", label, seed, f"top-1 {res['top1']:.2f}%" if res.ok else f"FAILED: {res.reason}")
        out[(arch.hash(), seed)] = res.to_dict()
    return out


def adapted_table(args: argparse.Namespace) -> tuple[str, dict[str, Any] | None]:
    """The table the searches predict latency with: ``--latency-table`` adapted to this machine
    (:mod:`latency_tables.adapt`) when ``--adapt-networks`` > 0, else as it is; ``(path or name,
    adaptation report)``.

    Why: the budgets are *measured* here, the search constrains the table's *prediction*, so the
    two must agree. A table built on another machine (even one of the same name) can be off by
    tens of percent (the shipped ``mobile_32_cpu``, built on an AMD EPYC VM, predicts CIFAR networks
    2-3x slower than an Intel Xeon VM runs them). The adapted file is cached in ``--work`` under a
    digest of this machine's fingerprint, so a rerun here reuses it and another machine adapts anew.
    """
    if not args.adapt_networks:
        return args.latency_table, None
    source = latency_tables.load(args.latency_table, check_env=False)
    here = hashlib.sha256(json.dumps(fingerprint("cpu"), sort_keys=True).encode()).hexdigest()[:10]
    path = Path(args.work) / f"{Path(args.latency_table).stem}.adapted-{args.adapt_networks}-{here}.json"
    if path.exists():
        table = latency_tables.load(path, check_env=False)
        return str(path), table.meta["adapted"]
    archs = stratified_archs(SPACE, RESOLUTION, args.adapt_networks, ADAPT_SEED, LatencyPredictor(source).op_sum,
                             NUM_CLASSES)
    fixed = {n: a for n, a in zoo_archs(RESOLUTION, NUM_CLASSES).items() if all(c.key() in source for c in a.op_configs())}
    table, report = adapt(source, archs, fixed, progress=not args.quiet)
    table.save(path)
    for kind in ("random", "fixed_points"):
        m = report["leave_one_out"][kind]
        log.info("adapted %s to this machine (%s): %s leave-one-out MAPE %.2f%%, %.0f%% within 10%%", args.latency_table,
                 report["method"], kind, m["mape_pct"], m["within_10pct"] * 100)
    return str(path), table.meta["adapted"]


# ---------------------------------------------------------------------------------------------
# Search
def search_config(name: str, budget_ms: float, args: argparse.Namespace) -> SearchConfig:
    """The search of one budget (``budget_ms``: the table's latency limit); its run directory is
    named by the fixed point and a digest of the settings that define the search, so other
    settings start another search instead of clashing."""
    pre: Preset = args.preset_settings
    config = SearchConfig.of(
        space=SPACE, resolution=RESOLUTION, strategy="evolution", budget=args.search_budget, seed=args.search_seed,
        latency_table=args.latency_table, evaluator=args.evaluator, proxy=args.proxy, predictor=args.predictor,
        supernet=args.supernet, data="none" if args.evaluator == "predictor" else args.data,
        train_epochs=args.search_epochs, train_per_class=args.search_train_per_class,
        test_per_class=pre.search_holdout_per_class, objective="reward", max_latency_ms=budget_ms, hard_reward=True,
        start_from=None if args.no_warm_start else name,
        population=pre.population, sample_size=pre.sample_size, top_k=args.top_k, threads=args.threads,
        device=args.device, measure_missing=args.measure_missing)
    digest = hashlib.sha256(json.dumps(config.identity(), sort_keys=True).encode()).hexdigest()[:10]
    return config.with_values(out=str(Path(args.work) / "search" / f"{name}-{digest}"))


def run_search(name: str, budget_ms: float, table_ms: float | None, args: argparse.Namespace, measure: Measurer,
               counters: Counters) -> dict[str, Any]:
    """Search within the budget, measure its ``--top-k`` best new candidates, pick the best-ranked
    one measured within ``budget_ms`` (``found`` is ``None`` when none is).

    The search's limit is in the table's terms: no slower than the fixed point as the table
    predicts it (``table_ms``), or than the measured budget where that is looser, so a table that
    over-predicts the fixed point (as small shuffle networks are) still admits its neighbours;
    measurement then decides against the measured budget."""
    limit = math.ceil(max(budget_ms, table_ms or 0.0) * 1e4) / 1e4  # rounded up: the fixed point stays within
    config = search_config(name, limit, args)
    search = Search.from_config(config)
    fixed_hash = zoo.get(name).replace(num_classes=NUM_CLASSES).hash()

    def count(record: Record) -> None:
        if record.evaluated:
            counters.search_evaluated += 1

    state = search.run(progress=not args.quiet, on_record=count)  # replayed records are not reported
    search.write_report(compare_zoo=False)
    objective = search.objective
    ranked = sorted((r for r in state.records if r.state == "complete" and r.arch.hash() != fixed_hash),
                    key=lambda r: objective.best_key(r.metrics), reverse=True)
    candidates, found = [], None
    for rank, rec in enumerate(ranked[:args.top_k], 1):
        row = {"rank": rank, "arch_hash": rec.arch.hash(), "score": objective.best_key(rec.metrics),
               "score_metric": objective.metric, "latency_pred_ms": rec.metrics["latency_pred_ms"],
               "latency_ms": measure(rec.arch)}
        row["within_budget"] = row["latency_ms"] <= budget_ms
        candidates.append(row)
        if found is None and row["within_budget"]:
            found = rec.arch
    return {"run_dir": str(config.run_dir), "limit_ms": config.objective.max_latency_ms, "evaluated": state.evaluated,
            "complete": len(ranked), "infeasible": state.infeasible,
            "failed": sum(r.state == "failed" for r in state.records),
            "first_failure": next((r.reason for r in state.records if r.state == "failed"), None),
            "candidates": candidates, "found": found}


# ---------------------------------------------------------------------------------------------
# Report
def _net_row(label: str, arch: Arch, latency_ms: float, trained: dict[tuple[str, int], dict[str, Any]],
             seeds: int, latency_pred_ms: float | None) -> dict[str, Any]:
    cx = complexity(arch, ptflops=False)
    results = [trained[(arch.hash(), s)] for s in range(seeds)]
    top1 = [r["metrics"]["top1"] if r["ok"] else None for r in results]
    ok = [t for t in top1 if t is not None]
    return {"label": label, "arch_hash": arch.hash(), "arch": arch.to_str(), "params": cx.params,
            "macs": cx.macs_conv_linear, "latency_ms": latency_ms, "latency_pred_ms": latency_pred_ms,
            "top1": top1, "top1_mean": statistics.fmean(ok) if len(ok) == len(top1) else None,
            "failed": [r["reason"] for r in results if not r["ok"]],
            "train_seconds": [r["info"].get("seconds") for r in results]}


def verdict(row: dict[str, Any], seeds: int) -> tuple[bool, str]:
    """Whether the goal held at this budget, and why (not)."""
    found = row["found"]
    if found is None:
        search = row["search"]
        if not search["candidates"]:
            return False, (f"the search scored no candidate ({search['failed']} failed"
                           + (f", e.g. {search['first_failure'][:160]}" if search["first_failure"] else "") + ")")
        return False, f"no candidate among the search's top {len(search['candidates'])} measured within the budget"
    diffs = row["diff_points"]
    if any(d is None for d in diffs):
        return False, "a training failed"
    if seeds < 2:
        return False, f"needs >= 2 seeds, ran {seeds}"
    if all(d >= GOAL_POINTS for d in diffs):
        return True, f"every seed >= +{GOAL_POINTS:.1f} point"
    return False, f"seed differences {', '.join(f'{d:+.2f}' for d in diffs)}: not all >= +{GOAL_POINTS:.1f}"


def build_report(budgets: list[dict[str, Any]], trained: dict[tuple[str, int], dict[str, Any]], data: Dataset,
                 args: argparse.Namespace, command: str, counters: Counters, seconds: float) -> dict[str, Any]:
    rows = []
    for b in budgets:
        fixed = _net_row(b["name"], b["arch"], b["budget_ms"], trained, args.seeds, b["latency_pred_ms"])
        found = None
        if b["search"]["found"] is not None:
            arch = b["search"]["found"]
            cand = next(c for c in b["search"]["candidates"] if c["arch_hash"] == arch.hash())
            found = _net_row(arch.hash(), arch, cand["latency_ms"], trained, args.seeds, cand["latency_pred_ms"])
            found.update(rank=cand["rank"], score=cand["score"], score_metric=cand["score_metric"])
        search = {k: v for k, v in b["search"].items() if k != "found"}
        row: dict[str, Any] = {"fixed_point": b["name"], "budget_ms": b["budget_ms"], "fixed": fixed, "found": found,
                               "search": search}
        if found is not None:
            row["latency_ratio"] = found["latency_ms"] / b["budget_ms"]
            row["diff_points"] = [None if f is None or x is None else f - x
                                  for f, x in zip(found["top1"], fixed["top1"], strict=True)]
            row["diff_mean"] = (None if found["top1_mean"] is None or fixed["top1_mean"] is None
                                else found["top1_mean"] - fixed["top1_mean"])
        row["goal_held"], row["why"] = verdict(row, args.seeds)
        rows.append(row)

    by_name = {r["fixed_point"]: r for r in rows}
    moonshot = None
    if all(n in by_name for n in MOONSHOT) and by_name[MOONSHOT[0]]["found"] is not None:
        at, target = by_name[MOONSHOT[0]], by_name[MOONSHOT[1]]
        mean = at["found"]["top1_mean"]
        goal = target["fixed"]["top1_mean"]
        moonshot = {"budget_of": MOONSHOT[0], "accuracy_of": MOONSHOT[1], "found_top1_mean": mean,
                    "target_top1_mean": goal, "held": None if mean is None or goal is None else mean >= goal}

    pre: Preset = args.preset_settings
    cfg = recipe(args, 0).to_dict()
    cfg.pop("seed")
    train_s = [s for r in rows for net in (r["fixed"], r["found"]) if net for s in net["train_seconds"] if s]
    return {
        "meta": {
            "command": command, "preset": args.preset, "preset_doc": pre.doc,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": {"cpu": device_name("cpu"), "cores": os.cpu_count(), "torch": torch.__version__,
                        "platform": platform.platform()},
            "space": SPACE, "resolution": RESOLUTION, "num_classes": NUM_CLASSES, "latency_table": args.latency_table,
            "latency_table_source": args.source_latency_table, "latency_table_adaptation": args.adaptation,
            "latency": {**pre.latency.identity(), "device_name": device_name("cpu")},
            "search": {"strategy": "evolution", "evaluator": args.evaluator, "proxy": args.proxy,
                       "predictor": args.predictor, "supernet": args.supernet, "budget": args.search_budget,
                       "population": pre.population, "sample_size": pre.sample_size, "seed": args.search_seed,
                       "train_epochs": args.search_epochs, "train_per_class": args.search_train_per_class,
                       "holdout_per_class": pre.search_holdout_per_class, "top_k": args.top_k,
                       "warm_start": not args.no_warm_start, "measure_missing": args.measure_missing,
                       "objective": "MnasNet hard reward (estimated accuracy within the budget)"},
            "recipe": cfg, "seeds": list(range(args.seeds)), "device": args.device, "threads": args.threads,
            "data": {"source": args.data, **data.describe(), "train_per_class": args.train_per_class,
                     "subset_seed": SUBSET_SEED},
            "goal_points": GOAL_POINTS, "work": args.work,
        },
        "budgets": rows,
        "summary": {"budgets": len(rows), "goal_held": sum(r["goal_held"] for r in rows),
                    "found": sum(r["found"] is not None for r in rows)},
        "moonshot": moonshot,
        "invocation": {"new_measurements": counters.measured, "new_trainings": counters.trained,
                       "new_search_evaluations": counters.search_evaluated, "seconds": round(seconds, 1),
                       "train_seconds_all_results": round(sum(train_s), 1)},
    }


def _f(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _seeds(values: list[float | None], mean: float | None) -> str:
    return " / ".join(_f(v, ".2f") for v in values) + f" (**{_f(mean, '.2f')}**)"


def summary_table(report: dict[str, Any]) -> str:
    lines = ["| budget: fixed point | its latency (ms) | found network | its latency (ms, ratio) | fixed top-1 per seed "
             "(mean) | found top-1 per seed (mean) | difference (points, per seed; mean) | goal held |",
             "|---|---:|---|---:|---:|---:|---:|---|"]
    for r in report["budgets"]:
        fx, fd = r["fixed"], r["found"]
        why = r["why"].replace("|", "\\|")  # latency-table keys hold pipes
        if fd is None:
            lines.append(f"| {r['fixed_point']} | {fx['latency_ms']:.2f} | none found | - | "
                         f"{_seeds(fx['top1'], fx['top1_mean'])} | - | - | no: {why} |")
            continue
        diffs = " / ".join(_f(d, "+.2f") for d in r["diff_points"]) + f"; **{_f(r['diff_mean'], '+.2f')}**"
        lines.append(f"| {r['fixed_point']} | {fx['latency_ms']:.2f} | `{fd['arch_hash']}` | "
                     f"{fd['latency_ms']:.2f} ({r['latency_ratio']:.2f}x) | {_seeds(fx['top1'], fx['top1_mean'])} | "
                     f"{_seeds(fd['top1'], fd['top1_mean'])} | {diffs} | {'**yes**' if r['goal_held'] else 'no'}: "
                     f"{why} |")
    return "\n".join(lines)


def _adaptation_lines(m: dict[str, Any]) -> list[str]:
    """How the latency table was adapted to this machine (nothing when it was used as it is)."""
    a = m.get("latency_table_adaptation")
    if not a:
        return []
    loo, before = a["leave_one_out"], a["before"]
    return [f"The table was adapted to this machine first (`nas latency adapt --table {m['latency_table_source']} "
            f"-n {a['networks']} --seed {ADAPT_SEED}`, {a['method']} calibration, {a['measure_seconds'] / 60:.1f} min "
            f"measuring {a['networks']} networks + {len(a['fixed_points'])} fixed points): leave-one-out MAPE "
            f"{loo['random']['mape_pct']:.1f}% ({loo['random']['within_10pct']:.0%} within +-10%) on the sampled "
            f"networks and {loo['fixed_points']['mape_pct']:.1f}% ({loo['fixed_points']['within_10pct']:.0%}) on the "
            f"fixed points, against {before['random']['mape_pct']:.0f}% and {before['fixed_points']['mape_pct']:.0f}% "
            "before adapting.", ""]


def markdown(report: dict[str, Any]) -> str:
    m, s = report["meta"], report["summary"]
    se, r, d = m["search"], m["recipe"], m["data"]
    by = {"train": f"short training ({se['train_epochs']} epoch(s) on {se['train_per_class'] or 'all'} images per class, "
                   f"top-1 on {se['holdout_per_class'] or 'a tenth of the'} held-out training images per class)",
          "predictor": f"the accuracy predictor `{se['predictor']}`", "supernet": f"the supernet `{se['supernet']}`",
          "proxy": f"the {se['proxy']} proxy"}[se["evaluator"]]
    lines = [
        f"# Search vs zoo: `{m['space']}`@{m['resolution']} networks found within the fixed points' measured latency",
        "",
        f"**Goal held at {s['goal_held']} of {s['budgets']} budgets** (a found network at <= the fixed point's measured "
        f"latency with >= +{m['goal_points']:.1f} point top-1 at every one of >= 2 seeds, each seed pairing the two "
        f"networks trained with it); a network was found within {s['found']} of {s['budgets']} budgets.",
        "",
        f"Preset `{m['preset']}`: {m['preset_doc']}.",
        "",
        f"Budget: each fixed point's latency measured on {m['latency']['device_name']}, batch "
        f"{m['latency']['batch_size']}, {m['latency']['threads']} thread, {m['latency']['clock']} clock, eager "
        f"{m['latency']['dtype']}, median (as `bench_cifar10_zoo.py`).",
        "",
        f"Search (one per budget): regularized evolution over `{m['space']}`@{m['resolution']}, {se['budget']} "
        f"candidates (population {se['population']}, sample {se['sample_size']}, seed {se['seed']}"
        f"{'' if se.get('warm_start') is False else ', started from the fixed point'}), latency predicted "
        f"by `{m['latency_table']}` with `--max-latency-ms` = the larger of the budget and the table's prediction of "
        f"the fixed point, {se['objective']} ranked by {by}. Pick: the top {se['top_k']} new candidates measured like "
        "the fixed point; the best-ranked one measured within the budget.",
        "",
        *_adaptation_lines(m),
        f"Recipe (one for every network): {r['epochs']} epoch(s), batch {r['batch_size']}, SGD lr {r['lr']} momentum "
        f"{r['momentum']} Nesterov, weight decay {r['weight_decay']}, {r['warmup_fraction']:.0%} warm-up then cosine, "
        f"label smoothing {r['label_smoothing']}, random crop + flip; seeds {', '.join(map(str, m['seeds']))}; on "
        f"`{m['device']}` ({m['threads']} thread(s)). Data: `{d['source']}`, {d['train']} training images"
        + (f" ({d['train_per_class']} per class, subset seed {d['subset_seed']})" if d["train_per_class"] else "")
        + f", top-1 on {d['test']} test images.",
        "",
        summary_table(report),
        "",
    ]
    ms = report["moonshot"]
    if ms is not None:
        lines += [f"Moonshot (at {ms['budget_of']}'s latency, {ms['accuracy_of']}'s accuracy): found "
                  f"{_f(ms['found_top1_mean'], '.2f')}% vs {_f(ms['target_top1_mean'], '.2f')}%: "
                  f"{'reached' if ms['held'] else 'not reached'}.", ""]
    lines += ["## Per budget: the search's best candidates, measured", ""]
    for row in report["budgets"]:
        se_row = row["search"]
        lines += [f"### {row['fixed_point']} ({row['budget_ms']:.2f} ms)", "",
                  f"{se_row['evaluated']} candidates evaluated ({se_row['complete']} scored, {se_row['failed']} failed), "
                  f"{se_row['infeasible']} proposals over the table limit of {se_row['limit_ms']:.2f} ms; run directory "
                  f"`{se_row['run_dir']}`. "
                  f"Fixed point: {row['fixed']['params'] / 1e6:.3f} M params, {row['fixed']['macs'] / 1e6:.1f} M MACs, "
                  f"table predicts {_f(row['fixed']['latency_pred_ms'], '.2f')} ms.", "",
                  "| rank | candidate | search score | table (ms) | measured (ms) | within budget |",
                  "|---:|---|---:|---:|---:|---|"]
        lines += [f"| {c['rank']} | `{c['arch_hash']}` | {c['score']:.3f} | {c['latency_pred_ms']:.2f} | "
                  f"{c['latency_ms']:.2f} | {'yes' if c['within_budget'] else 'no'} |" for c in se_row["candidates"]]
        if row["found"] is not None:
            f = row["found"]
            lines += ["", f"Found: {f['params'] / 1e6:.3f} M params, {f['macs'] / 1e6:.1f} M MACs:", "", "```",
                      f["arch"], "```"]
        lines.append("")
    inv = report["invocation"]
    lines += [f"Training time of every result shown: {inv['train_seconds_all_results'] / 60:.1f} min. This invocation: "
              f"{inv['new_measurements']} new latency measurements, {inv['new_search_evaluations']} new search "
              f"evaluations, {inv['new_trainings']} new trainings, {inv['seconds'] / 60:.1f} min. Machine: "
              f"{m['machine']['cpu']}, {m['machine']['cores']} cores, torch {m['machine']['torch']}; report of "
              f"{m['date']}. Caches and search runs: `{m['work']}`.", "",
              f"Command: `{m['command']}`", ""]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    """Top-1 (mean over seeds, bars: min-max) vs measured latency, fixed points and found networks,
    an arrow from each fixed point to the network found within its latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for row in report["budgets"]:
        fx, fd = row["fixed"], row["found"]
        for net, style in ((fx, {"marker": "o", "color": "tab:blue"}), (fd, {"marker": "*", "color": "tab:red", "s": 90})):
            if net is None or net["top1_mean"] is None:
                continue
            ax.scatter(net["latency_ms"], net["top1_mean"], zorder=3, **style)
            lo, hi = min(net["top1"]), max(net["top1"])
            ax.plot([net["latency_ms"]] * 2, [lo, hi], color=style["color"], lw=1, alpha=0.6)
        ax.annotate(fx["label"].removeprefix("cifar_"), (fx["latency_ms"], fx["top1_mean"] or 0), fontsize=7,
                    xytext=(4, -9), textcoords="offset points")
        ax.axvline(row["budget_ms"], color="0.85", lw=0.8, ls=":", zorder=0)
        if fd is not None and fd["top1_mean"] is not None and fx["top1_mean"] is not None:
            ax.annotate("", (fd["latency_ms"], fd["top1_mean"]), (fx["latency_ms"], fx["top1_mean"]),
                        arrowprops={"arrowstyle": "->", "color": "0.5", "lw": 0.8})
    ax.scatter([], [], marker="o", color="tab:blue", label="fixed point (its latency = the budget, dotted)")
    ax.scatter([], [], marker="*", color="tab:red", s=90, label="found within the budget (arrow: from its fixed point)")
    m = report["meta"]
    ax.set_xlabel(f"measured latency, batch 1, 1 thread, {m['machine']['cpu']} (ms)")
    ax.set_ylabel(f"top-1 (%), mean of {len(m['seeds'])} seed(s); bar: min-max")
    ax.set_title(f"{m['space']}@{m['resolution']} search vs zoo, preset {m['preset']}: {m['preset_doc']}", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet or args.json else logging.INFO, format="%(message)s")
    command = shlex.join(["python", "scripts/bench_search_vs_zoo.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        data = load_data(args)
    except ValueError as exc:
        sys.stderr.write(f"bench_search_vs_zoo.py: error: --data: {exc}\n")
        return 2
    log.info("data: %d train / %d test images; fixed points: %s", len(data.train), len(data.test),
             ", ".join(args.fixed_point_names))
    work = Path(args.work)
    cache = JsonCache(work / "cache")
    counters = Counters()
    measure = Measurer(args.preset_settings.latency, cache, counters)
    args.source_latency_table = args.latency_table
    args.latency_table, args.adaptation = adapted_table(args)
    predictor = LatencyPredictor(latency_tables.load(args.latency_table, check_env=not args.adaptation))

    budgets = []
    for name in tqdm(args.fixed_point_names, desc="budgets", unit="net", disable=args.quiet):
        arch = zoo.get(name).replace(num_classes=NUM_CLASSES)
        budget = round(measure(arch), 4)
        try:
            table_ms: float | None = predictor.predict(arch)
        except MissingKeyError:  # the table covers what the search samples; the fixed point may need more
            table_ms = None
        log.info("%s: measured %.2f ms (table %s ms); searching within it", name, budget, _f(table_ms, ".2f"))
        try:
            found = run_search(name, budget, table_ms, args, measure, counters)
        except ValueError as exc:  # a search setting the runner refuses (e.g. a foreign predictor)
            sys.stderr.write(f"bench_search_vs_zoo.py: error: search: {exc}\n")
            return 2
        budgets.append({"name": name, "arch": arch, "budget_ms": budget, "latency_pred_ms": table_ms,
                        "search": found})
        log.info("%s: %s", name, "found " + found["found"].hash() if found["found"] is not None else "none found")

    nets = [(b["name"], b["arch"]) for b in budgets]
    nets += [(b["search"]["found"].hash(), b["search"]["found"]) for b in budgets if b["search"]["found"] is not None]
    trained = train_all(nets, data, args, cache, counters)

    report = build_report(budgets, trained, data, args, command, counters, time.monotonic() - started)
    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), report)
    atomic_write_text(out.with_suffix(".md"), markdown(report))
    plot(report, out.with_suffix(".png"))
    summary = {"preset": args.preset, "budgets": {r["fixed_point"]: {
        "budget_ms": r["budget_ms"], "found": None if r["found"] is None else r["found"]["arch_hash"],
        "found_latency_ms": None if r["found"] is None else r["found"]["latency_ms"],
        "fixed_top1": r["fixed"]["top1"], "found_top1": None if r["found"] is None else r["found"]["top1"],
        "diff_mean": r.get("diff_mean"), "goal_held": r["goal_held"]} for r in report["budgets"]},
        "goal_held": report["summary"]["goal_held"], "of": report["summary"]["budgets"],
        **report["invocation"], "report": str(out.with_suffix(".md"))}
    if args.json:
        print(json.dumps(summary))
    else:
        print(summary_table(report))
        print(f"goal held at {summary['goal_held']} of {summary['of']} budgets; report {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
