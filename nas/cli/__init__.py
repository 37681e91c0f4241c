"""The ``nas`` command line. Each sub-command lives in its own module exposing
``register(subparsers)``, which adds its parser and sets ``func(args) -> int`` as the handler."""

from __future__ import annotations

import argparse
import importlib
import sys

# Sub-command modules of this package, in help order.
_COMMANDS = ("zoo", "space", "latency", "train", "supernet", "predictor", "export", "search")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nas",
        description="litenas: hardware-aware neural architecture search for mobile CNNs.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMANDS:
        importlib.import_module(f"nas.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``nas`` console script; user errors print one line and exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"nas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nas {args.command}: interrupted", file=sys.stderr)
        return 130


