"""On-disk result cache: re-scoring an architecture is free and survives restarts.

A result is keyed by the evaluator's name, a digest of its :meth:`~evaluators.base.Evaluator.config`
and the architecture's :meth:`~nas.arch.Arch.hash`. :class:`JsonCache` stores one small JSON file
per result::

    <root>/<evaluator name>/<config digest>/config.json      # the configuration, for people
    <root>/<evaluator name>/<config digest>/<arch hash>.json  # one Result

Every write is atomic (temp file + rename, :mod:`nas.io`), so a killed search never leaves a
half-written entry and concurrent workers at worst write the same entry twice. A file that cannot
be parsed is treated as a miss (and logged), then overwritten. No pickle anywhere.

A cache written by a litenas whose hashes covered every argument (:func:`nas.arch.legacy_hash`)
is still read: :meth:`Cached.lookup` falls back to an architecture's legacy hash, so a search
resumed after upgrading evaluates nothing again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from abc import ABC, abstractmethod
from dataclasses import replace
from pathlib import Path
from typing import Any

from evaluators.base import Evaluator, Result
from nas.arch import Arch, legacy_hash
from nas.io import atomic_write_json, parse_json_object

__all__ = ["CACHE_VERSION", "config_digest", "ResultCache", "JsonCache", "Cached"]

logger = logging.getLogger(__name__)

CACHE_VERSION = 1


def config_digest(config: Any) -> str:
    """16 hex digits of SHA-256 over the canonical JSON of ``config`` (and the cache version)."""
    try:
        text = json.dumps({"cache_version": CACHE_VERSION, "config": config}, sort_keys=True,
                          separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"evaluator config is not plain JSON ({exc})") from None
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ResultCache(ABC):
    """Where results are kept. Keys are ``(evaluator name, config digest, arch hash)``."""

    @abstractmethod
    def get(self, evaluator: str, digest: str, arch_hash: str) -> Result | None:
        """The stored result, or ``None``."""

    @abstractmethod
    def put(self, evaluator: str, digest: str, arch_hash: str, result: Result, config: Any) -> None:
        """Store ``result`` (``config`` is what ``digest`` was computed from)."""


class JsonCache(ResultCache):
    """One JSON file per result under ``root`` (see the module docstring)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def _dir(self, evaluator: str, digest: str) -> Path:
        if not evaluator.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"evaluator name {evaluator!r} cannot be a folder name")
        return self.root / evaluator / digest

    def get(self, evaluator: str, digest: str, arch_hash: str) -> Result | None:
        path = self._dir(evaluator, digest) / f"{arch_hash}.json"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("ignoring unreadable cache entry %s (%s)", path, exc)
            return None
        try:  # a damaged entry (truncated, tampered, nested too deeply) is evaluated again
            result = Result.from_dict(parse_json_object(raw, str(path), "a cached evaluator result"))
        except ValueError as exc:
            logger.warning("ignoring unreadable cache entry %s (%s)", path, exc)
            return None
        if result.arch_hash != arch_hash:
            logger.warning("ignoring cache entry %s: it holds %s", path, result.arch_hash)
            return None
        return result

    def put(self, evaluator: str, digest: str, arch_hash: str, result: Result, config: Any) -> None:
        folder = self._dir(evaluator, digest)
        if not (folder / "config.json").exists():
            atomic_write_json(folder / "config.json", {"evaluator": evaluator, "config": config})
        atomic_write_json(folder / f"{arch_hash}.json", result.to_dict())

    def __len__(self) -> int:
        """Number of stored results (all evaluators)."""
        return sum(1 for p in self.root.glob("*/*/*.json") if p.name != "config.json")


class Cached(Evaluator):
    """``evaluator`` behind a :class:`ResultCache`: a stored result is returned without calling it.

    Failed results are stored too (a diverging candidate diverges again), except retryable ones
    (out of memory), which depend on the machine rather than the candidate.
    """

    def __init__(self, evaluator: Evaluator, cache: ResultCache):
        if not isinstance(evaluator, Evaluator):
            raise ValueError(f"Cached wraps an Evaluator, got {type(evaluator).__name__}")
        if not isinstance(cache, ResultCache):
            raise ValueError(f"cache must be a ResultCache, got {type(cache).__name__}")
        self.inner = evaluator
        self.cache = cache
        self.name = evaluator.name
        self.metrics = evaluator.metrics
        self._config = evaluator.config()
        self._digest = config_digest({"evaluator": self.name, "config": self._config})

    def config(self) -> dict[str, Any]:
        return self._config

    def check(self, arch: Arch) -> None:
        self.inner.check(arch)

    def lookup(self, arch: Arch) -> Result | None:
        """The stored result of ``arch``, or ``None`` (the inner evaluator is not called). A result
        an older litenas stored under the architecture's legacy hash is found too, and returned
        under the current one."""
        h = arch.hash()
        hit = self.cache.get(self.name, self._digest, h)
        if hit is None:
            hit = self.cache.get(self.name, self._digest, legacy_hash(arch))
            hit = None if hit is None else replace(hit, arch_hash=h)
        return hit

    def store(self, arch: Arch, result: Result) -> None:
        """Keep ``result`` of ``arch`` (a result of the inner evaluator computed elsewhere, e.g. on
        a Ray worker); a retryable failure is not kept."""
        h = arch.hash()
        if result.arch_hash != h:
            raise ValueError(f"a result of {result.arch_hash} cannot be stored as the result of {h}")
        if not result.retryable:
            self.cache.put(self.name, self._digest, h, result, self._config)

    def evaluate(self, arch: Arch) -> Result:
        self.check(arch)
        hit = self.lookup(arch)
        if hit is not None:
            return hit
        result = self.inner.evaluate(arch)
        self.store(arch, result)
        return result
