"""litenas: hardware-aware neural architecture search for mobile CNNs.

The public core: :class:`Arch` / :class:`Block` (architecture as data), :func:`build_model`,
complexity counting (:mod:`nas.complexity`), and exporting (:mod:`nas.export`; :func:`load`
rebuilds a network saved with ``nas export --format pt``).
"""

from nas.arch import Arch, ArchError, Block
from nas.builder import LiteNet, build_model
from nas.export import load
from nas.version import __version__

__all__ = ["Arch", "ArchError", "Block", "LiteNet", "__version__", "build_model", "load"]
