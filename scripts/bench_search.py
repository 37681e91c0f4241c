"""Search throughput and best-found-vs-random curves, side by side in one run.

    python scripts/bench_search.py --space fbnet --latency-table fbnet_224_cpu --budget 100 --seeds 3

For each seed, runs regularized evolution and random search with the same evaluators (latency
from the table + a zero-cost proxy, MnasNet reward with the given target) and records the best
reward after every evaluated candidate. Prints candidates scored per second (median over runs)
and the mean best reward at a few budgets for both strategies, writes JSON, a markdown table and
a curve PNG. Each run uses a fresh run directory (no shared cache), so the timings are honest.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from nas.io import atomic_write_json, atomic_write_text
from nas.search.config import SearchConfig
from nas.search.runner import Search
from nas.search.store import Record


def run_one(strategy: str, seed: int, args: argparse.Namespace, root: Path) -> dict:
    config = SearchConfig.of(space=args.space, strategy=strategy, budget=args.budget, seed=seed,
                          out=str(root / f"{strategy}_{seed}"), latency_table=args.latency_table,
                          evaluator="proxy", proxy=args.proxy, data=args.data, objective="reward",
                          target_latency_ms=args.target_ms, population=args.population,
                          sample_size=args.sample_size, threads=1,
                          # the table's head is measured for its own class count; ours is measured here
                          measure_missing=True)
    search = Search.from_config(config)
    curve: list[float] = []
    best = float("-inf")

    def track(record: Record) -> None:
        nonlocal best
        if record.evaluated:
            if record.values is not None:
                best = max(best, record.values[0])
            curve.append(best)

    start = time.perf_counter()
    search.run(progress=False, on_record=track)
    seconds = time.perf_counter() - start
    return {"strategy": strategy, "seed": seed, "seconds": seconds, "per_second": len(curve) / seconds,
            "curve": curve}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="fbnet")
    p.add_argument("--latency-table", default="fbnet_224_cpu")
    p.add_argument("--target-ms", type=float, default=20.0, help="reward latency target (ms)")
    p.add_argument("--proxy", default="synflow")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--population", type=int, default=20)
    p.add_argument("--sample-size", type=int, default=5)
    p.add_argument("--out", default="docs/bench_search", help="output prefix (.json, .md, .png)")
    args = p.parse_args(argv)

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for strategy in ("evolution", "random"):  # interleaved: drift hits both alike
                runs.append(run_one(strategy, seed, args, Path(tmp)))
                print(f"{strategy:9s} seed {seed}: {runs[-1]['per_second']:.2f} cand/s, "
                      f"best {runs[-1]['curve'][-1]:.4g}", file=sys.stderr)

    marks = sorted({m for m in (10, 25, 50, args.budget // 2, args.budget) if m <= args.budget})
    summary: dict = {"space": args.space, "table": args.latency_table, "proxy": args.proxy, "budget": args.budget,
                     "seeds": args.seeds, "target_ms": args.target_ms, "strategies": {}}
    for strategy in ("evolution", "random"):
        mine = [r for r in runs if r["strategy"] == strategy]
        summary["strategies"][strategy] = {
            "candidates_per_second_median": statistics.median(r["per_second"] for r in mine),
            "best_at": {str(m): statistics.mean(r["curve"][m - 1] for r in mine) for m in marks},
            "mean_curve": [statistics.mean(r["curve"][i] for r in mine) for i in range(args.budget)],
        }
    evo, rnd = summary["strategies"]["evolution"], summary["strategies"]["random"]
    lines = ["| strategy | cand/s (median) | " + " | ".join(f"best@{m}" for m in marks) + " |",
             "|---|---|" + "---|" * len(marks)]
    for name, s in (("evolution", evo), ("random", rnd)):
        lines.append(f"| {name} | {s['candidates_per_second_median']:.2f} | "
                     + " | ".join(f"{s['best_at'][str(m)]:.4g}" for m in marks) + " |")
    table = "\n".join(lines)
    print(table)

    out = Path(args.out)
    atomic_write_json(out.with_suffix(".json"), summary)
    atomic_write_text(out.with_suffix(".md"), f"# Search benchmark ({args.space}, {args.proxy}, "
                      f"target {args.target_ms} ms, {args.seeds} seeds)\n\n{table}\n")
    _plot(out.with_suffix(".png"), summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "strategies"}
                     | {"candidates_per_second": {k: v["candidates_per_second_median"] for k, v in summary["strategies"].items()},
                        "best_at": {k: v["best_at"] for k, v in summary["strategies"].items()}}))
    return 0


def _plot(path: Path, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, s in summary["strategies"].items():
        ax.plot(range(1, len(s["mean_curve"]) + 1), s["mean_curve"], label=name)
    ax.set_xlabel("candidates evaluated")
    ax.set_ylabel(f"best reward ({summary['proxy']}, mean of {summary['seeds']} seeds)")
    ax.set_title(f"{summary['space']}: regularized evolution vs random search")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
