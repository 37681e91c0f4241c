"""File I/O shared by every reader and writer of litenas files.

- Atomic writes: a crash or kill never leaves a truncated or half-written file behind.
- :func:`read_text_file` and :func:`read_json_file`: the one reader of a file a user can point at (a predictor, a run's
  ``config.json``, a trained-networks file...): every way such a file can be wrong (missing,
  unreadable, not UTF-8, empty, truncated, nested too deeply for Python's parser, not an object) is
  a :class:`JSONFileError`, one line naming the file, never a traceback.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# mkstemp creates files readable by their owner only; written files get the usual permissions.
_UMASK = os.umask(0o022)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK


class JSONFileError(ValueError):
    """A JSON file that cannot be read as the object its reader expects; the message is one line
    that names the file and what is wrong with it."""


#: How messages name a JSON value's type (Python's names mean nothing to someone editing JSON).
_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false",
               type(None): "null"}


def parse_json_object(text: str | bytes, where: str, what: str) -> dict[str, Any]:
    """The JSON object in ``text``, read from ``where`` (a file, or a field of one) and meant to be
    ``what`` (with its article: ``"an accuracy predictor"``). Anything else is a
    :class:`JSONFileError` saying ``where: not what: why``; a nesting deeper than Python's parser
    can recurse (100,000 ``[``) is refused like any other malformed text."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONFileError(f"{where}: not {what}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        raise JSONFileError(f"{where}: not {what}: empty (an interrupted write?)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JSONFileError(f"{where}: not {what}: not valid JSON, truncated or corrupt ({exc})") from None
    except RecursionError:
        raise JSONFileError(f"{where}: not {what}: JSON nested too deeply") from None
    if not isinstance(data, dict):
        raise JSONFileError(f"{where}: not {what}: {_JSON_TYPES.get(type(data), 'a JSON value')} where a JSON "
                            "object belongs")
    return data


def read_text_file(path: str | os.PathLike[str], what: str) -> str:
    """The UTF-8 text of the file ``path``, meant to be ``what`` (with its article); a missing,
    unreadable or binary file is a :class:`JSONFileError` naming it (the one reader of every file
    a user points at: JSON, compact architecture strings, YAML configs)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise JSONFileError(f"{p}: no such file (expected {what})") from None
    except IsADirectoryError:
        raise JSONFileError(f"{p}: a directory, not {what}") from None
    except OSError as exc:
        raise JSONFileError(f"{p}: cannot read {what} here ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONFileError(f"{p}: not {what}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def read_json_file(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """The JSON object in the file ``path``, meant to be ``what`` (see :func:`parse_json_object`);
    a missing, unreadable or malformed file is a :class:`JSONFileError` naming it."""
    return parse_json_object(read_text_file(path, what), str(path), what)


def _temp_beside(p: Path) -> tuple[int, str]:
    """A new temp file in ``p``'s folder (created if needed); an error names ``p``, the file the
    caller meant to write, rather than the temp file's random name."""
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write {p.name} here ({exc.strerror})", str(p.parent)) from None


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temp file in the same folder, fsync, then rename."""
    p = Path(path)
    fd, tmp = _temp_beside(p)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), _FILE_MODE)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p


def atomic_write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Atomically write ``data`` as indented JSON."""
    return atomic_write_text(path, json.dumps(data, indent=1) + "\n")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for a writer that wants a file name (``torch.save``,
    ``torch.onnx.export``...); when the block ends without error the file is fsynced and renamed
    to ``path``, otherwise removed."""
    p = Path(path)
    fd, tmp_name = _temp_beside(p)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, _FILE_MODE)
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def exclusive_lock(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive advisory lock on the file ``path`` (created if missing, its folder too)
    for the duration: processes that share a file or a cache take turns through it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
