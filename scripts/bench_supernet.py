"""Step time and activation memory of the DNAS supernet, soft (FBNet) and single-path
(ProxylessNAS-style) modes, as ratios to a standalone child network, in one run.

The child is the network of the space's largest candidates (per searched layer, the candidate with
the most parameters; for ``fbnet`` that is ``k5_e6`` everywhere), built with
:func:`nas.builder.build_model` as any candidate of a search is. Each of the three is timed over
``--steps`` training steps after one warm-up step (median): the child's step and the supernet's
weight step are forward + backward + SGD step; the supernet's architecture step is forward +
gradient of the loss with respect to ``theta`` + Adam step.

Memory: the activation memory of a training step, measured as the bytes of the distinct tensor
storages autograd saves for the backward pass during the forward pass
(``torch.autograd.graph.saved_tensors_hooks``), parameters excluded. That is exactly what a
training step holds beyond its (fixed) weights, gradients and optimiser state at its peak, the end
of the forward pass; it is deterministic and works on any device, unlike process RSS (allocator
caching, other threads) and unlike ``torch.cuda.max_memory_allocated``, which only exists on
CUDA. On a CUDA device the peak allocated memory of a step above the memory held before it is
reported as well. Single-path steps sample a new path each step, so the table shows their maximum
over the steps; the ``child path`` rows run the single-path machinery along the child's own path
(:meth:`~nas.search.dnas.supernet.Supernet.path`), the like-for-like comparison. Weight memory is reported apart: a supernet holds every candidate's weights by
design.

Example (CPU, one thread, a few seconds of steps)::

    python scripts/bench_supernet.py --space fbnet --resolution 32 --batch-size 32 --steps 5
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import latency_tables
from evaluators import Dataset, TrainConfig, TrainedAccuracy, load_dataset, synthetic
from evaluators.cache import config_digest
from latency_tables.predict import op_params
from nas.arch import Arch
from nas.builder import build_model
from nas.io import atomic_write_json, atomic_write_text
from nas.search.dnas import DNASSettings, DNASTrainer, LatencyModel, Supernet, derive, layerwise_view
from nas.search.dnas.train import dnas_loss
from search_spaces.layerwise import LayerwiseView
from search_spaces.spaces import get_space


def saved_activation_bytes(step: Callable[[], None], params: set[int]) -> int:
    """Bytes of the distinct storages autograd saves while ``step`` runs, parameters left out."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params:
            seen[ptr] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(seen.values())


def measure(step: Callable[[], None], params: set[int], steps: int, device: torch.device) -> dict[str, Any]:
    """Median time and activation bytes (max over steps) of ``step``; CUDA peak where available."""
    step()  # warm-up (allocator, lazy init)
    times, acts, peaks = [], [], []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
            before = torch.cuda.memory_allocated(device)
        start = time.perf_counter()
        acts.append(saved_activation_bytes(step, params))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            peaks.append(torch.cuda.max_memory_allocated(device) - before)
        times.append(time.perf_counter() - start)
    out = {"step_ms": statistics.median(times) * 1e3, "activation_mb": max(acts) / 2**20,
           "activation_mb_mean": statistics.mean(acts) / 2**20}
    if peaks:
        out["cuda_peak_mb"] = max(peaks) / 2**20
    return out


