"""Soak test of resuming: searches SIGKILLed at random moments and restarted by a loop end exactly
as the same searches run uninterrupted.

    python scripts/soak_search.py                 # preset full: about 45 minutes on a 2-core machine
    python scripts/soak_search.py --preset long   # about 90 minutes: one search killed every 1-5 minutes
    python scripts/soak_search.py --preset smoke  # a minute: one short job, two kills at most

Each job is one ``nas search`` command line (a mix of evaluators and strategies: short training,
a zero-cost proxy, the accuracy predictor). The soak runs each job twice, as subprocesses: once
uninterrupted (the reference), once killed with SIGKILL (the whole process group, as an OOM killer
or a lost node would) after a random delay, then started again with the same command, until a run
ends by itself. It then checks what a user relies on:

- the killed run evaluated exactly ``--budget`` distinct candidates;
- its candidates, in order, with their states, metrics and rewards, equal the reference's
  (``candidates.json``, less trial numbers: a trial cut by a kill keeps its number, so the
  resumed run's later trials are numbered higher);
- its report, Pareto front, fixed-point table and ``top/`` files are the reference's, byte for byte
  once the run directory's name is replaced.

Everything runs on one CPU thread (``OMP_NUM_THREADS=1``), so results are deterministic. The soak
is resumable: its state (``soak.json`` in ``--work``) records each job's kills; a soak that is
itself killed goes on where it stopped (a ``nas search`` command run again resumes its run). The
results go to ``docs/soak_search.{md,json}`` (``long``: ``docs/soak_search_long.{md,json}``) with the
command that re-runs them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from latency_tables.device import device_name
from nas.io import atomic_write_json, atomic_write_text, read_json_file

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Job:
    """One search of the soak: its name and the ``nas search`` flags (``--out`` is added)."""

    name: str
    flags: tuple[str, ...]


def _job(name: str, budget: int, *flags: str) -> Job:
    return Job(name, ("--space", "mobile", "--resolution", "32", "--latency-table", "mobile_32_cpu",
                      "--budget", str(budget), "--seed", "3", "--threads", "1", *flags))


# A training-scored evolution: one epoch on 40 synthetic images per class per candidate.
_TRAIN_EVOLUTION = ("--strategy", "evolution", "--evaluator", "train", "--data", "synthetic", "--train-epochs", "1",
                    "--train-per-class", "40", "--test-per-class", "10", "--batch-size", "32", "--max-latency-ms", "8")
PRESETS = ("full", "long", "smoke")


def jobs(preset: str) -> list[Job]:
    """The jobs of a preset. ``full``: three searches (training, a zero-cost proxy, the predictor;
    evolution, NSGA-II, TPE) of 3-11 minutes each uninterrupted on one thread of a 2-core VM;
    ``long``: one training-scored evolution of about 40 minutes, killed every few minutes;
    ``smoke``: one predictor search of seconds."""
    if preset == "long":
        return [_job("train-evolution-long", 400, *_TRAIN_EVOLUTION, "--population", "24", "--sample-size", "6")]
    if preset == "smoke":
        return [_job("predictor-evolution", 30, "--strategy", "evolution", "--evaluator", "predictor",
                     "--max-latency-ms", "10", "--population", "8", "--sample-size", "3")]
    return [
        _job("train-evolution", 120, *_TRAIN_EVOLUTION, "--population", "12", "--sample-size", "4"),
        _job("proxy-nsga2", 400, "--strategy", "nsga2", "--objective", "pareto", "--evaluator", "proxy",
             "--proxy", "naswot", "--data", "synthetic", "--batch-size", "32", "--population", "16"),
        _job("predictor-tpe", 400, "--strategy", "tpe", "--evaluator", "predictor", "--max-latency-ms", "12"),
    ]


def command(job: Job, out: Path) -> list[str]:
    return [sys.executable, "-m", "nas", "search", *job.flags, "--out", str(out), "--json"]


def run_to_end(cmd: list[str], log: Path, kill_after_s: float | None) -> tuple[bool, float]:
    """Run ``cmd`` (its own process group, output appended to ``log``); SIGKILL the group after
    ``kill_after_s`` seconds unless it ended before. Return (ended by itself, seconds)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n$ {shlex.join(cmd)}  # kill after {kill_after_s} s\n")
        out.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=kill_after_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return False, time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} exited {proc.returncode}; see {log}")
    return True, time.monotonic() - start


