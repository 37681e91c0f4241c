"""``nas latency``: build, calibrate, validate, adapt and check latency tables, list the shipped ones.

The sub-commands live in :mod:`latency_tables.cli`, shared with ``python -m latency_tables`` (the
entry point for a target device that has only torch and litenas's core).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from latency_tables.cli import add_commands

    p = sub.add_parser("latency", help="measured latency tables: build, calibrate, validate, adapt, check, list",
                       description=__doc__)
    lsub = p.add_subparsers(dest="latency_command", metavar="ACTION")
    lsub.required = True
    add_commands(lsub)