def run_cost(args: argparse.Namespace) -> int:
    """``--mode cost``: step time and activation memory of the supernet against a child network."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    view = layerwise_view(get_space(args.space, resolution=args.resolution, num_classes=args.num_classes))
    largest = [max(range(len(layer)), key=lambda k, layer=layer: op_params(layer.configs[k])) for layer in view.layers]
    child = build_model(view.arch(largest)).to(device)
    supernet = Supernet(view).to(device)
    latency = LatencyModel([[1.0] * len(layer) for layer in view.layers], 1.0).to(device)  # any costs: same graph
    x = torch.randn(args.batch_size, 3, args.resolution, args.resolution, device=device)
    y = torch.randint(0, args.num_classes, (args.batch_size,), device=device)

    child_opt = torch.optim.SGD(child.parameters(), lr=0.01, momentum=0.9)
    weight_opt = torch.optim.SGD(supernet.weight_parameters(), lr=0.01, momentum=0.9)
    arch_opt = torch.optim.Adam(supernet.arch_parameters(), lr=0.01)

    def child_step() -> None:
        loss = F.cross_entropy(child(x), y)
        child_opt.zero_grad(set_to_none=True)
        loss.backward()
        child_opt.step()

    def weight_step(mode: str) -> Callable[[], None]:
        def step() -> None:
            path = supernet.path(largest) if mode == "child path" else supernet.sample(args.temperature, mode, grad=False)
            loss = F.cross_entropy(supernet(x, path), y)
            weight_opt.zero_grad(set_to_none=True)
            loss.backward()
            weight_opt.step()
        return step

    def arch_step(mode: str) -> Callable[[], None]:
        def step() -> None:
            path = supernet.path(largest) if mode == "child path" else supernet.sample(args.temperature, mode)
            ce = F.cross_entropy(supernet(x, path), y)
            lat = latency([F.softmax(t, dim=0) for t in supernet.theta])
            loss = dnas_loss(ce, lat, kind="add", alpha=0.1, beta=1.0)
            theta = supernet.arch_parameters()
            for t, g in zip(theta, torch.autograd.grad(loss, theta), strict=True):
                t.grad = g
            arch_opt.step()
        return step

    supernet.train()
    child.train()
    child_params = {q.untyped_storage().data_ptr() for q in child.parameters()}
    net_params = {q.untyped_storage().data_ptr() for q in supernet.parameters()}
    rows: dict[str, dict[str, Any]] = {"child": measure(child_step, child_params, args.steps, device)}
    for mode in ("soft", "single", "child path"):
        rows[f"{mode} weight step"] = measure(weight_step(mode), net_params, args.steps, device)
        rows[f"{mode} arch step"] = measure(arch_step(mode), net_params, args.steps, device)
    base = rows["child"]
    for row in rows.values():
        row["time_x"] = row["step_ms"] / base["step_ms"]
        row["activation_x"] = row["activation_mb"] / base["activation_mb"]
        if "cuda_peak_mb" in row:
            row["cuda_peak_x"] = row["cuda_peak_mb"] / base["cuda_peak_mb"]

    weights_mb = {"child": sum(q.numel() * q.element_size() for q in child.parameters()) / 2**20,
                  "supernet": sum(q.numel() * q.element_size() for q in supernet.parameters()) / 2**20}
    result = {
        "space": args.space, "coverage": view.coverage, "resolution": args.resolution, "batch_size": args.batch_size,
        "steps": args.steps, "device": str(device), "threads": args.threads, "torch": torch.__version__,
        "platform": platform.platform(), "child": view.arch(largest).hash(),
        "child_layers": [layer.labels[k] for layer, k in zip(view.layers, largest, strict=True)],
        "weights_mb": weights_mb, "rows": rows,
        "single_path_peak_activation_x": max(rows[f"{m} {s} step"]["activation_x"]
                                             for m in ("single", "child path") for s in ("weight", "arch")),
    }
    print(f"{args.space} ({view.coverage}), {args.resolution}px, batch {args.batch_size}, {device}, "
          f"{args.threads} thread(s), median of {args.steps} steps")
    print(f"child of the largest candidates: {result['child_layers'][0]} ... ({view.arch(largest).hash()})")
    cuda = "cuda_peak_mb" in base
    print(f"{'':22} {'step ms':>9} {'x child':>8} {'act. MB':>9} {'x child':>8}" + ("  cuda MB  x child" if cuda else ""))
    for name, r in rows.items():
        line = f"{name:22} {r['step_ms']:9.1f} {r['time_x']:8.2f} {r['activation_mb']:9.2f} {r['activation_x']:8.2f}"
        if cuda:
            line += f" {r['cuda_peak_mb']:8.1f} {r['cuda_peak_x']:8.2f}"
        print(line)
    print(f"weights: child {weights_mb['child']:.1f} MB, supernet {weights_mb['supernet']:.1f} MB")
    print(f"single-path peak activation memory (sampled paths and the child's path through the supernet): "
          f"{result['single_path_peak_activation_x']:.2f}x the child's "
          f"(target <= 1.5x)")
    if args.out:
        atomic_write_json(Path(args.out), json.loads(json.dumps(result)))
    return 0


# ------------------------------------------------------------------------------ --mode search
CACHE_FORMAT = "litenas.bench_supernet_cache"
CACHE_VERSION = 1


class ResultFile:
    """The search mode's resumable cache: one JSON file of finished DNAS runs and trained
    networks, each under a key that digests everything that defines it; rewritten atomically
    after every new entry, so an interrupted run loses at most the entry in progress."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, dict[str, Any]] = {"dnas": {}, "trained": {}}
        if path.exists():
            blob = json.loads(path.read_text())
            if blob.get("format") != CACHE_FORMAT or blob.get("version") != CACHE_VERSION:
                raise ValueError(f"--cache: {path} is not a bench_supernet cache (version {CACHE_VERSION})")
            self.data = {"dnas": blob["dnas"], "trained": blob["trained"]}

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        return self.data[kind].get(key)

    def put(self, kind: str, key: str, value: dict[str, Any]) -> dict[str, Any]:
        self.data[kind][key] = value
        atomic_write_json(self.path, {"format": CACHE_FORMAT, "version": CACHE_VERSION, **self.data})
        return value


