"""How fast does the training loop of ``nas train`` run, and does its automatic fast path cost accuracy?

A. Throughput (training images per second, data in memory). For each network, side by side in one
run, on the same data and batch size:

- ``plain``: the minimal hand-written PyTorch loop a user writes first (fp32, contiguous NCHW,
  SGD momentum 0.9 Nesterov with weight decay 5e-4, cross-entropy with label smoothing 0.1) over
  a tensor already normalised in memory;
- ``ours fp32``: :class:`evaluators.training.engine.Trainer` under ``plan_for(precision="fp32",
  memory_format="contiguous")`` on :class:`~evaluators.training.sources.InMemoryBatches` (its
  per-step crop/flip augmentation, normalisation and LR schedule included): the overhead of our
  loop over ``plain`` on the same numerics path (``ours fp32 / plain`` should be >= 0.95);
- ``ours auto``: ``plan_for(device, resolution=...)``, the automatic fast path (CPU: channels_last,
  bf16 at >= 128 px where the CPU has native bf16, else fp32; CUDA: mixed precision +
  channels_last): ``auto / ours fp32`` is its speed-up;
- ``ours bf16`` (CPU, or a GPU that has bf16) and ``ours fp16`` (GPU only): informational;
- ``ours compile`` (``--compile``): the auto plan with ``torch.compile``; its compile time (the
  warm-up) is reported apart from its steady-state throughput, with the steps it needs to pay for
  itself. The compile runs against an empty inductor cache (a first compile, as a user meets it;
  ``--warm-compile-cache`` keeps the usual on-disk cache, which makes a re-run compile faster).

Each variant first runs ``--warmup`` steps, then ``--repeats`` times ``--steps`` timed steps; the
repeats are interleaved (the variant order rotates each repeat) so that machine noise hits all
variants alike; the table gives the median and the range. Wall clock; on CUDA synchronised before
each clock reading. The CIFAR networks (``--nets``) run at 32x32 with 10 classes, batch 128; the
ImageNet-size ones (``--big-nets``) at their own resolution (224) with their 1000 classes, batch 32;
the images are synthetic (speed does not depend on the pixels).

B. Accuracy of the fast path against fp32 + contiguous after the same short budget: one CIFAR
network (``--acc-net``) trained on a class-balanced subset of real CIFAR-10 with the standard
recipe (:class:`~evaluators.training.recipe.TrainConfig`) for each seed (``--seeds``) under both
plans (and bf16 with ``--bf16-acc``); per-seed and mean top-1, the difference of the means and the
seed-to-seed spread, so a reader sees whether the difference is within noise. Each finished unit
(a network's throughput, a training run) is cached by its key in ``--cache``, so an interrupted run
resumes and a re-run only redraws the outputs (``--remeasure`` measures throughput again).

Full run (about 30 minutes on an idle 2-core machine, without ``--compile``; ``docs/bench_train.md``
states the measured wall time)::

    python scripts/bench_train.py
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import itertools
import json
import logging
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from evaluators.datasets import Dataset, load_dataset, normalise, synthetic
from evaluators.train import build_seeded, check_compatible, train_and_evaluate
from evaluators.training.engine import Diverged, Trainer
from evaluators.training.plan import ExecutionPlan, plan_for
from evaluators.training.recipe import TrainConfig
from evaluators.training.sources import InMemoryBatches
from nas.arch import Arch
from nas.io import atomic_write_json, atomic_write_text
from search_spaces import zoo

log = logging.getLogger("bench_train")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_NETS = ("cifar_shufflenet_v2_x1_0", "cifar_mobilenet_v3_large", "cifar_ghostnet_100")
DEFAULT_BIG_NETS = ("mobilenet_v2_100",)
DEFAULT_DATA = "../shared/data/cifar10-jpg.tar.gz"
CACHE_VERSION = 1
PLAIN = "plain"
RATIOS = (("ours fp32", PLAIN), ("ours auto", "ours fp32"), ("ours bf16", "ours fp32"),
          ("ours fp16", "ours fp32"), ("ours auto", PLAIN), ("ours compile", "ours auto"))


# ---------------------------------------------------------------------------------------------
# Machine and cache


def cpu_model() -> str:
    """The CPU's model name (lscpu, else /proc/cpuinfo, else ``platform.processor()``)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10, check=False).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def machine(device: torch.device, threads: int) -> dict[str, Any]:
    """What the numbers were measured on."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {"cpu": cpu_model(), "cores": cores, "threads": threads, "torch": torch.__version__,
                            "python": platform.python_version(), "platform": platform.platform(),
                            "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError, AttributeError):
        info["load_average_at_start"] = [round(v, 2) for v in os.getloadavg()]
    return info


def key_id(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


class ResultCache:
    """Finished units of work by key, in one JSON file rewritten atomically after each unit."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if data.get("version") == CACHE_VERSION:
                    self.entries = data["entries"]
            except (OSError, ValueError, KeyError, AttributeError) as exc:
                log.warning("ignoring unreadable cache %s (%s)", path, exc)

    def get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        entry = self.entries.get(key_id(key))
        return entry["result"] if entry is not None and entry["key"] == key else None

    def put(self, key: dict[str, Any], result: dict[str, Any]) -> None:
        self.entries[key_id(key)] = {"key": key, "result": result}
        atomic_write_json(self.path, {"version": CACHE_VERSION, "entries": self.entries})


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------
# Part A: throughput


