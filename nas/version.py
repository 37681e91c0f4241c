"""litenas's version, read from the installed distribution's metadata, so that ``pyproject.toml``
holds it once and exported files can record it without importing the ``nas`` package."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("litenas")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
