"""Which networks to measure: a space set up at a resolution, the zoo's entries at it, random
samples and samples spread over the latency range.

Calibration, validation, adaptation and checks all measure networks drawn here, so the same
seed gives the same networks wherever a table is built, adapted or checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from nas.arch import Arch
from search_spaces import zoo
from search_spaces.space import SearchSpace
from search_spaces.spaces import get_space

__all__ = ["open_space", "zoo_archs", "sample_archs", "stratified_archs"]


def open_space(name: str, resolution: int, num_classes: int | None = None) -> SearchSpace:
    """Search space ``name`` set up as a search at ``resolution`` sets it up (every space takes
    the input size as an option; ``mobile`` then samples that size's layout) with ``num_classes``
    outputs (default: the space's)."""
    return get_space(name, resolution=resolution, **({} if num_classes is None else {"num_classes": num_classes}))


def zoo_archs(resolution: int, num_classes: int | None = None) -> dict[str, Arch]:
    """The zoo entries whose native input resolution is ``resolution``, by name, re-targeted to
    ``num_classes`` outputs when given (a CIFAR-10 table holds 10-class heads, while the zoo's
    CIFAR networks are CIFAR-100's)."""
    archs = {name: zoo.get(name) for name in zoo.names()}
    return {name: a if num_classes is None else a.replace(num_classes=num_classes)
            for name, a in archs.items() if a.resolution == resolution}


def sample_archs(space: str, resolution: int, n: int, seed: int, num_classes: int | None = None) -> list[Arch]:
    """``n`` distinct random architectures of ``space`` at ``resolution`` (reproducible by ``seed``).

    Points are drawn by the space's own sampler, the space set up for ``resolution`` and
    ``num_classes`` (see :func:`open_space`). Where the input size is one of
    the space's choices (named ``resolution``) that choice is set to ``resolution``, and draws
    that do not build at that size are drawn again.
    """
    if n < 1:
        raise ValueError(f"-n must be >= 1, got {n}")
    sp = open_space(space, resolution, num_classes)
    names = [c.name for c in sp.choices]
    fixed: tuple[int, int] | None = None
    if "resolution" in names:
        i = names.index("resolution")
        if resolution not in sp.choices[i].values:
            raise ValueError(f"space {space!r} offers no resolution {resolution} "
                             f"(its choices: {', '.join(map(str, sp.choices[i].values))})")
        fixed = (i, sp.choices[i].values.index(resolution))
    rng = np.random.default_rng(seed)
    out: dict[str, Arch] = {}
    for _ in range(100 * n):
        try:
            if fixed is not None:
                point = list(sp.sample_point(rng))
                point[fixed[0]] = fixed[1]
                arch = sp.decode(point)
            else:
                arch = sp.sample(rng)
                if arch.resolution != resolution:  # a space with neither option nor choice
                    arch = arch.replace(resolution=resolution)
        except ValueError:
            continue
        out.setdefault(arch.hash(), arch)
        if len(out) == n:
            return list(out.values())
    raise ValueError(f"space {space!r}: drew only {len(out)} distinct architectures that build at "
                     f"resolution {resolution} in {100 * n} tries")


def stratified_archs(space: str, resolution: int, n: int, seed: int, latency: Callable[[Arch], float],
                     num_classes: int | None = None, pool: int = 10) -> list[Arch]:
    """``n`` architectures of ``space`` spread evenly over its latency range.

    Random sampling concentrates where most networks lie (the middle of the range), so the
    fastest and slowest networks, which a search with a tight or loose budget ends on, are rarely
    measured. Here ``pool * n`` random networks are drawn (:func:`sample_archs`), ranked by
    ``latency`` (e.g. the uncalibrated op sum of a table; a network it cannot price is skipped),
    and one is taken at random from each of ``n`` equal-width bins of log latency between the
    pool's fastest and slowest (an empty bin gives its turn to the nearest network not yet
    taken), the extremes always included. Reproducible by ``seed``.
    """
    if n < 1:
        raise ValueError(f"-n must be >= 1, got {n}")
    candidates = sample_archs(space, resolution, pool * n, seed, num_classes)
    priced: list[tuple[float, Arch]] = []
    first_problem = ""
    for arch in candidates:
        try:
            ms = float(latency(arch))
        except (KeyError, ValueError) as exc:  # an op the table lacks: it cannot be priced
            first_problem = first_problem or str(exc)
            continue
        if ms > 0:
            priced.append((math.log(ms), arch))
    if len(priced) < n:
        raise ValueError(f"space {space!r}: only {len(priced)} of {len(candidates)} sampled networks could be priced, "
                         f"need {n} (e.g. {first_problem}); use a table that covers the space, or --sampling random "
                         "--measure-missing")
    priced.sort(key=lambda t: t[0])
    logs = np.array([t[0] for t in priced])
    rng = np.random.default_rng(seed)
    edges = np.linspace(logs[0], logs[-1], n + 1)
    taken: set[int] = {0, len(priced) - 1} if n >= 2 else {int(rng.integers(len(priced)))}
    for b in range(1, n - 1):
        inside = [i for i in range(len(priced)) if edges[b] <= logs[i] < edges[b + 1] and i not in taken]
        if not inside:
            centre = 0.5 * (edges[b] + edges[b + 1])
            inside = [min((i for i in range(len(priced)) if i not in taken), key=lambda i: abs(logs[i] - centre))]
        taken.add(int(rng.choice(inside)))
    return [priced[i][1] for i in sorted(taken)]