@dataclass(frozen=True)
class Net:
    name: str
    arch: Arch
    batch_size: int


def timing_data(arch: Arch, images: int) -> Dataset:
    """``images`` synthetic training images at the network's resolution, labels spread over (at
    most 100 of) its classes, in random order (speed does not depend on the pixels or labels)."""
    k = min(arch.num_classes, images, 100)
    d = synthetic(num_classes=k, resolution=arch.resolution, channels=arch.in_chans,
                  train_per_class=math.ceil(images / k), test_per_class=1)
    order = np.random.default_rng(0).permutation(len(d.train))[:images]
    classes = tuple(f"class{i}" for i in range(arch.num_classes))
    return Dataset(f"synthetic{arch.resolution}", classes, d.train.take(order), d.test)


class _Window:
    """An :class:`InMemoryBatches` whose epochs stop after ``limit`` batches (so one
    :meth:`Trainer.train_epoch` runs exactly the steps to time); everything else is delegated."""

    def __init__(self, inner: InMemoryBatches, limit: int):
        self.inner, self.limit = inner, limit

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def train_batches(self, epoch: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return itertools.islice(self.inner.train_batches(epoch, batch_size), self.limit)


class PlainLoop:
    """The minimal loop: fp32, NCHW, data normalised once and sliced per step."""

    def __init__(self, arch: Arch, data: Dataset, batch_size: int, device: torch.device):
        self.device, self.batch_size = device, batch_size
        self.model = build_seeded(arch, 0).to(device)
        images = torch.from_numpy(data.train.images).to(device)
        self.x = normalise(images, *data.mean_std).contiguous()
        self.y = torch.from_numpy(data.train.labels).to(device)
        self.batches = len(self.y) // batch_size
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                         weight_decay=5e-4)
        self.position = 0
        self.last_loss = 0.0

    def run(self, steps: int) -> float:
        model, opt, b = self.model, self.optimizer, self.batch_size
        sync(self.device)
        start = time.perf_counter()
        model.train()
        loss = torch.zeros(())
        for _ in range(steps):
            i = self.position % self.batches
            self.position += 1
            x, y = self.x[i * b:(i + 1) * b], self.y[i * b:(i + 1) * b]
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sync(self.device)
        seconds = time.perf_counter() - start
        self.last_loss = float(loss.detach())
        return seconds


