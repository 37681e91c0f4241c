"""Extracting dataset archives (``.tar`` / ``.tar.gz``) once into a cache folder.

A dataset often arrives as one archive; extracting it on every load would be slow, and
extracting it in place could be interrupted half-way or write outside the destination. Each
archive is therefore extracted once into a folder keyed by its path, size and modification
time, marked complete only when done, with members that would land outside refused; processes
that load the same archive at once take turns through a lock file, so one extracts and the
others read what it finished.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from evaluators.datasets.base import default_cache_dir
from nas.io import exclusive_lock

__all__ = ["extract_archive"]


def extract_archive(archive: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Extract a ``.tar``/``.tar.gz`` once into ``cache_dir`` (default :func:`default_cache_dir`
    ``/extracted``) and return the extracted folder (its single top-level folder, if it has one).

    The destination is keyed by the archive's path, size and modification time; a finished
    extraction is marked complete, so an interrupted one is redone. Members that would land
    outside the destination (absolute paths, ``..``, links out) are refused.
    """
    archive = Path(archive).expanduser().resolve()
    if not archive.is_file():
        raise ValueError(f"{archive}: no such archive")
    st = archive.stat()
    digest = hashlib.sha256(f"{archive}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = archive.name.split(".")[0]
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir() / "extracted"
    dest = cache / f"{stem}-{digest}"
    if not (dest / ".complete").exists():
        # One process extracts, the others wait for it (several shards of a benchmark starting
        # at once): a finished extraction is never replaced under a process reading it.
        with exclusive_lock(cache / f".{dest.name}.lock"):
            if not (dest / ".complete").exists():
                _extract(archive, cache, dest)
    return _single_top(dest)


def _extract(archive: Path, cache: Path, dest: Path) -> None:
    """Extract ``archive`` into a temporary folder of ``cache``, mark it complete and move it to
    ``dest`` (replacing an incomplete one)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=cache))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        (tmp / ".complete").write_text(str(archive) + "\n", encoding="utf-8")
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    except (tarfile.TarError, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(f"{archive}: cannot extract ({exc})") from None


def _single_top(dest: Path) -> Path:
    entries = [p for p in dest.iterdir() if p.name != ".complete"]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest

