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
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from latency_tables.predict import op_params
from nas.builder import build_model
from nas.io import atomic_write_json
from nas.search.dnas import LatencyModel, Supernet, layerwise_view
from nas.search.dnas.train import dnas_loss
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="fbnet", help="layer-wise space (fbnet, mobile; default %(default)s)")
    p.add_argument("--resolution", type=int, default=32, help="input size (default %(default)s)")
    p.add_argument("--num-classes", type=int, default=10, help="default %(default)s")
    p.add_argument("--batch-size", type=int, default=32, help="default %(default)s")
    p.add_argument("--steps", type=int, default=5, help="timed steps per network (default %(default)s)")
    p.add_argument("--temperature", type=float, default=5.0, help="Gumbel-softmax temperature (default %(default)s)")
    p.add_argument("--device", default="cpu", help="default %(default)s")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="default %(default)s")
    p.add_argument("--out", help="also write the figures as JSON to this file")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch_size < 1 or args.threads < 1:
        p.error("--steps, --batch-size and --threads must be >= 1")
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


if __name__ == "__main__":
    sys.exit(main())