class OursLoop:
    """:class:`Trainer` under ``plan``; each :meth:`run` is one ``train_epoch`` of ``steps`` steps."""

    def __init__(self, arch: Arch, data: Dataset, batch_size: int, plan: ExecutionPlan, epochs: int):
        self.device = plan.device
        self.source = _Window(InMemoryBatches(data, device=plan.device, seed=0), limit=1)
        per_epoch = len(data.train) // batch_size
        config = TrainConfig(steps=epochs * per_epoch, batch_size=batch_size, seed=0)
        self.trainer = Trainer(build_seeded(arch, 0), self.source, config, plan)  # type: ignore[arg-type]
        self.epoch = 0
        self.last_loss = 0.0

    def run(self, steps: int) -> float:
        self.source.limit = steps
        sync(self.device)
        start = time.perf_counter()
        record = self.trainer.train_epoch(self.epoch)
        sync(self.device)
        seconds = time.perf_counter() - start
        self.epoch += 1
        self.last_loss = record.train_loss * record.steps / steps
        return seconds


def variants(device: torch.device, threads: int, compile_: bool,
             resolution: int) -> tuple[dict[str, ExecutionPlan | None], dict[str, str]]:
    """The measured variants of a network at ``resolution`` (``None``: the plain loop) and the
    skipped ones with the reason. ``ours bf16`` is measured even where the automatic plan is bf16
    (then the two columns are the same plan, timed twice: a view of the noise)."""
    out: dict[str, ExecutionPlan | None] = {PLAIN: None,
                                            "ours fp32": plan_for(device, precision="fp32",
                                                                  memory_format="contiguous", threads=threads),
                                            "ours auto": plan_for(device, threads=threads, resolution=resolution)}
    skipped: dict[str, str] = {}
    for precision in ("bf16", "fp16"):
        name = f"ours {precision}"
        if precision == "fp16" and device.type != "cuda":
            skipped[name] = f"fp16 needs a GPU ({device.type})"
            continue
        if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            skipped[name] = "this GPU has no bf16"
            continue
        out[name] = plan_for(device, precision=precision, memory_format="channels_last", threads=threads)
    if compile_:
        out["ours compile"] = plan_for(device, compile=True, threads=threads, resolution=resolution)
    return out, skipped


def measure_net(net: Net, plans: dict[str, ExecutionPlan | None], args: argparse.Namespace,
                device: torch.device, bar: Any) -> dict[str, Any]:
    """Warm up every variant, then time the interleaved repeats; images/s per variant."""
    b, steps, warmup, repeats = net.batch_size, args.steps, args.warmup, args.repeats
    per_epoch = max(steps, warmup)
    data = timing_data(net.arch, per_epoch * b)
    runners: dict[str, PlainLoop | OursLoop] = {}
    result: dict[str, Any] = {"net": net.name, "resolution": net.arch.resolution,
                              "num_classes": net.arch.num_classes, "batch_size": b, "variants": {}}
    failed: dict[str, str] = {}
    for name, plan in plans.items():
        bar.set_postfix_str(f"{net.name}: {name} warm-up")
        try:
            runner: PlainLoop | OursLoop = (PlainLoop(net.arch, data, b, device) if plan is None
                                            else OursLoop(net.arch, data, b, plan, epochs=repeats + 1))
            warm_s = runner.run(warmup)
        except Exception as exc:  # Diverged; torch.compile without a working compiler
            if not isinstance(exc, Diverged) and (plan is None or not plan.compile):
                raise
            failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            log.warning("%s, %s: %s", net.name, name, failed[name])
            bar.update(1 + repeats)
            continue
        runners[name] = runner
        result["variants"][name] = {"plan": None if plan is None else plan.describe(), "warmup_s": warm_s,
                                    "seconds": []}
        bar.update()
    names = list(runners)
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)] if names else []
        for name in order:
            bar.set_postfix_str(f"{net.name}: {name} repeat {r + 1}/{repeats}")
            try:
                seconds = runners[name].run(steps)
            except Diverged as exc:
                failed[name] = f"Diverged: {exc}"
                log.warning("%s, %s: %s", net.name, name, failed[name])
                names.remove(name)
                del result["variants"][name]
                bar.update(repeats - r)
                continue
            bar.update()
            result["variants"][name]["seconds"].append(seconds)
    for name, v in result["variants"].items():
        ips = [steps * b / s for s in v["seconds"]]
        v.update(images_per_s=ips, median_images_per_s=statistics.median(ips),
                 step_s=statistics.median(v["seconds"]) / steps,
                 final_loss=runners[name].last_loss)
        if not math.isfinite(v["final_loss"]):
            log.warning("%s, %s: the loss is %s (timings of non-finite arithmetic may mislead)",
                        net.name, name, v["final_loss"])
    med = {n: v["median_images_per_s"] for n, v in result["variants"].items()}
    result["ratios"] = {f"{a} / {b_}": med[a] / med[b_] for a, b_ in RATIOS if a in med and b_ in med}
    comp, auto = result["variants"].get("ours compile"), result["variants"].get("ours auto")
    if comp is not None:
        overhead = comp["warmup_s"] - warmup * comp["step_s"]
        gain = auto["step_s"] - comp["step_s"] if auto is not None else None
        comp["compile_s"] = overhead
        comp["break_even_steps"] = math.ceil(overhead / gain) if gain is not None and gain > 0 else None
    result["failed"] = failed
    del runners
    gc.collect()
    return result


