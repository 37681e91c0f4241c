"""Architectures from a trained supernet: the most likely one and samples of ``P_theta``.

FBNet (Wu et al., CVPR 2019) samples several architectures from the learned
distribution ``P_theta`` (six in the paper) and trains them from scratch; the argmax of every
layer's ``theta`` is the most likely architecture. Here the argmax comes first, then up to
``samples`` more, each layer drawn independently from ``softmax(theta_l)`` with a seeded
generator. Samples are distinct networks (a draw equal to an earlier one is drawn again, up to
:data:`MAX_DRAWS_PER_SAMPLE` times per sample), so a sharply peaked distribution can yield fewer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from nas.arch import Arch
from nas.checks import is_int
from nas.search.dnas.supernet import LatencyModel
from search_spaces.layerwise import LayerwiseView
from search_spaces.space import Point

__all__ = ["MAX_DRAWS_PER_SAMPLE", "Derived", "derive"]

MAX_DRAWS_PER_SAMPLE = 50


@dataclass(frozen=True)
class Derived:
    """One derived architecture: how it was obtained (``argmax`` or ``sample``), its candidate
    index per layer, its point and architecture, its log-probability under ``P_theta`` and its
    latency from the latency model (ms)."""

    kind: str
    indices: tuple[int, ...]
    point: Point
    arch: Arch
    log_prob: float
    latency_ms: float

    def to_dict(self, view: LayerwiseView) -> dict[str, Any]:
        return {"kind": self.kind, "hash": self.arch.hash(), "log_prob": round(self.log_prob, 6),
                "latency_model_ms": round(self.latency_ms, 6),
                "choices": {layer.choice: layer.labels[k] for layer, k in zip(view.layers, self.indices, strict=True)}}


def derive(view: LayerwiseView, probabilities: Sequence[torch.Tensor], latency: LatencyModel, *,
           samples: int, seed: int) -> list[Derived]:
    """The argmax architecture, then up to ``samples`` distinct ones drawn from ``probabilities``
    (one vector per layer of ``view``)."""
    if len(probabilities) != len(view.layers):
        raise ValueError(f"expected probabilities for {len(view.layers)} layers, got {len(probabilities)}")
    if not is_int(samples) or samples < 0:
        raise ValueError(f"samples must be an integer >= 0, got {samples!r}")
    probs = [p.detach().double().cpu().numpy() for p in probabilities]
    probs = [p / p.sum() for p in probs]

    def make(kind: str, indices: Sequence[int]) -> Derived:
        indices = tuple(int(k) for k in indices)
        point = view.point(indices)
        log_prob = float(sum(math.log(max(p[k], 1e-300)) for p, k in zip(probs, indices, strict=True)))
        return Derived(kind, indices, point, view.space.decode(point), log_prob, latency.of(indices))

    out = [make("argmax", [int(np.argmax(p)) for p in probs])]
    seen = {out[0].indices}
    rng = np.random.default_rng(seed)
    for _ in range(samples):
        for _ in range(MAX_DRAWS_PER_SAMPLE):
            indices = tuple(int(rng.choice(len(p), p=p)) for p in probs)
            if indices not in seen:
                seen.add(indices)
                out.append(make("sample", indices))
                break
    return out