def search_data(args: argparse.Namespace) -> Dataset:
    """``--data`` reduced to ``--train-per-class``/``--test-per-class`` (``synthetic``: generated
    32x32 images of 10 classes)."""
    if args.data == "synthetic":
        return synthetic(num_classes=10, train_per_class=args.train_per_class, test_per_class=args.test_per_class,
                         resolution=32, seed=args.seed)
    data = load_dataset(args.data, cache_dir=args.data_cache, progress=False)
    return data.subset(train_per_class=args.train_per_class, test_per_class=args.test_per_class, seed=args.seed)


def run_dnas(view: LayerwiseView, latency: LatencyModel, data: Dataset, settings: DNASSettings, key: str,
             checkpoint: Path) -> dict[str, Any]:
    """Train the supernet (resuming ``checkpoint``) and derive its argmax architecture."""
    with torch.random.fork_rng():
        torch.manual_seed(settings.seed)
        supernet = Supernet(view)
    trainer = DNASTrainer(supernet, latency, data, settings, checkpoint=checkpoint, identity={"key": key})
    history = trainer.fit().history
    best = derive(view, supernet.probabilities(), latency, samples=0, seed=settings.seed)[0]
    first, last = history[0], history[-1]
    return {"indices": list(best.indices), "arch": json.loads(best.arch.to_json()), "hash": best.arch.hash(),
            "latency_ms": best.latency_ms, "reference_ms": trainer.reference_ms,
            "weight_ce": [first["weight_ce"], last["weight_ce"]], "arch_ce_last": last["arch_ce"],
            "expected_latency_ms": [first["expected_latency_ms"], last["expected_latency_ms"]],
            "mean_entropy_last": last["mean_entropy"], "seconds": sum(h["seconds"] for h in history),
            "choices": [layer.labels[k] for layer, k in zip(view.layers, best.indices, strict=True)]}


def matched_random(latency: LatencyModel, target_ms: float, *, band: float, exclude: tuple[int, ...], seed: int,
                   draws: int = 20000) -> tuple[tuple[int, ...], float]:
    """A random architecture whose table latency is within ``band`` (relative) of ``target_ms``.

    Uniform sampling rarely reaches the ends of the latency range, so layers are drawn from the
    exponentially tilted distribution ``p_{l,i} ~ exp(-lam * cost_{l,i})`` whose expected latency
    is ``target_ms`` (``lam`` by bisection; ``lam = 0`` is uniform), the maximum-entropy
    distribution at that latency; the first draw within the band (other than ``exclude``) wins,
    else the closest of ``draws`` (its latency is reported, so a miss shows).
    """
    costs = [c.double().cpu().numpy() for c in latency.costs()]
    scale = float(np.mean([c.std() for c in costs])) or 1.0

    def probs(lam: float) -> list[np.ndarray]:
        out = []
        for c in costs:
            w = np.exp(-lam * (c - c.min()) / scale)
            out.append(w / w.sum())
        return out

    def expected(lam: float) -> float:
        return latency.constant + sum(float(p @ c) for p, c in zip(probs(lam), costs, strict=True))

    lo, hi = -50.0, 50.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if expected(mid) > target_ms else (lo, mid)
    p = probs((lo + hi) / 2)
    rng = np.random.default_rng(seed)
    best: tuple[tuple[int, ...], float] | None = None
    for _ in range(draws):
        indices = tuple(int(rng.choice(len(q), p=q)) for q in p)
        ms = latency.of(indices)
        if indices == exclude:
            continue
        if abs(ms - target_ms) <= band * target_ms:
            return indices, ms
        if best is None or abs(ms - target_ms) < abs(best[1] - target_ms):
            best = (indices, ms)
    assert best is not None  # 9^22 architectures: a draw other than ``exclude`` always comes
    return best


def train_net(cache: ResultFile, arch: Arch, evaluator: TrainedAccuracy) -> dict[str, Any]:
    """Top-1 of ``arch`` after the bench's retraining recipe (cached by arch hash and recipe)."""
    key = f"{arch.hash()}-{config_digest(evaluator.config())}"
    hit = cache.get("trained", key)
    if hit is not None:
        return hit
    result = evaluator(arch)
    if not result.ok:
        raise RuntimeError(f"training {arch.hash()} failed: {result.reason}")
    return cache.put("trained", key, {"hash": arch.hash(), "top1": result.metrics["top1"],
                                      "seconds": result.info.get("seconds")})


def run_search(args: argparse.Namespace) -> int:
    """``--mode search``: DNAS per latency weight, then the derived network against a random
    network of the same table latency, both retrained with one recipe."""
    torch.set_num_threads(args.threads)
    view = layerwise_view(get_space("fbnet", resolution=32, num_classes=10))
    table = latency_tables.load(args.latency_table, check_env=False)
    latency = LatencyModel.from_table(view, table)
    data = search_data(args)
    cache = ResultFile(Path(args.cache))
    recipe = TrainConfig(epochs=args.retrain_epochs, batch_size=args.batch_size, lr=args.retrain_lr, seed=args.seed)
    trainer = TrainedAccuracy(data, recipe, threads=args.threads, progress=False)
    identity = {"space": "fbnet", "resolution": 32, "data": data.describe(), "latency_constant": latency.constant,
                "latency_costs": [[round(float(v), 9) for v in c] for c in latency.costs()]}
    mean_ms = latency.mean()
    rows = []
    bar = tqdm(total=3 * len(args.alphas), desc="bench_supernet search", unit="task")
    for alpha in args.alphas:
        settings = DNASSettings(mode="soft" if args.strategy == "fbnet" else "single", epochs=args.dnas_epochs,
                                warmup_epochs=args.dnas_warmup_epochs, alpha=alpha, weight_lr=args.weight_lr,
                                arch_lr=args.arch_lr, batch_size=args.batch_size, seed=args.seed, threads=args.threads,
                                device=args.device)
        key = config_digest({**identity, "settings": {k: v for k, v in vars(settings).items()
                                                      if k not in ("threads", "device", "time_limit_s")}})
        bar.set_postfix_str(f"alpha {alpha:g}: DNAS")
        found = cache.get("dnas", key)
        if found is None:
            ckpt = Path(args.cache).with_name(f"dnas-{key}.ckpt")
            found = cache.put("dnas", key, run_dnas(view, latency, data, settings, key, ckpt))
            ckpt.unlink(missing_ok=True)
        bar.update()
        derived = Arch.from_json(json.dumps(found["arch"]))
        random_idx, random_ms = matched_random(latency, found["latency_ms"], band=args.band,
                                               exclude=tuple(found["indices"]), seed=args.seed)
        nets = {"derived": derived, "random": view.arch(random_idx)}
        trained = {}
        for name, arch in nets.items():
            bar.set_postfix_str(f"alpha {alpha:g}: train {name}")
            trained[name] = train_net(cache, arch, trainer)
            bar.update()
        rows.append({"alpha": alpha, "dnas": found,
                     "derived": {"hash": derived.hash(), "latency_ms": found["latency_ms"], "top1": trained["derived"]["top1"]},
                     "random": {"hash": nets["random"].hash(), "latency_ms": random_ms, "top1": trained["random"]["top1"],
                                "choices": [layer.labels[k] for layer, k in zip(view.layers, random_idx, strict=True)]}})
    bar.close()
    result = search_summary(args, rows, mean_ms, data, recipe)
    print_search(result)
    if args.out:
        out = Path(args.out)
        atomic_write_json(out, result)
        write_markdown(out.with_suffix(".md"), result)
    return 0


