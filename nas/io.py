"""Atomic file writes: a crash or kill never leaves a truncated or half-written file behind."""

from __future__ import annotations

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
