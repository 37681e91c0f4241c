"""Reading architecture descriptions written by older versions of the format.

A JSON description carries ``"version"`` (:data:`nas.block.ARCH_VERSION` when written). A change
to the format that old files would not read under (an op or field renamed, a field's meaning or
unit changed) bumps that version and adds one *step* here: a pure function from a version-``v``
description (a JSON-like dict) to a version ``v + 1`` one. :func:`upgrade` chains the steps from a
file's version to the current one before :meth:`nas.arch.Arch.from_dict` validates it, so every
file ever written stays readable, and a file from a *newer* litenas is refused with a message
saying so rather than misread. Version 1 is the first format, so :data:`MIGRATIONS` is empty until
the first such change; its step then comes with a version-1 file under ``tests/data/``.

Adding a defaulted field to an op is not such a change: a description that leaves it out reads
with the default (keys and hashes ignore defaults, see :mod:`search_spaces.registry`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from nas.block import ARCH_VERSION, ArchError
from nas.checks import is_int

__all__ = ["MIGRATIONS", "Step", "upgrade"]

Step = Callable[[dict[str, Any]], dict[str, Any]]

MIGRATIONS: Mapping[int, Step] = MappingProxyType({})
"""``v -> step`` turning a version-``v`` description into a version-``v + 1`` one (none yet)."""


def upgrade(data: Mapping[str, Any], *, current: int = ARCH_VERSION,
            steps: Mapping[int, Step] = MIGRATIONS) -> dict[str, Any]:
    """``data`` migrated to version ``current`` (a missing ``version`` means ``current``).

    Raises :class:`~nas.block.ArchError` naming the ``version`` field when the version is not a
    positive integer, is newer than ``current``, has no step, or a step fails on ``data``."""
    version = data.get("version", current)
    if not is_int(version) or version < 1:
        raise ArchError(f"field 'version': expected a positive integer, got {version!r}")
    if version > current:
        raise ArchError(f"field 'version': {version} is from a newer litenas (this one reads versions up to "
                        f"{current}); upgrade litenas to read it")
    out = dict(data)
    while version < current:
        step = steps.get(version)
        if step is None:
            raise ArchError(f"field 'version': no migration from version {version} to {version + 1}")
        try:
            out = step(out)
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchError(f"field 'version': migrating a version-{version} description failed: {exc}") from None
        version += 1
        out["version"] = version
    return out