def search_summary(args: argparse.Namespace, rows: list[dict[str, Any]], mean_ms: float, data: Dataset,
                   recipe: TrainConfig) -> dict[str, Any]:
    """The figures and the two claims: a larger latency weight gives a network no slower (strictly
    faster at both ends), and each derived network beats its random twin of the same latency."""
    lats = [r["derived"]["latency_ms"] for r in rows]
    ordered = sorted(rows, key=lambda r: r["alpha"])
    by_alpha = [r["derived"]["latency_ms"] for r in ordered]
    wins = sum(r["derived"]["top1"] > r["random"]["top1"] for r in rows)
    return {
        "command": "python scripts/bench_supernet.py " + shlex.join(args.argv),
        "strategy": args.strategy, "space": "fbnet", "resolution": 32, "data": args.data,
        "train_per_class": args.train_per_class, "test_per_class": args.test_per_class, "data_identity": data.describe(),
        "latency_table": str(args.latency_table), "space_mean_latency_ms": mean_ms,
        "dnas": {"epochs": args.dnas_epochs, "warmup_epochs": args.dnas_warmup_epochs, "weight_lr": args.weight_lr,
                 "arch_lr": args.arch_lr, "batch_size": args.batch_size, "loss": "relative"},
        "retrain": recipe.to_dict(), "band": args.band, "threads": args.threads, "torch": torch.__version__,
        "rows": rows,
        "claims": {
            "latency_falls_with_alpha": all(a >= b for a, b in zip(by_alpha[:-1], by_alpha[1:], strict=True)) and by_alpha[0] > by_alpha[-1],
            "derived_beats_random": f"{wins} of {len(rows)}",
            "latency_range_ms": [min(lats), max(lats)],
        },
    }


def print_search(result: dict[str, Any]) -> None:
    mean = result["space_mean_latency_ms"]
    print(f"fbnet@32, {result['strategy']}, {result['train_per_class']} img/class; space mean latency {mean:.4g} ms")
    print(f"{'alpha':>7} {'derived ms':>11} {'x mean':>7} {'random ms':>10} {'x derived':>9} "
          f"{'derived top1':>12} {'random top1':>11} {'diff':>6}  weight CE")
    for r in result["rows"]:
        d, q = r["derived"], r["random"]
        print(f"{r['alpha']:7g} {d['latency_ms']:11.4g} {d['latency_ms'] / mean:7.3f} {q['latency_ms']:10.4g} "
              f"{q['latency_ms'] / d['latency_ms']:9.3f} {d['top1']:12.2f} {q['top1']:11.2f} "
              f"{d['top1'] - q['top1']:+6.2f}  {r['dnas']['weight_ce'][0]:.3f} -> {r['dnas']['weight_ce'][1]:.3f}")
    c = result["claims"]
    print(f"latency falls as alpha grows: {c['latency_falls_with_alpha']}; derived beats random: "
          f"{c['derived_beats_random']}")


