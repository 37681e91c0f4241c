"""The ``nas`` command line. Each sub-command lives in its own module exposing
``register(subparsers)``, which adds its parser and sets ``func(args) -> int`` as the handler.

:func:`main` is the one place errors meet the user: a user error (a bad value, a missing,
unreadable or damaged file, a refused setting) is one line on stderr naming the file or flag, exit
status 2; anything else is a bug, reported in one line with the path of a log file holding the full
traceback, exit status 1; an interrupt is exit status 130.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import os
import sys
import tempfile
import traceback
from pathlib import Path

# Sub-command modules of this package, in help order.
_COMMANDS = ("zoo", "space", "latency", "train", "supernet", "predictor", "export", "search")

#: Exceptions that mean the input or the environment is wrong, not the code. ``ValueError``
#: covers the project's own refusals (``ArchError``, ``TableError``, ``StoreError``,
#: ``MissingKeyError``...) and ``UnicodeDecodeError``; ``OSError`` covers missing, unreadable,
#: read-only and full files and folders.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, MemoryError)

#: Where :func:`main` writes the traceback of an unexpected error (default: the temp folder).
CRASH_DIR_ENV = "LITENAS_CRASH_DIR"


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
    """Entry point of the ``nas`` console script (see the module doc for its exit statuses)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"nas {args.command}"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        print(f"{prog}: error: {user_message(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug: logged in full, reported in one line
        log = write_crash_log(prog, argv if argv is not None else sys.argv[1:])
        where = f"the full traceback is in {log}" if log else "the traceback follows"
        print(f"{prog}: internal error: {type(exc).__name__}: {_first_line(exc)} ({where}; "
              "please report it)", file=sys.stderr)
        if log is None:
            traceback.print_exc()
        return 1


def user_message(exc: BaseException) -> str:
    """The message of a user error (one line, but for the listings some carry, such as weights
    that do not fit); an ``OSError`` names its file first."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        target = f" -> {exc.filename2}" if exc.filename2 else ""
        return f"{exc.filename}{target}: {exc.strerror}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc})"
    if isinstance(exc, MemoryError):
        return f"out of memory ({_first_line(exc) or 'MemoryError'})"
    return str(exc).strip() or type(exc).__name__


def write_crash_log(prog: str, argv: list[str]) -> Path | None:
    """Write the current exception's traceback, with the command line, to a new file in
    ``LITENAS_CRASH_DIR`` (default: the temp folder); return its path (``None`` if it cannot be
    written)."""
    folder = Path(os.environ.get(CRASH_DIR_ENV) or tempfile.gettempdir())
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = f"{prog} {' '.join(argv)}\n\n{traceback.format_exc()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"litenas-crash-{stamp}-", suffix=".log", dir=folder)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError:
        return None
    return Path(name)


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""
