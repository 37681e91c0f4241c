"""Deterministic stand-in weights for exactness checks without the reference libraries.

``scripts/make_reference_fixtures.py`` fills every tensor of a reference model with
:func:`fill_reference_tensor` and records the model's output on :func:`reference_input`; the
tests fill the same reference keys with the same function, import them into our network and
compare. Both sides draw from numpy's PCG64 generator (stable across numpy versions), never from
torch's, so the numbers do not depend on the torch build.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np
import torch

INPUT_SEED = 0
"""Seed of the input batch."""
INPUT_BATCH = 2


def key_seed(key: str) -> int:
    """The generator seed of a state-dict key: the first 8 bytes of its SHA-256, little-endian."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")


def fill_reference_tensor(key: str, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The tensor stored under ``key`` with ``shape``: a function of the two only.

    With ``g = numpy.random.default_rng(key_seed(key))``:

    - integer tensors (``num_batches_tracked``): zeros;
    - ``*running_var``: ``g.uniform(0.5, 1.5)`` (positive, as a variance must be);
    - ``*running_mean`` and other 1-D tensors not named ``*weight`` (biases): ``0.1 * g.normal()``;
    - 1-D ``*weight`` (BatchNorm scales): ``g.uniform(0.5, 1.5)``;
    - everything else (conv and linear weights): ``g.normal() * sqrt(2 / fan_in)`` with
      ``fan_in`` the product of all dimensions but the first (He scale). The residual additions
      make the logits large (up to 1e7 for GhostNet), which float32 carries with the same
      relative precision; at the LeCun scale ``sqrt(1 / fan_in)`` the input's signal died out in
      EfficientNet, MixNet and MobileNetV3, whose outputs then hardly depended on it.
    """
    shape = tuple(int(d) for d in shape)
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    g = np.random.default_rng(key_seed(key))
    leaf = key.rsplit(".", 1)[-1]
    if leaf == "running_var" or (len(shape) == 1 and leaf == "weight"):
        values = g.uniform(0.5, 1.5, size=shape)
    elif len(shape) == 1:
        values = 0.1 * g.standard_normal(size=shape)
    else:
        fan_in = math.prod(shape[1:])
        values = g.standard_normal(size=shape) * math.sqrt(2.0 / max(fan_in, 1))
    return torch.from_numpy(np.asarray(values, dtype=np.float32)).to(dtype)


def reference_input(resolution: int, batch: int = INPUT_BATCH, seed: int = INPUT_SEED) -> torch.Tensor:
    """The fixed input batch: standard normal ``(batch, 3, resolution, resolution)`` float32."""
    g = np.random.default_rng(seed)
    return torch.from_numpy(g.standard_normal(size=(batch, 3, resolution, resolution)).astype(np.float32))