def nets_from_args(args: argparse.Namespace, p: argparse.ArgumentParser) -> list[Net]:
    known = set(zoo.names())
    unknown = sorted(set(args.nets + args.big_nets) - known)
    if unknown:
        p.error(f"unknown nets {unknown}; known: {', '.join(sorted(known))}")
    nets = [Net(n, zoo.get(n).replace(resolution=32, num_classes=10), args.batch_size or 128) for n in args.nets]
    nets += [Net(n, zoo.get(n), args.batch_size or 32) for n in args.big_nets]
    return nets


def throughput(nets: list[Net], args: argparse.Namespace, device: torch.device, cache: ResultCache,
               info: dict[str, Any]) -> dict[str, Any]:
    plans, skipped = variants(device, args.threads, args.compile, 32)
    rows = []
    units = len(plans) * (1 + args.repeats)
    todo: list[tuple[int, Net, dict[str, Any]]] = []
    for i, net in enumerate(nets):
        key = {"part": "throughput", "net": net.name, "arch": net.arch.hash(), "batch_size": net.batch_size,
               "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats, "variants": list(plans),
               "cold_compile_cache": args.compile and not args.warm_compile_cache,
               "device": info.get("gpu") or info["cpu"], "cores": info["cores"], "threads": args.threads,
               "torch": torch.__version__}
        hit = None if args.remeasure else cache.get(key)
        if hit is not None:
            log.info("%s: throughput from the cache (measured %s)", net.name, hit["measured_at"])
            rows.append({**hit, "cached": True})
        else:
            todo.append((i, net, key))
            rows.append({})
    with tqdm(total=units * len(todo), desc="throughput", unit="run") as bar:
        for i, net, key in todo:
            res = measure_net(net, variants(device, args.threads, args.compile, net.arch.resolution)[0], args,
                              device, bar)
            res["auto_plan"] = plan_for(device, threads=args.threads, resolution=net.arch.resolution).describe()
            res["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            cache.put(key, res)
            rows[i] = {**res, "cached": False}
    return {"variants": list(plans), "skipped": skipped, "rows": rows}


# ---------------------------------------------------------------------------------------------
# Part B: accuracy


def find_data(path: str) -> Path | None:
    for p in (Path(path).expanduser(), REPO / path):
        if p.exists():
            return p
    return None


def accuracy(args: argparse.Namespace, device: torch.device, cache: ResultCache) -> dict[str, Any]:
    path = find_data(args.data)
    if path is None:
        msg = f"part B skipped: no CIFAR-10 at {args.data} (give --data)"
        log.warning(msg)
        return {"skipped": msg}
    full = load_dataset(path, cache_dir=args.data_cache, progress=True)
    data = full.subset(train_per_class=args.train_per_class, test_per_class=args.test_per_class, seed=0)
    arch = zoo.get(args.acc_net).replace(resolution=data.resolution, num_classes=data.num_classes)
    check_compatible(arch, data)
    plans = {"fp32 contiguous": plan_for(device, precision="fp32", memory_format="contiguous", threads=args.threads),
             "auto": plan_for(device, threads=args.threads, resolution=arch.resolution)}
    if args.bf16_acc:
        bf16 = plan_for(device, precision="bf16", memory_format="channels_last", threads=args.threads)
        if bf16 not in plans.values():
            plans["bf16"] = bf16
    runs: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in plans}
    jobs = [(name, seed) for seed in args.seeds for name in plans]
    with tqdm(jobs, desc="accuracy", unit="run") as bar:
        for name, seed in bar:
            plan = plans[name]
            config = TrainConfig(epochs=args.acc_epochs, batch_size=args.acc_batch_size, seed=seed)
            key = {"part": "accuracy", "net": args.acc_net, "arch": arch.hash(), "plan": plan.describe(),
                   "threads": args.threads, "seed": seed, "config": config.to_dict(), "data": data.describe()}
            hit = cache.get(key)
            if hit is None:
                bar.set_postfix_str(f"{name} seed {seed}")
                try:
                    out = train_and_evaluate(arch, data, config, plan=plan, progress=True)
                    hit = {"top1": out.top1, "top5": out.top5, "test_loss": out.test_loss,
                           "train_loss": out.train_loss, "steps": out.steps, "seconds": out.seconds}
                except Diverged as exc:
                    hit = {"top1": None, "failed": str(exc)}
                hit["measured_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
                cache.put(key, hit)
            runs[name][seed] = hit
    summary: dict[str, Any] = {}
    for name, by_seed in runs.items():
        top = [r["top1"] for r in by_seed.values() if r.get("top1") is not None]
        secs = [r["seconds"] for r in by_seed.values() if r.get("seconds") is not None]
        summary[name] = {"plan": plans[name].describe(), "mean": statistics.fmean(top) if top else None,
                         "spread": max(top) - min(top) if top else None,
                         "mean_seconds": statistics.fmean(secs) if secs else None}
    out: dict[str, Any] = {"net": args.acc_net, "data": {**data.describe(), "source": str(args.data)},
                           "budget": {**TrainConfig(epochs=args.acc_epochs, batch_size=args.acc_batch_size).to_dict(),
                                      "train_per_class": args.train_per_class,
                                      "test_per_class": args.test_per_class,
                                      "steps": args.acc_epochs * (len(data.train) // args.acc_batch_size)},
                           "seeds": list(args.seeds),
                           "runs": {n: {str(s): r for s, r in by.items()} for n, by in runs.items()},
                           "summary": summary}
    ref, auto = summary["fp32 contiguous"], summary["auto"]
    if ref["mean"] is not None and auto["mean"] is not None:
        diff = auto["mean"] - ref["mean"]
        noise = max(s["spread"] for s in summary.values() if s["spread"] is not None)
        out["auto_minus_fp32"] = diff
        out["seed_spread"] = noise
        out["within_noise"] = len(args.seeds) > 1 and abs(diff) <= noise
        if ref["mean_seconds"] and auto["mean_seconds"]:
            out["train_speedup_auto"] = ref["mean_seconds"] / auto["mean_seconds"]
    return out


# ---------------------------------------------------------------------------------------------
# Report


def _n(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _f(v: float | None, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v, fmt)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    dev = m.get("gpu", "CPU")
    lines = ["# Training throughput and fast-path accuracy", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {dev}; PyTorch {m['torch']}, Python {m['python']}; "
             f"device `{m['device']}`, {_n(m['threads'], 'torch thread')}. Date {report['date']}. "
             f"Load average at start {m.get('load_average_at_start', '-')} (other processes on the machine "
             "slow every variant alike: the repeats are interleaved).", ""]
    tp = report.get("throughput")
    if tp is not None:
        s = report["settings"]
        names = tp["variants"]
        lines += ["## A. Training throughput (images/s)", "",
                  f"Median of {_n(s['repeats'], 'interleaved repeat')} of {_n(s['steps'], 'timed step')} after "
                  f"{_n(s['warmup'], 'warm-up step')} per variant; in brackets the range. Synthetic images in memory; "
                  "CIFAR networks at 32x32 with 10 classes, ImageNet-size ones at their own resolution and "
                  "1000 classes.", "",
                  "What each timing includes (wall clock, CUDA synchronised before each reading): `plain`: per step "
                  "slicing the batch out of the normalised float tensor (on the device), forward, cross-entropy, "
                  "`zero_grad`, backward, SGD step. `ours *`: one `Trainer.train_epoch` of exactly the timed steps: "
                  "the epoch's seeded permutation, per step gathering the uint8 batch, random crop + flip, "
                  "normalisation to the plan's memory format, forward under the plan's autocast, cross-entropy, "
                  "the finiteness check of the loss, `zero_grad`, backward through the gradient scaler, SGD step, "
                  "LR-schedule step.", ""]
        head = "| net | px | batch | auto plan | " + " | ".join(names) + " |"
        lines += [head, "|---|---:|---:|---|" + "---:|" * len(names)]
        for r in tp["rows"]:
            cells = []
            for n in names:
                v = r["variants"].get(n)
                cells.append(f"{v['median_images_per_s']:.1f} [{min(v['images_per_s']):.1f}-"
                             f"{max(v['images_per_s']):.1f}]" if v else f"failed: {r['failed'].get(n, '-')}")
            auto = r.get("auto_plan") or {}
            plan = f"{auto.get('precision', '?')} {auto.get('memory_format', '?')}"
            lines.append(f"| {r['net']} | {r['resolution']} | {r['batch_size']} | {plan} | " + " | ".join(cells) + " |")
        ratio_names = [f"{a} / {b}" for a, b in RATIOS if a in names and b in names]
        lines += ["", "Ratios of the medians (`ours fp32 / plain`: the overhead of our loop, >= 0.95 wanted; "
                  "`ours auto / ours fp32`: the speed-up of the automatic fast path):", "",
                  "| net | " + " | ".join(ratio_names) + " |", "|---|" + "---:|" * len(ratio_names)]
        for r in tp["rows"]:
            lines.append(f"| {r['net']} | " + " | ".join(_f(r["ratios"].get(n), ".2f") for n in ratio_names) + " |")
        if tp["skipped"]:
            lines += ["", "Not measured: " + "; ".join(f"{k} ({v})" for k, v in tp["skipped"].items()) + "."]
        if "ours compile" in names:
            cold = ("an empty inductor cache (a first compile)" if s.get("cold_compile_cache")
                    else "torch's on-disk inductor cache as it was")
            lines += ["", "`torch.compile` (auto plan): compile time = warm-up time minus the warm-up steps at the "
                      f"steady rate, with {cold}; break-even = the steps after which the faster steps have "
                      "paid for it (compared with `ours auto`).", "",
                      "| net | compile (s) | steady step compiled (s) | steady step auto (s) | break-even (steps) |",
                      "|---|---:|---:|---:|---:|"]
            for r in tp["rows"]:
                c, a = r["variants"].get("ours compile"), r["variants"].get("ours auto")
                if c is None:
                    lines.append(f"| {r['net']} | failed: {r['failed'].get('ours compile', '-')} | | | |")
                    continue
                be = c["break_even_steps"]
                lines.append(f"| {r['net']} | {c['compile_s']:.1f} | {c['step_s']:.3f} | "
                             f"{_f(a['step_s'] if a else None, '.3f')} | {be if be is not None else 'never'} |")
        cached = [r for r in tp["rows"] if r.get("cached")]
        if cached:
            lines += ["", "From the cache of an earlier run: " + ", ".join(
                f"{r['net']} (measured {r['measured_at']})" for r in cached) + "."]
        lines.append("")
    acc = report.get("accuracy")
    if acc is not None:
        lines += ["## B. Accuracy: fast path vs fp32 + contiguous", ""]
        if "skipped" in acc:
            lines += [acc["skipped"], ""]
        else:
            b, d = acc["budget"], acc["data"]
            seeds = acc["seeds"]
            lines += [f"{acc['net']} (10 classes) on CIFAR-10 (`{d['source']}`, fingerprint {d['fingerprint']}): "
                      f"{d['train']} training images ({b['train_per_class']} per class), {_n(b['epochs'], 'epoch')} at "
                      f"batch {b['batch_size']} ({_n(b['steps'], 'step')}), the standard recipe (peak lr {b['lr']}, "
                      f"SGD Nesterov, cosine, label smoothing {b['label_smoothing']}, crop + flip); top-1 on "
                      f"{d['test']} test images. Seeds change initialisation, data order and augmentation.", "",
                      "| plan | " + " | ".join(f"seed {s} top-1 (%)" for s in seeds)
                      + " | mean (%) | seed spread (max-min) | train + test time per run (s) |",
                      "|---|" + "---:|" * (len(seeds) + 3)]
            for name, summ in acc["summary"].items():
                cells = []
                for s in seeds:
                    r = acc["runs"][name][str(s)]
                    cells.append(_f(r.get("top1"), ".2f") if r.get("top1") is not None else "diverged")
                lines.append(f"| {name} | " + " | ".join(cells) + f" | {_f(summ['mean'], '.2f')} | "
                             f"{_f(summ['spread'], '.2f')} | {_f(summ['mean_seconds'], '.0f')} |")
            if "auto_minus_fp32" in acc:
                verdict = ("within" if acc["within_noise"] else "outside")
                lines += ["", f"Difference of the means, auto - fp32: {acc['auto_minus_fp32']:+.2f} points; "
                          f"largest seed-to-seed spread: {acc['seed_spread']:.2f} points: the difference is "
                          f"{verdict} the seed-to-seed noise"
                          + (" (one seed: no noise estimate)" if len(seeds) < 2 else "")
                          + (f". End-to-end training speed-up of auto: {acc['train_speedup_auto']:.2f}x"
                             if "train_speedup_auto" in acc else "") + "."]
            lines.append("")
    lines += [f"Command: `{report['command']}`", "",
              f"Wall time of this run: {report['wall_s'] / 60:.1f} min (cached units not re-measured).", ""]
    return "\n".join(lines)


def summary_line(report: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"bench": "bench_train", "out_md": report["out_md"], "out_json": report["out_json"]}
    tp = report.get("throughput")
    if tp is not None:
        out["throughput"] = {r["net"]: {"images_per_s": {n: round(v["median_images_per_s"], 2)
                                                         for n, v in r["variants"].items()},
                                        "ratios": {n: round(v, 3) for n, v in r["ratios"].items()}}
                             for r in tp["rows"]}
    acc = report.get("accuracy")
    if acc is not None:
        out["accuracy"] = ({"skipped": acc["skipped"]} if "skipped" in acc else
                           {"net": acc["net"], "mean_top1": {n: s["mean"] for n, s in acc["summary"].items()},
                            "auto_minus_fp32": acc.get("auto_minus_fp32"), "seed_spread": acc.get("seed_spread"),
                            "within_noise": acc.get("within_noise")})
    return out


# ---------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("throughput (part A)")
    g.add_argument("--nets", nargs="*", default=list(DEFAULT_NETS),
                   help="CIFAR networks, run at 32x32 with 10 classes (default: %(default)s)")
    g.add_argument("--big-nets", nargs="*", default=list(DEFAULT_BIG_NETS),
                   help="networks at their own resolution and classes (default: %(default)s)")
    g.add_argument("--batch-size", type=int, default=None,
                   help="throughput batch size of every network (default: 128 for --nets, 32 for --big-nets)")
    g.add_argument("--steps", type=int, default=20, help="timed steps per repeat (default %(default)s)")
    g.add_argument("--warmup", type=int, default=3, help="warm-up steps per variant (default %(default)s)")
    g.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default %(default)s)")
    g.add_argument("--compile", action="store_true", help="also time the auto plan with torch.compile")
    g.add_argument("--warm-compile-cache", action="store_true",
                   help="with --compile: keep torch's on-disk inductor cache (default: an empty one, a cold compile)")
    g.add_argument("--remeasure", action="store_true", help="ignore cached throughput results")
    g.add_argument("--skip-throughput", action="store_true", help="skip part A")
    g = p.add_argument_group("accuracy (part B)")
    g.add_argument("--data", default=DEFAULT_DATA, help="CIFAR-10 (folder tree, .tar.gz or python batches; default "
                   "%(default)s, relative to the working directory or the repository)")
    g.add_argument("--data-cache", default=None, help="dataset decoding cache (default ~/.cache/litenas)")
    g.add_argument("--acc-net", default="cifar_shufflenet_v2_x0_5", help="default %(default)s")
    g.add_argument("--train-per-class", type=int, default=500, help="default %(default)s")
    g.add_argument("--test-per-class", type=int, default=200, help="default %(default)s")
    g.add_argument("--acc-epochs", type=int, default=3, help="default %(default)s")
    g.add_argument("--acc-batch-size", type=int, default=128, help="default %(default)s")
    g.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="default %(default)s")
    g.add_argument("--bf16-acc", action="store_true", help="also train under bf16 + channels_last")
    g.add_argument("--skip-accuracy", action="store_true", help="skip part B")
    g = p.add_argument_group("common")
    g.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N (default %(default)s)")
    g.add_argument("--threads", type=int, default=2, help="torch CPU threads (default %(default)s)")
    g.add_argument("--cache", default="runs/bench_train/cache.json",
                   help="finished units by key, for resuming (default %(default)s)")
    g.add_argument("--out-md", default="docs/bench_train.md", help="default %(default)s")
    g.add_argument("--out-json", default="docs/bench_train.json", help="default %(default)s")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("steps", "warmup", "repeats", "threads", "train_per_class", "test_per_class", "acc_epochs",
                 "acc_batch_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.batch_size is not None and args.batch_size < 1:
        p.error("--batch-size must be >= 1")
    if args.skip_throughput and args.skip_accuracy:
        p.error("nothing to do: both parts skipped")
    try:
        device = plan_for(args.device).device
    except ValueError as exc:
        p.error(str(exc))
    nets = nets_from_args(args, p)
    if not args.skip_accuracy and args.acc_net not in zoo.names():
        p.error(f"unknown --acc-net {args.acc_net!r}")

    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    info = machine(device, args.threads)
    cache = ResultCache(Path(args.cache))
    report: dict[str, Any] = {
        "command": "python " + " ".join(["scripts/bench_train.py", *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "machine": info,
        "settings": {"steps": args.steps, "warmup": args.warmup, "repeats": args.repeats, "threads": args.threads,
                     "compile": args.compile, "cold_compile_cache": args.compile and not args.warm_compile_cache},
        "out_md": args.out_md, "out_json": args.out_json}
    if not args.skip_throughput and nets:
        cold = args.compile and not args.warm_compile_cache
        inductor_cache = tempfile.mkdtemp(prefix="bench_train_inductor_") if cold else None
        if inductor_cache is not None:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = inductor_cache
        try:
            report["throughput"] = throughput(nets, args, device, cache, info)
        finally:
            if inductor_cache is not None:
                shutil.rmtree(inductor_cache, ignore_errors=True)
    if not args.skip_accuracy:
        report["accuracy"] = accuracy(args, device, cache)
    report["wall_s"] = time.perf_counter() - start
    md = markdown(report)
    atomic_write_json(args.out_json, report)
    atomic_write_text(args.out_md, md)
    sys.stdout.write(md + "\n")
    sys.stdout.write(json.dumps(summary_line(report)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
