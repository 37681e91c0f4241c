"""Shared pieces of the benchmark scripts: data and budget options, and training many networks
through the evaluator cache in parallel worker processes (one CPU thread each by default)."""

from __future__ import annotations

import argparse
import logging
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

from tqdm.auto import tqdm

from evaluators import Cached, ComplexityEvaluator, Dataset, JsonCache, TrainConfig, TrainedAccuracy
from evaluators.datasets import load_dataset
from nas.arch import Arch

log = logging.getLogger("bench")


def add_training_arguments(p: argparse.ArgumentParser, *, train_per_class: int, test_per_class: int | None,
                           epochs: int) -> None:
    """Options for the data, the training budget, the cache and the parallelism."""
    p.add_argument("--data", required=True, help="CIFAR-10 image-folder tree, its .tar.gz, or the python-pickle folder")
    p.add_argument("--data-cache", default=None, help="dataset extraction/decoding cache (default ~/.cache/litenas)")
    p.add_argument("--cache", default="runs/cache", help="evaluator result cache (default %(default)s)")
    p.add_argument("--train-per-class", type=int, default=train_per_class, help="default %(default)s")
    p.add_argument("--test-per-class", type=int, default=test_per_class, help="default %(default)s (None: all)")
    p.add_argument("--epochs", type=int, default=epochs, help="default %(default)s")
    p.add_argument("--batch-size", type=int, default=128, help="default %(default)s")
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="default %(default)s")
    p.add_argument("--jobs", type=int, default=2, help="networks trained in parallel (default %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads in all, split between jobs (default %(default)s)")
    p.add_argument("--device", default="cpu", help="training device (default %(default)s)")


def check_training_arguments(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.jobs < 1 or args.threads < 1:
        p.error("--jobs and --threads must be >= 1")


def prepare_data(args: argparse.Namespace) -> Dataset:
    """The dataset, reduced to the budget's class-balanced subsets (deterministic in --seed)."""
    data = load_dataset(args.data, cache_dir=args.data_cache, progress=args.jobs == 1)
    return data.subset(train_per_class=args.train_per_class, test_per_class=args.test_per_class, seed=args.seed)


def train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)


def _train_one(name: str, arch_json: str, args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Worker: train one network through the cache (in a fresh process when --jobs > 1)."""
    ev = TrainedAccuracy(prepare_data(args), train_config(args), device=args.device,
                         threads=max(1, args.threads // args.jobs), progress=args.jobs == 1)
    return name, Cached(ev, JsonCache(args.cache))(Arch.from_json(arch_json)).to_dict()


def train_many(nets: dict[str, Arch], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Train every network (largest first, so parallel workers finish together); results as
    :meth:`evaluators.Result.to_dict`, keyed by name."""
    macs = ComplexityEvaluator(ptflops=False)
    order = sorted(nets, key=lambda n: -macs(nets[n]).metrics.get("macs_conv_linear", 0))
    results: dict[str, dict[str, Any]] = {}

    def done(name: str, res: dict[str, Any]) -> None:
        results[name] = res
        log.info("%s: %s", name, f"top1 {res['metrics']['top1']:.2f}%" if res["ok"] else f"FAILED: {res['reason']}")

    if args.jobs == 1:
        for name in order:
            done(*_train_one(name, nets[name].to_json(), args))
        return results
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_train_one, n, nets[n].to_json(), args) for n in order]
        for fut in tqdm(as_completed(futures), total=len(futures), desc="training", unit="net"):
            done(*fut.result())
    return results
