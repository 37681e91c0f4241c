"""Build, calibrate and validate a latency table end to end, and print the figures.

    python scripts/bench_latency_table.py --space fbnet --resolution 224 \\
        --out latency_tables/fbnet_224_cpu.json --zoo

runs ``build`` (resumable), ``calibrate`` (``--calib-n`` networks, seed 1) and ``validate``
(``-n`` networks, seed 0, a seed apart from calibration's), then prints one JSON summary line
after the human-readable figures. ``--target`` makes the exit status say whether the accuracy
target holds (at least 95% of networks within +-10% and Kendall tau >= 0.9). Run it on a quiet
machine: other processes competing for the CPU inflate long runs (whole networks) more than short
ones (single ops).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from latency_tables.cli import main as latency_main
from latency_tables.measure import BACKENDS


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", required=True)
    p.add_argument("--resolution", type=int, required=True)
    p.add_argument("--out", required=True, help="table file (resumed if it exists)")
    p.add_argument("--zoo", action="store_true", help="measure and mark the zoo entries at this resolution")
    p.add_argument("--num-classes", type=int, help="classifier outputs of the space's networks (10 for CIFAR-10)")
    p.add_argument("-n", type=int, default=100, help="validation networks (default %(default)s)")
    p.add_argument("--calib-n", type=int, default=30, help="calibration networks (default %(default)s)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"))
    p.add_argument("--cache", default="cold", choices=("cold", "warm"))
    p.add_argument("--backend", default="eager", choices=BACKENDS,
                   help="what runs the ops and networks: eager PyTorch, TorchScript, or ONNX Runtime on the exported "
                        "graph (what `nas export --format onnx` ships) (default %(default)s)")
    p.add_argument("--target", action="store_true", help="exit 1 unless >= 95%% within 10%% and tau >= 0.9")
    args = p.parse_args(argv)

    common = ["--resolution", str(args.resolution), "--device", args.device, "--threads", str(args.threads),
              "--clock", args.clock, "--cache", args.cache, "--backend", args.backend]
    steps = {
        "build": ["build", "--space", args.space, "--out", args.out, *common, *(["--zoo"] if args.zoo else []),
                  *(["--num-classes", str(args.num_classes)] if args.num_classes else [])],
        "calibrate": ["calibrate", "--table", args.out, "--space", args.space, "-n", str(args.calib_n),
                      "--seed", "1"],
        "validate": ["validate", "--table", args.out, "--space", args.space, "-n", str(args.n), "--seed", "0",
                     *(["--zoo"] if args.zoo else [])],
    }
    seconds = {}
    for name, step in steps.items():
        t0 = time.perf_counter()
        rc = latency_main(step)
        seconds[name] = round(time.perf_counter() - t0, 1)
        if rc:
            return rc
    report_path = Path(args.out).with_name(Path(args.out).stem + ".validation.json")
    report = json.loads(report_path.read_text(encoding="utf-8"))
    m = report["metrics"]
    ok = m["within_10pct"] >= 0.95 and m["kendall_tau"] >= 0.9
    print(json.dumps({"seconds": seconds, "calibration": report["calibration"], "metrics": m,
                      "metrics_uncalibrated": report["metrics_uncalibrated"],
                      "metrics_fixed_points": report["metrics_fixed_points"], "target_met": ok}))
    return 0 if ok or not args.target else 1


if __name__ == "__main__":
    sys.exit(main())
