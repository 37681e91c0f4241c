"""Build a latency table: measure every op configuration a search space (and optionally the zoo)
can produce at one resolution.

Runs on the target device with only torch and litenas's core installed::

    python -m latency_tables.build --space fbnet --resolution 224 --device cpu --threads 1 \\
        --out fbnet_224_cpu.json

(the same as ``nas latency build ...``). The build is resumable: re-running skips every key the
output file already holds, and the file is rewritten atomically every ``--checkpoint-every``
ops, so killing it loses at most the ops in flight and never corrupts the file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from latency_tables.measure import (
    BACKENDS,
    CLOCKS,
    DTYPES,
    Settings,
    add_harness_arguments,
    harness_kwargs,
    measure_ops,
)
from latency_tables.table import LatencyTable
from nas.arch import Arch
from search_spaces.registry import OpConfig

__all__ = ["unique_configs", "space_configs", "zoo_archs", "build_table", "add_arguments", "run", "main"]


def unique_configs(configs: Iterable[OpConfig]) -> list[OpConfig]:
    """``configs`` without repeated keys, first occurrence kept, order preserved."""
    seen: dict[str, OpConfig] = {}
    for c in configs:
        seen.setdefault(c.key(), c)
    return list(seen.values())


def space_configs(space: str, resolution: int) -> list[OpConfig]:
    """Every distinct op configuration the search space ``space`` can produce at ``resolution``."""
    from search_spaces.spaces import get_space

    return unique_configs(get_space(space).op_configs(resolution))


def zoo_archs(resolution: int) -> dict[str, Arch]:
    """The zoo entries whose native input resolution is ``resolution``, by name."""
    from search_spaces import zoo

    archs = {name: zoo.get(name) for name in zoo.names()}
    return {name: a for name, a in archs.items() if a.resolution == resolution}


def _check_compatible(table: LatencyTable, settings: Settings, resolution: int) -> None:
    have = table.settings_identity()
    want = settings.identity()
    diffs = [f"{k} {have[k]!r} (asked {want[k]!r})" for k in want if have[k] != want[k]]
    if table.resolution != resolution:
        diffs.append(f"resolution {table.resolution} (asked {resolution})")
    if diffs:
        raise ValueError(f"{table.path}: cannot resume, the table was measured with {', '.join(diffs)}; "
                         "use another --out file")


def build_table(
    configs: Sequence[OpConfig],
    out: str | Path,
    settings: Settings,
    *,
    resolution: int,
    sources: Sequence[str] = (),
    checkpoint_every: int = 8,
    limit: int | None = None,
    progress: bool = True,
) -> LatencyTable:
    """Measure every configuration in ``configs`` that ``out`` does not hold yet, and save.

    Args:
        configs: op configurations (duplicates are measured once).
        out: the table file; an existing one is resumed (it must have been measured with the
            same settings identity and resolution, else ``ValueError``).
        settings: how to measure.
        resolution: network input resolution the configurations belong to (metadata).
        sources: what the configurations come from (``space:fbnet``, ``zoo``), merged into the
            metadata.
        checkpoint_every: ops measured together (interleaved) between two atomic saves.
        limit: measure at most this many new ops in this run (the rest stays for a later run).
        progress: show a progress bar (hidden anyway when stderr is not a terminal).

    Returns:
        The table, as saved in ``out``.
    """
    from tqdm import tqdm

    if checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
    out = Path(out)
    if out.exists():
        table = LatencyTable.load(out)
        _check_compatible(table, settings, resolution)
    else:
        table = LatencyTable.new(settings.identity(), resolution=resolution, harness=settings.harness())
    table.meta["sources"] = sorted(set(table.meta.get("sources", [])) | set(sources))
    for src in sources:
        if src.startswith("space:"):
            table.meta.setdefault("space", src[len("space:"):])
    wanted = unique_configs(configs)
    todo = [c for c in wanted if c.key() not in table]
    done_before = len(wanted) - len(todo)
    if limit is not None:
        todo = todo[:max(0, limit)]
    table.save(out)
    with tqdm(total=done_before + len(todo), initial=done_before, desc="ops", unit="op",
              disable=None if progress else True) as bar:
        for start in range(0, len(todo), checkpoint_every):
            chunk = todo[start:start + checkpoint_every]
            for cfg, timing in zip(chunk, measure_ops(chunk, settings), strict=True):
                table.add(cfg.key(), timing)
            table.save(out)
            bar.update(len(chunk))
    return table


# ---------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``build`` (shared by ``nas latency build`` and ``python -m latency_tables.build``)."""
    parser.add_argument("--space", help="search space whose op configurations to measure")
    parser.add_argument("--zoo", action="store_true",
                        help="also measure every zoo entry (fixed point) whose input is --resolution")
    parser.add_argument("--resolution", type=int, required=True, help="network input resolution")
    parser.add_argument("--out", required=True, help="table file (JSON); an existing one is resumed")
    g = parser.add_argument_group("what is measured (recorded in the table)")
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default %(default)s)")
    g.add_argument("--threads", type=int, default=1, help="intra-op CPU threads (default %(default)s)")
    g.add_argument("--batch-size", type=int, default=1, help="images per call (default %(default)s)")
    g.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="default %(default)s")
    g.add_argument("--backend", default="eager", choices=BACKENDS, help="default %(default)s")
    g.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    g.add_argument("--clock", default="wall", choices=CLOCKS,
                   help="wall time, or the thread's CPU time (1 CPU thread; for a shared machine)")
    add_harness_arguments(parser)
    parser.add_argument("--checkpoint-every", type=int, default=8,
                        help="ops measured (interleaved) between two atomic saves (default %(default)s)")
    parser.add_argument("--limit", type=int, help="measure at most this many new ops in this run")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    """Handler of ``build``: measure, save, print a summary."""
    from nas.cli.output import print_json

    if not args.space and not args.zoo:
        raise ValueError("nothing to measure: give --space NAME and/or --zoo")
    settings = Settings(device=args.device, threads=args.threads, batch_size=args.batch_size, dtype=args.dtype,
                        backend=args.backend, channels_last=args.channels_last, clock=args.clock,
                        **harness_kwargs(args))
    configs: list[OpConfig] = []
    sources: list[str] = []
    if args.space:
        configs += space_configs(args.space, args.resolution)
        sources.append(f"space:{args.space}")
    if args.zoo:
        archs = zoo_archs(args.resolution)
        if not archs:
            raise ValueError(f"no zoo entry has input resolution {args.resolution}")
        for arch in archs.values():
            configs += arch.op_configs()
        sources.append("zoo")
    wanted = len(unique_configs(configs))
    table = build_table(configs, args.out, settings, resolution=args.resolution, sources=sources,
                        checkpoint_every=args.checkpoint_every, limit=args.limit)
    missing = sum(1 for c in unique_configs(configs) if c.key() not in table)
    summary: dict[str, Any] = {"table": str(table.path), "ops_wanted": wanted, "entries": len(table),
                               "still_missing": missing, "meta": table.meta}
    if args.json:
        print_json(summary)
    else:
        print(f"{table.path}: {len(table)} entries ({wanted} wanted, {missing} still missing); {table.describe()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m latency_tables.build``."""
    from latency_tables.cli import run_main

    parser = argparse.ArgumentParser(prog="python -m latency_tables.build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_main(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
