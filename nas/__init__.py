"""litenas: hardware-aware neural architecture search for mobile CNNs.

The public core: :class:`Arch` / :class:`Block` (architecture as data), :func:`build_model`,
and complexity counting (:mod:`nas.complexity`).
"""

from nas.arch import Arch, ArchError, Block
from nas.builder import LiteNet, build_model

__all__ = ["Arch", "ArchError", "Block", "LiteNet", "build_model"]
__version__ = "0.1.0"
