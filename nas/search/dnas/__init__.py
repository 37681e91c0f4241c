"""Differentiable architecture search over layer-wise spaces: FBNet's Gumbel-softmax DNAS (Wu et
al., "FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable Neural Architecture
Search", CVPR 2019) and ProxylessNAS-style single-path sampling (Cai et al., "ProxylessNAS: Direct
Neural Architecture Search on Target Task and Hardware", ICLR 2019).

- :mod:`~search_spaces.layerwise`: which part of a space a supernet holds (all of ``fbnet``;
  the layer templates of ``mobile`` with its global and per-stage choices fixed).
- :mod:`~nas.search.dnas_settings` (beside the package, so that the search configuration reads
  the defaults without importing the search): the supernet's training settings.
- :mod:`~nas.search.dnas.supernet`: mixed ops built through the op registry, the architecture
  parameters, and the expected latency from a latency table.
- :mod:`~nas.search.dnas.train`: alternating weight/architecture updates, temperature schedule,
  the latency-aware loss, checkpoint and resume.
- :mod:`~nas.search.dnas.derive`: the argmax architecture and samples of the learned distribution.
- :mod:`~nas.search.dnas.search`: ``nas search --strategy fbnet|proxyless``, with the runner's
  evaluators and report. It stands above the runner (which uses this package's latency model), so
  this package does not import it: ``from nas.search.dnas.search import DNASSearch``.

Unlike the ask/tell strategies, these train a supernet in their own loop; what they produce (points
of the space, judged by the same evaluators) flows into the same outputs.
"""

from __future__ import annotations

from nas.search.dnas.derive import Derived, derive
from nas.search.dnas.supernet import LatencyModel, MixedOp, PathSample, Supernet
from nas.search.dnas.train import DNASTrainer, TrainResult, dnas_loss
from nas.search.dnas_settings import DNASSettings
from search_spaces.layerwise import LayerwiseView, SearchedLayer, layerwise_view

__all__ = [
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