def outputs(run_dir: Path) -> dict[str, Any]:
    """What a user reads from a finished run, with the run directory's own name taken out."""
    def text(path: Path) -> str:
        return path.read_text().replace(str(run_dir), "RUN").replace(run_dir.name, "RUN")

    def less_trials(path: Path) -> list[dict[str, Any]]:
        return [{k: v for k, v in c.items() if k != "trial"} for c in json.loads(path.read_text())]

    candidates = less_trials(run_dir / "candidates.json")
    files = {name: text(run_dir / name) for name in ("report.md", "fixed_points.json") if (run_dir / name).exists()}
    if (run_dir / "pareto.json").exists():
        files["pareto.json"] = json.dumps(less_trials(run_dir / "pareto.json"), sort_keys=True)
    files.update({f"top/{p.name}": text(p) for p in sorted((run_dir / "top").glob("*"))})
    return {"candidates": candidates, "files": files}


def compare(reference: dict[str, Any], resumed: dict[str, Any], budget: int) -> list[str]:
    """Every way the resumed run differs from the reference (empty: identical)."""
    problems = []
    judged = [c for c in resumed["candidates"] if c["state"] in ("complete", "failed")]
    if len(judged) != budget or len({c["hash"] for c in judged}) != budget:
        problems.append(f"{len(judged)} evaluated, {len({c['hash'] for c in judged})} distinct (budget {budget})")
    if resumed["candidates"] != reference["candidates"]:
        first = next((i for i, (a, b) in enumerate(zip(reference["candidates"], resumed["candidates"], strict=False)) if a != b),
                     min(len(reference["candidates"]), len(resumed["candidates"])))
        problems.append(f"candidates.json differs from candidate {first} on "
                        f"({len(reference['candidates'])} vs {len(resumed['candidates'])} candidates)")
    for name in sorted(set(reference["files"]) | set(resumed["files"])):
        if reference["files"].get(name) != resumed["files"].get(name):
            problems.append(f"{name} differs")
    return problems


def soak_job(job: Job, work: Path, state: dict[str, Any], rng: random.Random, args: argparse.Namespace,
             save: Any) -> dict[str, Any]:
    """Run one job uninterrupted and killed-and-resumed; return its entry of the results."""
    entry = state.setdefault(job.name, {"kills": 0, "starts": 0, "kill_delays_s": []})
    log = work / f"{job.name}.log"
    budget = int(job.flags[job.flags.index("--budget") + 1])
    if "reference_s" not in entry:
        _, entry["reference_s"] = run_to_end(command(job, work / f"{job.name}-reference"), log, None)
        save()
    killed_dir = work / f"{job.name}-killed"
    while not entry.get("ended"):
        # A kill lands within 90% of the uninterrupted run's time, so a short job is killed too.
        latest = min(args.kill_max_s, max(args.kill_min_s, 0.9 * entry["reference_s"]))
        delay = None if entry["kills"] >= args.max_kills else round(rng.uniform(args.kill_min_s, latest), 1)
        entry["starts"] += 1
        ended, seconds = run_to_end(command(job, killed_dir), log, delay)
        if ended:
            entry["ended"] = True
            entry["last_run_s"] = seconds
        else:
            entry["kills"] += 1
            entry["kill_delays_s"].append(delay)
        save()
    entry["problems"] = compare(outputs(work / f"{job.name}-reference"), outputs(killed_dir), budget)
    entry["identical"] = not entry["problems"]
    entry["budget"] = budget
    entry["command"] = shlex.join(["nas", "search", *job.flags, "--out", "DIR"])
    save()
    return entry