def write_markdown(path: Path, result: dict[str, Any]) -> None:
    mean = result["space_mean_latency_ms"]
    rt, dn = result["retrain"], result["dnas"]
    lines = [
        "# DNAS on fbnet@32: does the latency weight move the derived network, and does it beat random?", "",
        f"Re-run (resumes from its cache): `{result['command']}`", "",
        f"- search: `{result['strategy']}` DNAS, loss `CE + alpha * LAT / LAT_ref` (LAT_ref = the space's mean "
        f"table latency, {mean:.4g} ms), {dn['epochs']} epochs ({dn['warmup_epochs']} weights-only), weight lr "
        f"{dn['weight_lr']}, arch lr {dn['arch_lr']}, batch {dn['batch_size']}; data `{result['data']}`, "
        f"{result['train_per_class']} train / {result['test_per_class']} test images per class",
        f"- retraining (derived and random alike): {rt['epochs']} epochs, batch {rt['batch_size']}, lr {rt['lr']}, "
        f"seed {rt['seed']}, top-1 on the test subset",
        f"- random twin: drawn from the space (maximum-entropy distribution at the derived network's latency), "
        f"first draw within ±{result['band']:.0%} of its table latency",
        f"- latency table `{result['latency_table']}`; {result['threads']} thread(s), torch {result['torch']}", "",
        "| alpha | derived ms | x space mean | random ms | random / derived | derived top-1 | random top-1 | diff | "
        "supernet weight CE (first -> last epoch) | derived hash |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in result["rows"]:
        d, q = r["derived"], r["random"]
        lines.append(f"| {r['alpha']:g} | {d['latency_ms']:.4g} | {d['latency_ms'] / mean:.3f} | {q['latency_ms']:.4g} | "
                     f"{q['latency_ms'] / d['latency_ms']:.3f} | {d['top1']:.2f} | {q['top1']:.2f} | "
                     f"{d['top1'] - q['top1']:+.2f} | {r['dnas']['weight_ce'][0]:.3f} -> {r['dnas']['weight_ce'][1]:.3f} | "
                     f"`{d['hash']}` |")
    c = result["claims"]
    lines += ["", f"- a larger latency weight gives a faster derived network: **{c['latency_falls_with_alpha']}**",
              f"- the derived network beats the random one of the same latency: **{c['derived_beats_random']}**", ""]
    atomic_write_text(path, "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("cost", "search"), default="cost",
                   help="cost: step time and memory; search: DNAS per latency weight vs random (default %(default)s)")
    p.add_argument("--space", default="fbnet", help="cost: layer-wise space (fbnet, mobile; default %(default)s)")
    p.add_argument("--resolution", type=int, default=32, help="cost: input size (default %(default)s)")
    p.add_argument("--num-classes", type=int, default=10, help="cost: default %(default)s")
    p.add_argument("--batch-size", type=int, default=None, help="default 32 (cost), 64 (search)")
    p.add_argument("--steps", type=int, default=5, help="cost: timed steps per network (default %(default)s)")
    p.add_argument("--temperature", type=float, default=5.0, help="cost: Gumbel-softmax temperature (default %(default)s)")
    p.add_argument("--device", default="cpu", help="default %(default)s")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="default %(default)s")
    p.add_argument("--out", help="write the figures as JSON to this file (search: and Markdown next to it)")
    s = p.add_argument_group("search mode")
    s.add_argument("--data", default="synthetic", help="CIFAR-10 tree or .tar.gz, or synthetic (default %(default)s)")
    s.add_argument("--data-cache", default=None, help="dataset decoding cache (default ~/.cache/litenas)")
    s.add_argument("--train-per-class", type=int, default=100, help="default %(default)s")
    s.add_argument("--test-per-class", type=int, default=100, help="default %(default)s")
    s.add_argument("--latency-table", help="fbnet@32 latency table (shipped name or file)")
    s.add_argument("--alphas", type=float, nargs="+", default=[0.02, 0.1, 0.5], help="latency weights (default %(default)s)")
    s.add_argument("--strategy", choices=("fbnet", "proxyless"), default="fbnet", help="default %(default)s")
    s.add_argument("--dnas-epochs", type=int, default=3, help="default %(default)s")
    s.add_argument("--dnas-warmup-epochs", type=int, default=1, help="default %(default)s")
    s.add_argument("--weight-lr", type=float, default=DNASSettings.weight_lr, help="default %(default)s")
    s.add_argument("--arch-lr", type=float, default=DNASSettings.arch_lr, help="default %(default)s")
    s.add_argument("--retrain-epochs", type=int, default=5, help="default %(default)s")
    s.add_argument("--retrain-lr", type=float, default=0.1, help="default %(default)s")
    s.add_argument("--band", type=float, default=0.05, help="random twin's latency band (default %(default)s)")
    s.add_argument("--cache", default="runs/bench_supernet/cache.json", help="resumable results (default %(default)s)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.batch_size is None:
        args.batch_size = 32 if args.mode == "cost" else 64
    if args.steps < 1 or args.batch_size < 1 or args.threads < 1:
        p.error("--steps, --batch-size and --threads must be >= 1")
    if args.mode == "cost":
        return run_cost(args)
    if args.latency_table is None:
        p.error("--mode search needs --latency-table (an fbnet@32 table: python -m latency_tables build "
                "--space fbnet --resolution 32 --threads 1 --out FILE)")
    for name in ("train_per_class", "test_per_class", "retrain_epochs", "dnas_epochs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if not 0 < args.band < 1 or any(a < 0 for a in args.alphas):
        p.error("--band must be in (0, 1) and every --alphas value >= 0")
    return run_search(args)


if __name__ == "__main__":
    sys.exit(main())
