"""The search spaces by name, and which spaces each zoo network is a point of.

``get_space("fbnet")`` returns the FBNet space; options go to the space's constructor
(``get_space("mobile", num_classes=100)``, ``get_space("fbnet", resolution=32)``). Instances are
cached per name and options, so repeated look-ups share their (exact, sometimes slow) counts.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from nas.arch import Arch
from search_spaces import zoo
from search_spaces.fbnet import FBNetSpace
from search_spaces.hardnet_space import HarDNetSpace
from search_spaces.mnasnet import MnasNetSpace
from search_spaces.mobile import MobileSpace
from search_spaces.space import SearchSpace

__all__ = ["space_names", "get_space", "home_spaces", "space_for"]

_SPACES: dict[str, type[SearchSpace]] = {
    "fbnet": FBNetSpace,
    "mnasnet": MnasNetSpace,
    "mobile": MobileSpace,
    "hardnet": HarDNetSpace,
}
# Zoo families with a space of their own; every family but HarDNet is also in ``mobile``.
_FAMILY_SPACES = {"fbnet": "fbnet", "mnasnet": "mnasnet", "hardnet": "hardnet"}
_NOT_CHAIN = {"hardnet"}


def space_names() -> list[str]:
    """Names of the search spaces, in listing order."""
    return list(_SPACES)


@cache
def _cached(name: str, options: tuple[tuple[str, Any], ...]) -> SearchSpace:
    return _SPACES[name](**dict(options))


def get_space(name: str, **options: Any) -> SearchSpace:
    """The space called ``name``, built with ``options``; an unknown name raises ``ValueError``
    listing the known ones, an unknown option one naming it."""
    if name not in _SPACES:
        raise ValueError(f"unknown search space {name!r}; known: {', '.join(_SPACES)}")
    try:
        return _cached(name, tuple(sorted(options.items())))
    except TypeError as exc:
        raise ValueError(f"search space {name!r}: {exc}") from None


def home_spaces(zoo_name: str) -> tuple[str, ...]:
    """The spaces the zoo entry ``zoo_name`` is a point of: its family's own space, if it has
    one, and ``mobile`` for every chain-structured network."""
    family = zoo.reference(zoo_name)["family"]
    own = (_FAMILY_SPACES[family],) if family in _FAMILY_SPACES else ()
    return own + (() if family in _NOT_CHAIN else ("mobile",))


def space_for(name: str, arch: Arch) -> SearchSpace:
    """Space ``name`` set up for ``arch``'s task: its number of classes and, for spaces with a
    fixed input size, its resolution."""
    if name not in _SPACES:
        raise ValueError(f"unknown search space {name!r}; known: {', '.join(_SPACES)}")
    task = {"resolution": arch.resolution, "num_classes": arch.num_classes}
    return get_space(name, **{k: task[k] for k in _SPACES[name].task_options})
