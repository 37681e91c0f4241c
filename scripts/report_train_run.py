"""Write a ``nas train`` run directory's results as a markdown page under ``docs/`` (per-epoch table,
final and best test figures, wall time, the machine, the command that re-runs it) with a copy of its
curve. A run that is still going is reported as such, with the epochs that remain.

    python scripts/report_train_run.py runs/cifar10_full_shufflenet_v2_x0_5 \\
        --command "nas train cifar_shufflenet_v2_x0_5 --num-classes 10 --data ... --out ..." \\
        --out docs/train_cifar10_full.md
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from pathlib import Path

import torch

from nas.io import atomic_write_text


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def render(run: Path, command: str, curve_name: str, title: str | None = None, note: str | None = None) -> str:
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    rows, summary = metrics["epochs"], metrics["summary"]
    recipe, data = config["identity"]["recipe"], config["identity"]["data"]
    done, total = summary["epochs_done"], summary["epochs"]
    status = "finished" if summary["complete"] else f"**in progress: {done} of {total} epochs done, {total - done} remain** " \
        "(re-run the command to continue; it resumes after the last finished epoch)"
    final, best = summary["final"], summary["best"]
    lines = [
        f"# {title or 'nas train: ' + (summary.get('label') or summary['arch_hash'])}", "",
        f"Status: {status}.", "",
        *([note, ""] if note else []),
        f"Command: `{command}`", "",
        f"Machine: {_cpu()}, {torch.get_num_threads()} torch threads available here, torch {torch.__version__}; "
        f"plan {config['plan']}.", "",
        f"Data: {data.get('train')} training images, {data.get('test')} test images, shape {data.get('shape')} "
        f"(fingerprint {data.get('fingerprint')}).", "",
        "Recipe: " + ", ".join(f"{k}={v}" for k, v in recipe.items()), "",
        f"Last epoch: test top-1 **{final['test_top1']:.2f}%**, top-5 {final['test_top5']:.2f}%, "
        f"loss {final['test_loss']:.4f}. Best epoch {best['epoch'] + 1}: top-1 {best['test_top1']:.2f}% "
        "(selected on the test split, so optimistic).", "",
        f"Time: {summary['train_seconds'] / 60:.1f} min in the training steps"
        + (f" + {sum(r['test_seconds'] for r in rows) / 60:.1f} min evaluating" if all("test_seconds" in r for r in rows)
           else "") + f"; median {summary['median_images_per_s']:.0f} training images/s. This machine is shared: "
        "epochs that overlapped other jobs ran slower.", "",
        f"![curve]({curve_name})", "",
        "| epoch | train loss | lr | test top-1 | test top-5 | test loss | s | img/s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['epoch'] + 1} | {r['train_loss']:.4f} | {r['lr']:.4g} | {r['test_top1']:.2f} | "
              f"{r['test_top5']:.2f} | {r['test_loss']:.4f} | {r['seconds']:.0f} | {r['images_per_s']:.0f} |"
              for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="nas train run directory")
    p.add_argument("--command", required=True, help="the nas train command that made (and resumes) the run")
    p.add_argument("--out", type=Path, required=True, help="markdown file to write (the curve goes beside it)")
    p.add_argument("--title", help="page title (default: the run's architecture hash)")
    p.add_argument("--note", help="a paragraph on how the run went (interruptions, machine load)")
    args = p.parse_args(argv)
    if not (args.run / "metrics.json").is_file():
        print(f"report_train_run: error: {args.run}: no metrics.json (not a nas train run with a finished epoch)",
              file=sys.stderr)
        return 2
    curve = args.out.with_suffix(".png")
    shutil.copyfile(args.run / "curve.png", curve)
    atomic_write_text(args.out, render(args.run, args.command, curve.name, args.title, args.note))
    print(json.dumps({"out": str(args.out), "curve": str(curve)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
