"""Differentiable architecture search over layer-wise spaces: FBNet's Gumbel-softmax DNAS (Wu et
al., "FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable Neural Architecture
Search", CVPR 2019) and ProxylessNAS-style single-path sampling (Cai et al., "ProxylessNAS: Direct
Neural Architecture Search on Target Task and Hardware", ICLR 2019).

- :mod:`~search_spaces.layerwise`: which part of a space a supernet holds (all of ``fbnet``;
  the layer templates of ``mobile`` with its global and per-stage choices fixed).
- :mod:`~nas.search.dnas.supernet`: mixed ops built through the op registry, the architecture
  parameters, and the expected latency from a latency table.
- :mod:`~nas.search.dnas.train`: alternating weight/architecture updates, temperature schedule,
  the latency-aware loss, checkpoint and resume.
- :mod:`~nas.search.dnas.derive`: the argmax architecture and samples of the learned distribution.
- :mod:`~nas.search.dnas.search`: ``nas search --strategy fbnet|proxyless``, with the runner's
  evaluators and report.

Unlike the ask/tell strategies, these train a supernet in their own loop; what they produce (points
of the space, judged by the same evaluators) flows into the same outputs.
"""

from __future__ import annotations

from typing import Any

from nas.search.dnas.derive import Derived, derive
from nas.search.dnas.settings import DNASSettings
from nas.search.dnas.supernet import LatencyModel, MixedOp, PathSample, Supernet
from nas.search.dnas.train import DNASTrainer, TrainResult, dnas_loss
from search_spaces.layerwise import LayerwiseView, SearchedLayer, layerwise_view


def __getattr__(name: str) -> Any:
    """``DNASSearch`` on first use (PEP 562): it needs the runner, which needs the search
    configuration, which imports :mod:`nas.search.dnas.settings` and so this package."""
    if name == "DNASSearch":
        from nas.search.dnas.search import DNASSearch

        return DNASSearch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DNASSearch",
    "DNASSettings",
    "DNASTrainer",
    "Derived",
    "LatencyModel",
    "LayerwiseView",
    "MixedOp",
    "PathSample",
    "SearchedLayer",
    "Supernet",
    "TrainResult",
    "derive",
    "dnas_loss",
    "layerwise_view",
]
