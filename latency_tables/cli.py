"""Command-line wiring of the latency tools: ``build``, ``calibrate``, ``validate``, ``adapt``,
``check`` and ``list``.

The same sub-commands serve ``nas latency ...`` (:mod:`nas.cli.latency`) and
``python -m latency_tables ...``, the entry point for a target device that has only torch and
litenas's core.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from latency_tables.command import run_main

__all__ = ["add_commands", "main"]


def _list(args: argparse.Namespace) -> int:
    from latency_tables import list_tables
    from nas.cli.output import print_json, print_table

    records = list_tables()
    if args.json:
        print_json(records)
        return 0

    def fig(r: dict, key: str, fmt: str) -> str:
        v = r.get("validation", {}).get(key)
        return "-" if v is None else format(v, fmt)

    rows = [
        (r["name"], r.get("space") or "-", r.get("resolution", "-"), r.get("device_name", r.get("error", "?")),
         r.get("threads", "-"), r.get("batch_size", "-"), r.get("entries", "-"), r.get("calibration") or "-",
         fig(r, "mape_pct", ".2f"), fig(r, "within_10pct", ".0%"), fig(r, "kendall_tau", ".3f"))
        for r in records
    ]
    cols = ("name", "space", "res", "device", "threads", "batch", "entries", "calibration", "MAPE %",
            "within 10%", "tau")
    print_table(f"litenas latency tables: {len(rows)} shipped", cols, rows)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add the ``build``, ``calibrate``, ``validate``, ``adapt``, ``check`` and ``list`` sub-commands
    to ``sub``."""
    from latency_tables import adapt, build, check, predict, validate

    p = sub.add_parser("build", help="measure every op configuration of a space into a table",
                       description=build.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    build.add_arguments(p)
    p.set_defaults(func=build.run)

    p = sub.add_parser("calibrate", help="fit the overhead term on whole-network measurements",
                       description=predict.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    predict.add_calibrate_arguments(p)
    p.set_defaults(func=predict.run_calibrate)

    p = sub.add_parser("validate", help="measure sampled networks and compare with predictions",
                       description=validate.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    validate.add_arguments(p)
    p.set_defaults(func=validate.run)

    p = sub.add_parser("adapt", help="refit a table's calibration on networks measured on this device (minutes)",
                       description=adapt.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    adapt.add_arguments(p)
    p.set_defaults(func=adapt.run)

    p = sub.add_parser("check", help="does a table still fit this machine? fingerprint, probe, a few networks",
                       description=check.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_arguments(p)
    p.set_defaults(func=check.run)

    p = sub.add_parser("list", help="the shipped latency tables")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=_list)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m latency_tables COMMAND ...``."""
    parser = argparse.ArgumentParser(prog="python -m latency_tables",
                                     description="litenas latency tables: build, calibrate, validate, adapt, check, list.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_commands(sub)
    return run_main(parser, None, argv)
