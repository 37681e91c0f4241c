"""Train the CIFAR variants of the surveyed networks on real CIFAR-10 with one fixed budget,
measure their CPU latency, and write a table (markdown + JSON) and an accuracy-vs-latency plot.

Networks: the ``cifar_*`` zoo entries (MobileNetV3-Large, GhostNet 1.0, ShuffleNetV2 1.0x and
0.5x, each standard and padding-free with the hybrid stem) with a 10-class classifier, plus
MobileNetV2 1.0 in the usual CIFAR layout (kuangliu/pytorch-cifar: stem and first stride-2 stage
at stride 1, so 32 -> 16 -> 8 -> 4) and its padding-free + hybrid-stem counterpart.

Default budget (about an hour on 2 cores, ``--jobs 2``): 1000 training images per class (10,000
of the 50,000), 3 epochs at batch 128 (234 SGD steps), the standard recipe of
:mod:`evaluators.train`, seed 0; top-1 on the full 10,000-image test set. Latency: batch 1, one
thread, eager float32, CPU time of the calling thread (immune to other processes on a shared
machine; ``--clock wall`` for wall time), median of repeats, measured after all training.

Every result goes through the evaluator cache (``--cache``), so an interrupted run resumes and a
re-run only redraws the outputs::

    python scripts/bench_cifar10_zoo.py --data /work/shared/data/cifar10-jpg.tar.gz --out docs
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch
from _bench_common import (
    add_training_arguments,
    check_training_arguments,
    prepare_data,
    train_config,
    train_many,
)
from tqdm.auto import tqdm

from evaluators import Cached, ComplexityEvaluator, JsonCache, MeasuredLatency
from latency_tables.device import device_name
from latency_tables.measure import Settings
from nas.arch import Arch
from nas.io import atomic_write_json, atomic_write_text
from search_spaces import zoo
from search_spaces.zoo._stages import Layout
from search_spaces.zoo.mobilenet_v2 import mobilenet_v2

log = logging.getLogger("bench_cifar10_zoo")


def cifar_mobilenet_v2(padding_free: bool) -> Arch:
    """MobileNetV2 1.0 for 32x32 inputs: stride-1 stem and first stride-2 stage (kuangliu's CIFAR
    layout); ``padding_free`` makes the remaining stride-2 blocks padding-free and the stem hybrid."""
    return mobilenet_v2(1.0, Layout(resolution=32, num_classes=10, stem="hybrid" if padding_free else "conv_s1",
                                    strides=(1, 2, 2, 2), downsample="padding_free" if padding_free else "standard"))

def networks() -> dict[str, Arch]:
    """The benchmarked networks, with 10 classes."""
    nets = {"cifar_mobilenet_v2_100": cifar_mobilenet_v2(False), "cifar_mobilenet_v2_100_pf": cifar_mobilenet_v2(True)}
    nets.update({n: zoo.get(n).replace(num_classes=10) for n in zoo.names() if n.startswith("cifar_")})
    return nets


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    ok = [r for r in rows if r["top1"] is not None]
    by_name = {r["net"]: r for r in ok}
    for r in ok:
        pf = r["net"].endswith("_pf")
        ax.scatter(r["latency_ms"], r["top1"], marker="s" if pf else "o", color="tab:orange" if pf else "tab:blue",
                   s=20 + r["params"] / 1e5)
        ax.annotate(r["net"].removeprefix("cifar_"), (r["latency_ms"], r["top1"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
        std = by_name.get(r["net"].removesuffix("_pf")) if pf else None
        if std is not None:
            ax.annotate("", (r["latency_ms"], r["top1"]), (std["latency_ms"], std["top1"]),
                        arrowprops={"arrowstyle": "->", "color": "0.6", "lw": 0.8})
    ax.scatter([], [], marker="o", color="tab:blue", label="standard")
    ax.scatter([], [], marker="s", color="tab:orange", label="padding-free + hybrid stem (arrow: from standard)")
    ax.set_xlabel("CPU latency, batch 1, 1 thread (ms)")
    ax.set_ylabel("CIFAR-10 top-1 (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    b = meta["budget"]
    lines = [
        "# CIFAR-10 benchmark of the zoo's CIFAR networks",
        "",
        f"Budget: {b['train_images']} training images ({b['train_per_class']} per class), {b['epochs']} epochs, "
        f"batch {b['batch_size']}, peak lr {b['lr']}, SGD momentum 0.9 nesterov, cosine schedule with "
        f"{b['warmup_fraction']:.0%} warm-up, label smoothing {b['label_smoothing']}, random crop + flip, "
        f"seed {b['seed']}. Top-1 on {b['test_images']} test images. Short-budget numbers: they rank the "
        "networks under equal, small training, they are not converged accuracies.",
        "",
        f"Latency: {meta['latency']['device_name']}, batch 1, {meta['latency']['threads']} thread, "
        f"{meta['latency']['clock']} clock, eager PyTorch {meta['torch']}, median.",
        "",
        "| net | params (M) | MACs conv+fc (M) | MACs ptflops (M) | latency (ms) | top-1 (%) | train time (min) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        top1 = f"{r['top1']:.2f}" if r["top1"] is not None else f"failed: {r['reason']}"
        minutes = f"{r['train_seconds'] / 60:.1f}" if r["train_seconds"] is not None else "-"
        lines.append(f"| {r['net']} | {r['params'] / 1e6:.3f} | {r['macs_conv_linear'] / 1e6:.1f} | "
                     f"{r['macs_ptflops'] / 1e6:.1f} | {r['latency_ms']:.2f} | {top1} | {minutes} |")
    lines += ["", f"Command: `{meta['command']}`", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="docs", help="output folder (default %(default)s)")
    p.add_argument("--name", default="bench_cifar10_zoo", help="output file stem (default %(default)s)")
    add_training_arguments(p, train_per_class=1000, test_per_class=None, epochs=3)
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="latency clock (default %(default)s)")
    p.add_argument("--nets", nargs="*", help="subset of networks (default: all)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    check_training_arguments(p, args)

    nets = networks()
    if args.nets:
        unknown = sorted(set(args.nets) - set(nets))
        if unknown:
            p.error(f"unknown nets {unknown}; known: {', '.join(nets)}")
        nets = {n: nets[n] for n in args.nets}
    data = prepare_data(args)  # extracts/decodes once before the workers start
    log.info("data: %s, %d train / %d test images", data.name, len(data.train), len(data.test))

    trained = train_many(nets, args)
    cache = JsonCache(args.cache)
    settings = Settings(threads=1, clock=args.clock)
    latency = Cached(MeasuredLatency(settings=settings), cache)
    comp = Cached(ComplexityEvaluator(), cache)
    rows = []
    for name in tqdm(nets, desc="latency", unit="net"):
        c, lat, t = comp(nets[name]), latency(nets[name]), trained[name]
        if not (c.ok and lat.ok):
            raise SystemExit(f"{name}: {c.reason or lat.reason}")
        rows.append({"net": name, "arch_hash": nets[name].hash(), **c.metrics, **lat.metrics,
                     "top1": t["metrics"].get("top1") if t["ok"] else None, "reason": t["reason"],
                     "train_seconds": t["info"].get("seconds"), "loss_curve": t["info"].get("loss_curve")})
    rows.sort(key=lambda r: r["latency_ms"])

    cfg = train_config(args)
    meta = {
        "command": "python " + " ".join(sys.argv if argv is None else [sys.argv[0], *argv]),
        "dataset": data.describe(),
        "budget": {**cfg.to_dict(), "train_per_class": args.train_per_class, "train_images": len(data.train),
                   "test_images": len(data.test), "steps": cfg.epochs * (len(data.train) // cfg.batch_size),
                   "jobs": args.jobs, "device": args.device},
        "latency": {**settings.identity(), "device_name": device_name("cpu")},
        "torch": torch.__version__, "platform": platform.platform(),
    }
    out = Path(args.out)
    atomic_write_json(out / f"{args.name}.json", {"meta": meta, "rows": rows})
    atomic_write_text(out / f"{args.name}.md", markdown(rows, meta))
    plot(rows, out / f"{args.name}.png",
         f"CIFAR-10, {len(data.train)} train images x {args.epochs} epochs; latency {device_name('cpu')}")
    sys.stdout.write(markdown(rows, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
