"""Inference latency of every export format against the eager module, on this CPU.

Each network is exported to ``pt``, ``torchscript``, ``onnx`` and ``py`` in a temporary folder
and loaded the way a user would (``nas.load``, ``torch.jit.load``, an onnxruntime session, the
generated file's ``load()``). Then every runner times one batch per round, rounds interleaved
(round ``r`` runs all runners once, in an order rotated by ``r``) so that slow drifts of a shared
machine hit all alike; the table reports each runner's median and its ratio to eager PyTorch,
and the same numbers follow as JSON.

Default clock: CPU time of the calling thread, with one thread in torch and in onnxruntime (so
both compute on the calling thread), which other processes on a shared machine barely disturb;
``--clock wall`` times wall-clock instead. ::

    python scripts/bench_export.py --arch mobilenet_v2_100 ghostnet_100 --rounds 30
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from nas import Arch, build_model, load
from nas.cli.output import print_json, print_table
from nas.export import FORMATS, check_input, export
from nas.export import torchscript as ts_format
from nas.export.onnx import onnxruntime_available
from search_spaces import zoo

DEFAULT_ARCHS = ("mobilenet_v2_100", "ghostnet_100", "shufflenet_v2_x1_0", "mixnet_s", "hardnet39ds")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _runners(arch: Arch, folder: Path, threads: int) -> dict[str, Callable[[torch.Tensor], Any]]:
    """``name -> fn(x)`` for eager PyTorch and each format, loaded from its exported file."""
    torch.manual_seed(0)
    model = build_model(arch).eval()
    runners: dict[str, Callable[[torch.Tensor], Any]] = {"eager": model}
    for fmt in FORMATS:
        if fmt == "onnx" and not onnxruntime_available():
            continue
        path = folder / {"pt": "net_model.pt", "torchscript": "net.ts", "onnx": "net.onnx", "py": "net.py"}[fmt]
        export(model, fmt, path)
        if fmt == "pt":
            runners[fmt] = load(path)
        elif fmt == "torchscript":
            runners[fmt] = ts_format.load(path)
        elif fmt == "onnx":
            import onnxruntime

            opts = onnxruntime.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = threads
            session = onnxruntime.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            runners[fmt] = lambda x, s=session: s.run(None, {"input": x.numpy()})
        else:
            spec = importlib.util.spec_from_file_location("exported_net", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            runners[fmt] = module.load()
    return runners


def bench(arch: Arch, *, rounds: int, warmup: int, batch: int, clock: str, threads: int) -> dict[str, float]:
    """Median seconds of one batch per runner (interleaved rounds)."""
    with tempfile.TemporaryDirectory() as tmp:
        runners = _runners(arch, Path(tmp), threads)
        x = check_input(arch, batch)
        names = list(runners)
        samples: dict[str, list[float]] = {n: [] for n in names}
        now = time.thread_time if clock == "thread" else time.perf_counter
        with torch.no_grad():
            for r in range(warmup + rounds):
                for i in range(len(names)):
                    name = names[(i + r) % len(names)]
                    t0 = now()
                    runners[name](x)
                    if r >= warmup:
                        samples[name].append(now() - t0)
    return {n: statistics.median(s) for n, s in samples.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", nargs="+", default=list(DEFAULT_ARCHS),
                   help="zoo entries or architecture files (default: %(default)s)")
    p.add_argument("--resolution", type=int, default=None, help="override the input resolution")
    p.add_argument("--batch", type=int, default=1, help="default %(default)s")
    p.add_argument("--rounds", type=int, default=30, help="timed rounds (default %(default)s)")
    p.add_argument("--warmup", type=int, default=5, help="untimed rounds first (default %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (default %(default)s)")
    p.add_argument("--clock", choices=("thread", "wall"), default="thread",
                   help="thread: CPU time of the calling thread (needs --threads 1); wall: wall time")
    args = p.parse_args(argv)
    if args.clock == "thread" and args.threads != 1:
        p.error("--clock thread measures the calling thread only: use it with --threads 1")
    torch.set_num_threads(args.threads)

    results = []
    for spec in args.arch:
        arch = zoo.get(spec) if spec in zoo.names() else Arch.load(spec)
        if args.resolution:
            arch = arch.replace(resolution=args.resolution)
        med = bench(arch, rounds=args.rounds, warmup=args.warmup, batch=args.batch, clock=args.clock,
                    threads=args.threads)
        results.append({
            "arch": spec, "resolution": arch.resolution, "median_ms": {k: v * 1e3 for k, v in med.items()},
            "ratio_to_eager": {k: v / med["eager"] for k, v in med.items() if k != "eager"},
        })
        print(f"{spec}: " + ", ".join(f"{k} {v * 1e3:.2f} ms" for k, v in med.items()), file=sys.stderr)

    formats = [f for f in FORMATS if any(f in r["ratio_to_eager"] for r in results)]
    rows = [
        (r["arch"], r["resolution"], f"{r['median_ms']['eager']:.2f}",
         *(f"{r['ratio_to_eager'][f]:.2f}" if f in r["ratio_to_eager"] else "-" for f in formats))
        for r in results
    ]
    print_table(f"export latency vs eager (median of {args.rounds}, batch {args.batch}, {args.clock} clock, "
                f"{args.threads} thread{'s' if args.threads > 1 else ''})",
                ("network", "input", "eager ms", *(f"{f} / eager" for f in formats)), rows)
    ort_version = None
    if onnxruntime_available():
        import onnxruntime

        ort_version = onnxruntime.__version__
    print_json({
        "cpu": _cpu_name(), "torch": torch.__version__,
        "onnxruntime": ort_version, "clock": args.clock, "threads": args.threads, "batch": args.batch,
        "rounds": args.rounds, "warmup": args.warmup, "results": results,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
