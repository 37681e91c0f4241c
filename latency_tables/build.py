"""Build a latency table: measure every op configuration a search space (and optionally the zoo)
can produce at one resolution.

Runs on the target device with only torch and litenas's core installed::

    python -m latency_tables.build --space fbnet --resolution 224 --device cpu --threads 1 \\
        --out fbnet_224_cpu.json

(the same as ``nas latency build ...``). The build is resumable: re-running skips every key the
output file already holds, and the file is rewritten atomically (at most every
``--checkpoint-seconds``, after a group of ``--interleave`` ops), so killing it loses at most
the last few seconds of measurements and never corrupts the file.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from latency_tables.measure import (
    BACKENDS,
    CACHES,
    CLOCKS,
    DTYPES,
    Settings,
    add_harness_arguments,
    harness_kwargs,
    measure_ops,
)
from latency_tables.sampling import open_space, zoo_archs
from latency_tables.table import LatencyTable
from search_spaces.registry import OpConfig

__all__ = ["unique_configs", "space_configs", "build_table", "add_arguments", "run", "main"]


def unique_configs(configs: Iterable[OpConfig]) -> list[OpConfig]:
    """``configs`` without repeated keys, first occurrence kept, order preserved."""
    seen: dict[str, OpConfig] = {}
    for c in configs:
        seen.setdefault(c.key(), c)
    return list(seen.values())


def space_configs(space: str, resolution: int, *, extra: bool = False, num_classes: int | None = None
                  ) -> list[OpConfig]:
    """Every distinct op configuration of ``space`` at ``resolution``: of the points its sampler
    and mutations reach (its *core* values), or with ``extra`` of every point it holds."""
    sp = open_space(space, resolution, num_classes)
    if "core_only" in inspect.signature(sp.op_configs).parameters:
        return unique_configs(sp.op_configs(resolution, core_only=not extra))
    return unique_configs(sp.op_configs(resolution))


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
    meta: Mapping[str, Any] | None = None,
    interleave: int = 8,
    checkpoint_seconds: float = 15.0,
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
        meta: descriptive metadata (``space``, ``num_classes``); resuming a table that holds
            another value for one of them raises ``ValueError``.
        interleave: ops measured together, interleaved (see :mod:`latency_tables.measure`).
        checkpoint_seconds: the file is saved (atomically) after the first group of ops that
            ends this long after the last save, and at the end; 0 saves after every group.
        limit: measure at most this many new ops in this run (the rest stays for a later run).
        progress: show a progress bar (hidden anyway when stderr is not a terminal).

    Returns:
        The table, as saved in ``out``.
    """
    from tqdm import tqdm

    if interleave < 1:
        raise ValueError(f"interleave must be >= 1, got {interleave}")
    out = Path(out)
    if out.exists():
        table = LatencyTable.load(out)
        _check_compatible(table, settings, resolution)
    else:
        table = LatencyTable.new(settings.identity(), resolution=resolution, harness=settings.harness())
    for name, value in (meta or {}).items():
        if table.meta.setdefault(name, value) != value:
            raise ValueError(f"{out}: cannot resume, the table was built for {name} {table.meta[name]!r} "
                             f"(asked {value!r}); use another --out file")
    table.meta["sources"] = sorted(set(table.meta.get("sources", [])) | set(sources))
    wanted = unique_configs(configs)
    todo = [c for c in wanted if c.key() not in table]
    done_before = len(wanted) - len(todo)
    if limit is not None:
        todo = todo[:max(0, limit)]
    table.save(out)
    with tqdm(total=done_before + len(todo), initial=done_before, desc="ops", unit="op",
              disable=None if progress else True) as bar:
        saved = time.monotonic()
        try:
            for start in range(0, len(todo), interleave):
                chunk = todo[start:start + interleave]
                for cfg, timing in zip(chunk, measure_ops(chunk, settings), strict=True):
                    table.add(cfg.key(), timing)
                bar.update(len(chunk))
                if time.monotonic() - saved >= checkpoint_seconds or start + interleave >= len(todo):
                    table.save(out)
                    saved = time.monotonic()
        except KeyboardInterrupt:
            table.save(out)  # keep what was measured since the last checkpoint
            raise
    return table


# ---------------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``build`` (shared by ``nas latency build`` and ``python -m latency_tables.build``)."""
    parser.add_argument("--space", help="search space whose op configurations to measure")
    parser.add_argument("--extra", action="store_true",
                        help="with --space: also the ops of its extra (encode-only) values, not just the "
                             "core values its sampler draws from")
    parser.add_argument("--zoo", action="store_true",
                        help="also measure every zoo entry (fixed point) whose input is --resolution")
    parser.add_argument("--resolution", type=int, required=True, help="network input resolution")
    parser.add_argument("--num-classes", type=int,
                        help="classifier outputs of the space's networks (default: the space's own)")
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
    g.add_argument("--cache", default="cold", choices=CACHES,
                   help="cold: evict caches and rewrite the input before each timed call, as within a "
                        "network (default); warm: calls back to back")
    add_harness_arguments(parser)
    parser.add_argument("--interleave", type=int, default=8,
                        help="ops measured together, interleaved against noise (default %(default)s)")
    parser.add_argument("--checkpoint-seconds", type=float, default=15.0,
                        help="save (atomically) at most this often (default %(default)s)")
    parser.add_argument("--limit", type=int, help="measure at most this many new ops in this run")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    """Handler of ``build``: measure, save, print a summary."""
    from nas.cli.output import print_json

    if not args.space and not args.zoo:
        raise ValueError("nothing to measure: give --space NAME and/or --zoo")
    settings = Settings(device=args.device, threads=args.threads, batch_size=args.batch_size, dtype=args.dtype,
                        backend=args.backend, channels_last=args.channels_last, clock=args.clock, cache=args.cache,
                        **harness_kwargs(args))
    configs: list[OpConfig] = []
    sources: list[str] = []
    meta: dict[str, Any] = {}
    # The zoo first: few ops, and the ones a search's report compares against.
    if args.zoo:
        archs = zoo_archs(args.resolution, args.num_classes)
        if not archs:
            raise ValueError(f"no zoo entry has input resolution {args.resolution}")
        for arch in archs.values():
            configs += arch.op_configs()
        sources.append("zoo")
    if args.space:
        configs += space_configs(args.space, args.resolution, extra=args.extra, num_classes=args.num_classes)
        sources.append(f"space:{args.space}" + ("+extra" if args.extra else ""))
        meta["space"] = args.space
        if args.num_classes is not None:
            meta["num_classes"] = args.num_classes
    wanted = len(unique_configs(configs))
    table = build_table(configs, args.out, settings, resolution=args.resolution, sources=sources, meta=meta,
                        interleave=args.interleave, checkpoint_seconds=args.checkpoint_seconds, limit=args.limit)
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
    from latency_tables.command import run_main

    parser = argparse.ArgumentParser(prog="python -m latency_tables.build", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_main(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