def report(state: dict[str, Any], args: argparse.Namespace, argv: list[str], seconds: float) -> str:
    rows = []
    for name, e in state.items():
        verdict = "**identical**" if e.get("identical") else ("; ".join(e.get("problems", [])) or "unfinished")
        delays = ", ".join(f"{d:.0f}" for d in e.get("kill_delays_s", []))
        rows.append(f"| {name} | {e.get('budget', '-')} | {e.get('reference_s', 0) / 60:.1f} | {e['kills']} "
                    f"({delays}) | {e['starts']} | {verdict} |")
    held = sum(1 for e in state.values() if e.get("identical"))
    kills = sum(e["kills"] for e in state.values())
    lines = [
        "# Soak: searches killed at random and resumed end as uninterrupted ones",
        "",
        f"**{held} of {len(state)} jobs identical** to their uninterrupted run after {kills} SIGKILLs in all "
        f"(the whole process group, after a random delay of {args.kill_min_s:g}-{args.kill_max_s:g} s from each "
        f"start, and within 90% of the job's uninterrupted time; at most {args.max_kills} per job; then the same command ran to its end). Identical: exactly "
        "`--budget` distinct candidates evaluated; `candidates.json` and `pareto.json` (less trial numbers), "
        "`report.md`, `fixed_points.json` and `top/` equal the reference's.",
        "",
        "| job | budget | uninterrupted (min) | kills (delays, s) | starts | result |",
        "|---|---:|---:|---|---:|---|",
        *rows,
        "",
        "Commands (each with `--out DIR`; one CPU thread):",
        "",
        *[f"- {name}: `{e.get('command', '')}`" for name, e in state.items()],
        "",
        f"Machine: {platform_line()}; {seconds / 60:.1f} min in this invocation; "
        f"report of {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Command: `{shlex.join(['python', 'scripts/soak_search.py', *argv])}`",
    ]
    return "\n".join(lines) + "\n"


def platform_line() -> str:
    return f"{device_name('cpu')}, {os.cpu_count()} logical CPUs, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=PRESETS, default="full", help="the jobs (default full)")
    p.add_argument("--work", default=None, help="run directories and soak state (default runs/soak_search/PRESET)")
    p.add_argument("--kill-min-s", type=float, default=None, help="shortest delay before a kill (default 20; long 60; smoke 4)")
    p.add_argument("--kill-max-s", type=float, default=None,
                   help="longest delay before a kill (default 240; long 300; smoke 10)")
    p.add_argument("--max-kills", type=int, default=None, help="kills per job, then it runs to its end (default 12; long 40; smoke 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the kill delays (default 0)")
    p.add_argument("--out", default=None, help="results prefix (default docs/soak_search, long: docs/soak_search_long; smoke: in --work)")
    args = p.parse_args(argv)
    smoke = args.preset == "smoke"
    defaults = {"kill_min_s": (20.0, 60.0, 4.0), "kill_max_s": (240.0, 300.0, 10.0), "max_kills": (12, 40, 2)}
    for name, by_preset in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, by_preset[PRESETS.index(args.preset)])
    if not 0 < args.kill_min_s <= args.kill_max_s:
        p.error(f"--kill-min-s {args.kill_min_s} and --kill-max-s {args.kill_max_s}: need 0 < min <= max")
    if args.max_kills < 0:
        p.error(f"--max-kills {args.max_kills}: must be >= 0")
    work = Path(args.work or ROOT / "runs" / "soak_search" / args.preset)
    out = Path(args.out) if args.out else (work / "soak_search" if smoke else
                                           ROOT / "docs" / ("soak_search" if args.preset == "full" else "soak_search_long"))
    work.mkdir(parents=True, exist_ok=True)
    state_file = work / "soak.json"
    state: dict[str, Any] = read_json_file(state_file, "soak state") if state_file.exists() else {}

    def save() -> None:
        atomic_write_json(state_file, state)

    rng = random.Random(f"{args.seed}:{sum(e['starts'] for e in state.values())}")
    start = time.monotonic()
    for job in tqdm(jobs(args.preset), desc="soak", unit="job"):
        entry = soak_job(job, work, state, rng, args, save)
        print(f"{job.name}: {entry['kills']} kills, {'identical' if entry['identical'] else entry['problems']}",
              flush=True)
    seconds = time.monotonic() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out.with_suffix(".json"), {"preset": args.preset, "jobs": state, "argv": argv})
    atomic_write_text(out.with_suffix(".md"), report(state, args, argv, seconds))
    print(f"wrote {out.with_suffix('.md')}")
    return 0 if all(e.get("identical") for e in state.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
