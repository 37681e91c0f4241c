"""How a latency command ends: one line and exit status 2 for a user error, 130 on an interrupt.

Shared by ``python -m latency_tables`` (:mod:`latency_tables.cli`) and the modules runnable on
their own (``python -m latency_tables.build``, ``python -m latency_tables.validate``); at the bottom
so that they need not import the command line that imports them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

__all__ = ["run_main"]


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
