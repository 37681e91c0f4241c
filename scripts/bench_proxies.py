"""How well do zero-cost proxies rank architectures? Kendall tau between each proxy (synflow,
NASWOT, grad-norm, SNIP; parameters and MACs as baselines) and short-training accuracy, over
architectures sampled from a search space, on real CIFAR-10.

Architectures: ``--archs`` distinct points drawn from the space's core (``--space``, default
``mobile``) with ``--sample-seed``, moved to 32x32 inputs and 10 classes. Ground truth: top-1
after the standard recipe of :mod:`evaluators.train` on a class-balanced subset. Default budget
(about an hour on 2 cores, ``--jobs 2``; sampled ``mobile`` networks average ~3 s per 128-image
step on one core, the hybrid stem keeping 32x32 maps): 300 training images per class (3,000),
3 epochs at batch 128 (69 steps), top-1 on 1,000 test images (100 per class). Proxies use one
minibatch of 64 training images and the training seed for initialisation.

Everything goes through the evaluator cache (``--cache``), so an interrupted run resumes::

    python scripts/bench_proxies.py --data /work/shared/data/cifar10-jpg.tar.gz --out docs
"""

from __future__ import annotations

import argparse
import logging
import math
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _bench_common import (
    add_training_arguments,
    check_training_arguments,
    prepare_data,
    train_config,
    train_many,
)
from tqdm.auto import tqdm

from evaluators import Cached, ComplexityEvaluator, JsonCache, ZeroCostProxies
from evaluators.proxies import PROXIES
from nas.arch import Arch, ArchError
from nas.io import atomic_write_json, atomic_write_text
from nas.rank_stats import kendall_tau
from search_spaces.spaces import get_space

log = logging.getLogger("bench_proxies")
BASELINES = ("params", "macs_conv_linear")


def sample_archs(space_name: str, n: int, seed: int) -> dict[str, Arch]:
    """``n`` distinct architectures of the space moved to 32x32 inputs and 10 classes, keyed by
    hash. Points that cannot run at 32x32 (padding-free downsampling of a map smaller than 3x3
    after a stride-2 stem) are skipped and drawn again."""
    space = get_space(space_name)
    rng = np.random.default_rng(seed)
    out: dict[str, Arch] = {}
    for _ in range(100 * n):
        try:
            arch = space.sample(rng).replace(resolution=32, num_classes=10)
        except ArchError:
            continue
        out.setdefault(arch.hash(), arch)
        if len(out) == n:
            return out
    raise SystemExit(f"space {space_name!r} gave only {len(out)} distinct architectures that run at 32x32")


def markdown(taus: dict[str, float], n: int, meta: dict[str, Any]) -> str:
    b = meta["budget"]
    lines = [
        "# Zero-cost proxies vs short-training accuracy",
        "",
        f"{n} architectures sampled from the `{meta['space']}` space (seed {meta['sample_seed']}) at 32x32, "
        f"CIFAR-10: {b['train_images']} training images, {b['epochs']} epochs, batch {b['batch_size']}, "
        f"peak lr {b['lr']}; top-1 on {b['test_images']} test images. Proxies from one batch of "
        f"{meta['proxy_batch']} training images. Kendall tau-b with top-1 (1: same ranking).",
        "",
        "| score | Kendall tau |",
        "|---|---:|",
    ]
    lines += [f"| {k}{' (baseline)' if k in BASELINES else ''} | "
              f"{'n/a (constant scores)' if math.isnan(v) else f'{v:+.3f}'} |" for k, v in taus.items()]
    lines += ["", f"Command: `{meta['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="mobile", help="search space to sample (default %(default)s)")
    p.add_argument("--archs", type=int, default=30, help="architectures to sample (default %(default)s)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the sampling (default %(default)s)")
    p.add_argument("--proxy-batch", type=int, default=64, help="images per proxy minibatch (default %(default)s)")
    p.add_argument("--out", default="docs", help="output folder (default %(default)s)")
    p.add_argument("--name", default="bench_proxies", help="output file stem (default %(default)s)")
    add_training_arguments(p, train_per_class=300, test_per_class=100, epochs=3)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    check_training_arguments(p, args)
    if args.archs < 3:
        p.error("--archs must be >= 3")

    archs = sample_archs(args.space, args.archs, args.sample_seed)
    data = prepare_data(args)
    log.info("data: %s, %d train / %d test images; %d architectures", data.name, len(data.train), len(data.test),
             len(archs))
    trained = train_many(archs, args)
    cache = JsonCache(args.cache)
    proxies = Cached(ZeroCostProxies(data, batch_size=args.proxy_batch, seed=args.seed,
                                     threads=max(1, args.threads // args.jobs)), cache)
    comp = Cached(ComplexityEvaluator(ptflops=False), cache)
    rows = []
    for h, arch in tqdm(archs.items(), desc="proxies", unit="net"):
        pr, c, t = proxies(arch), comp(arch), trained[h]
        rows.append({"arch_hash": h, "arch": arch.to_str(), "top1": t["metrics"].get("top1"), **c.metrics,
                     **pr.metrics, "failed": [r for r in (t["reason"], pr.reason, c.reason) if r]})
    good = [r for r in rows if not r["failed"]]
    for r in rows:
        if r["failed"]:
            log.warning("%s left out: %s", r["arch_hash"], "; ".join(r["failed"]))
    if len(good) < 3:
        raise SystemExit(f"only {len(good)} architectures were scored without failure")
    top1 = [r["top1"] for r in good]
    taus = {k: kendall_tau([r[k] for r in good], top1) for k in (*PROXIES, *BASELINES)}

    meta = {
        "command": "python " + " ".join(sys.argv if argv is None else [sys.argv[0], *argv]),
        "space": args.space, "sample_seed": args.sample_seed, "proxy_batch": args.proxy_batch,
        "dataset": data.describe(),
        "budget": {**train_config(args).to_dict(), "train_images": len(data.train), "test_images": len(data.test)},
        "top1_range": [min(top1), max(top1)], "n": len(good), "failed": len(rows) - len(good),
        "torch": torch.__version__, "platform": platform.platform(),
    }
    out = Path(args.out)
    json_taus = {k: None if math.isnan(v) else v for k, v in taus.items()}
    atomic_write_json(out / f"{args.name}.json", {"meta": meta, "kendall_tau": json_taus, "rows": rows})
    text = markdown(taus, len(good), meta)
    atomic_write_text(out / f"{args.name}.md", text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
