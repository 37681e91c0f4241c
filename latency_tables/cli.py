"""Command-line wiring of the latency tools: ``build``, ``calibrate``, ``validate`` and ``list``.

The same sub-commands serve ``nas latency ...`` (:mod:`nas.cli.latency`) and
``python -m latency_tables ...``, the entry point for a target device that has only torch and
litenas's core.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

__all__ = ["add_commands", "run_main", "main"]


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
    """Add the ``build``, ``calibrate``, ``validate`` and ``list`` sub-commands to ``sub``."""
    from latency_tables import build, predict, validate

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

    p = sub.add_parser("list", help="the shipped latency tables")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=_list)


def run_main(parser: argparse.ArgumentParser, handler: Callable[[argparse.Namespace], int] | None,
             argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run ``handler`` (or the sub-command's ``func``); a user error (a bad
    value or table, a file that cannot be read or written) prints one line and returns 2, an
    interrupt returns 130. (``nas latency`` runs under ``nas``'s own handler.)"""
    args = parser.parse_args(argv)
    func = handler or args.func
    try:
        return int(func(args) or 0)
    except (ValueError, OSError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m latency_tables COMMAND ...``."""
    parser = argparse.ArgumentParser(prog="python -m latency_tables",
                                     description="litenas latency tables: build, calibrate, validate, list.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_commands(sub)
    return run_main(parser, None, argv)
