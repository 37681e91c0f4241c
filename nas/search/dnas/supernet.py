"""The supernet of a layer-wise space and its expected latency.

Every searched layer is a :class:`MixedOp` holding all its candidates, each built through the op
registry (:meth:`search_spaces.registry.OpConfig.build`, the same call the model builder makes),
and a vector of architecture parameters ``theta_l`` (one logit per candidate, zero at the start:
a uniform distribution). Two ways to run it:

- ``soft`` (FBNet, Wu et al., "FBNet: Hardware-Aware Efficient ConvNet Design via Differentiable
  Neural Architecture Search", CVPR 2019): the layer's output is
  ``sum_i m_i * b_i(x)`` with Gumbel-softmax weights ``m = softmax((theta + g) / tau)``
  (Jang et al., "Categorical Reparameterization with Gumbel-Softmax", ICLR 2017), so every
  candidate runs and the activations of all of them are held for the backward pass.
- ``single`` (the memory regime of ProxylessNAS, Cai et al., "ProxylessNAS: Direct Neural
  Architecture Search on Target Task and Hardware", ICLR 2019): one candidate ``k`` is drawn per
  layer and step by the hard Gumbel-softmax and only it runs; the layer's output is
  ``(1 - m_k.detach() + m_k) * b_k(x)``, equal to ``b_k(x)`` in value. The gradient reaching
  ``theta`` is the straight-through hard Gumbel-softmax estimator restricted to the executed path
  (as GDAS, Dong & Yang, "Searching for A Robust Neural Architecture in Four GPU Hours",
  CVPR 2019): ``dL/dtheta = <dL/dout, b_k(x)> * dm_k/dtheta``. ProxylessNAS's binary-gate
  gradient needs the outputs of the other candidates (or of a second sampled path), which is
  what this mode avoids, so it is not used.

:class:`LatencyModel` holds, per layer, the latency-table cost of every candidate at the layer's
input shape (key :meth:`~search_spaces.registry.OpConfig.key`) and the constant of the stem and
head, so the expected latency ``sum_l sum_i w_{l,i} * LAT(b_{l,i}) + const`` (as FBNet's) is a
differentiable function of the per-layer weights ``w``. A table's calibration (see
:mod:`latency_tables.predict`) is a sum over ops plus a constant, so it is applied exactly: each
candidate costs its :meth:`~latency_tables.predict.LatencyPredictor.op_cost` (its median scaled
globally and per op class, its weights' cost, the per-op overhead) and the stem, head and
calibration constant form the rest. At a one-hot ``w`` the model equals
:meth:`latency_tables.predict.LatencyPredictor.predict` of that architecture.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from latency_tables.predict import LatencyPredictor
from latency_tables.table import LatencyTable, MissingKeyError
from nas.builder import init_weights, zero_last_bn_of_residuals
from nas.search.dnas_settings import MODES
from search_spaces.layerwise import LayerwiseView
from search_spaces.registry import OpConfig

__all__ = ["MixedOp", "PathSample", "Supernet", "LatencyModel"]


class MixedOp(nn.Module):
    """One searched layer: its candidates, built through the op registry."""

    def __init__(self, configs: Sequence[OpConfig]):
        super().__init__()
        if not configs:
            raise ValueError("a mixed op needs at least one candidate")
        self.candidates = nn.ModuleList(cfg.build() for cfg in configs)

    def __len__(self) -> int:
        return len(self.candidates)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, index: int | None = None) -> torch.Tensor:
        """``sum_i weights[i] * candidate_i(x)`` (``index`` is ``None``), or
        ``weights[index] * candidate_index(x)`` with only that candidate run."""
        if index is not None:
            return weights[index] * self.candidates[index](x)
        out = weights[0] * self.candidates[0](x)
        for w, op in zip(weights[1:], self.candidates[1:], strict=True):
            out = out + w * op(x)
        return out


@dataclass(frozen=True)
class PathSample:
    """The per-layer weights of one forward pass and, in single-path mode, the executed
    candidate of every layer (``None`` in soft mode: all candidates run)."""

    weights: tuple[torch.Tensor, ...]
    indices: tuple[int, ...] | None = None


class Supernet(nn.Module):
    """``stem -> MixedOp per searched layer -> head`` for a :class:`LayerwiseView`, with the
    architecture parameters ``theta`` (one zero-initialised logit vector per layer).

    Weights are initialised as :func:`nas.builder.build_model` initialises a network, and every
    residual candidate starts as the identity (:func:`nas.builder.zero_last_bn_of_residuals`), so
    the stream of a fresh 22-layer path is not the sum of 22 random branches.
    """

    def __init__(self, view: LayerwiseView):
        super().__init__()
        self.view = view
        self.stem = view.stem.build()
        self.layers = nn.ModuleList(MixedOp(layer.configs) for layer in view.layers)
        self.head = view.head.build()
        init_weights(self)
        zero_last_bn_of_residuals(op for layer in self.layers for op in layer.candidates)
        self.theta = nn.ParameterList(nn.Parameter(torch.zeros(len(layer))) for layer in view.layers)

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture parameters (one logit vector per layer)."""
        return list(self.theta)

    def weight_parameters(self) -> Iterator[nn.Parameter]:
        """Every operator weight (stem, candidates, head): all parameters but ``theta``."""
        arch = {id(p) for p in self.theta}
        return (p for p in self.parameters() if id(p) not in arch)

    def probabilities(self) -> list[torch.Tensor]:
        """``softmax(theta_l)`` per layer, detached: the learned distribution ``P_theta``."""
        return [F.softmax(t.detach(), dim=0) for t in self.theta]

    def sample(self, temperature: float, mode: str, *, grad: bool = True) -> PathSample:
        """Gumbel-softmax weights for one pass (global torch RNG).

        ``soft``: relaxed samples ``softmax((theta + g) / tau)``. ``single``: hard samples (one-hot
        in value, the relaxed sample's gradient; see the module docstring) and the drawn index
        per layer. ``grad=False`` detaches the weights (a weight-training step).
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            weights = tuple(F.gumbel_softmax(t, tau=temperature, hard=mode == "single") for t in self.theta)
        if mode == "soft":
            return PathSample(weights)
        return PathSample(weights, tuple(int(w.detach().argmax()) for w in weights))

    def path(self, indices: Sequence[int]) -> PathSample:
        """The single path through candidate ``indices[l]`` of every layer, weighted as a hard
        sample would be (one-hot in value, the gradient of ``softmax(theta)``): a child network
        run on the supernet's weights."""
        if len(indices) != len(self.layers):
            raise ValueError(f"expected one candidate index per layer ({len(self.layers)}), got {len(indices)}")
        weights = []
        for t, k in zip(self.theta, indices, strict=True):
            if isinstance(k, bool) or not 0 <= int(k) < len(t):
                raise ValueError(f"candidate index {k!r} is out of range 0..{len(t) - 1}")
            soft = F.softmax(t, dim=0)
            weights.append(F.one_hot(torch.tensor(int(k), device=t.device), len(t)).to(soft) - soft.detach() + soft)
        return PathSample(tuple(weights), tuple(int(k) for k in indices))

    def forward(self, x: torch.Tensor, path: PathSample) -> torch.Tensor:
        """Logits of ``x`` through the layers as ``path`` weights (and, single-path, selects) them."""
        if len(path.weights) != len(self.layers):
            raise ValueError(f"expected weights for {len(self.layers)} layers, got {len(path.weights)}")
        x = self.stem(x)
        for i, (layer, w) in enumerate(zip(self.layers, path.weights, strict=True)):
            x = layer(x, w, None if path.indices is None else path.indices[i])
        return self.head(x)


class LatencyModel(nn.Module):
    """Expected latency in ms: ``const + sum_l <w_l, cost_l>`` (see the module docstring).

    Build with :meth:`from_table`; ``costs`` are per layer, in candidate order.
    """

    def __init__(self, costs: Sequence[Sequence[float]], constant: float):
        super().__init__()
        if not costs or not all(costs):
            raise ValueError("a latency model needs at least one layer and one candidate per layer")
        self.constant = float(constant)
        for i, c in enumerate(costs):
            self.register_buffer(f"cost{i}", torch.tensor([float(v) for v in c], dtype=torch.float64),
                                 persistent=False)
        self.n_layers = len(costs)

    def costs(self) -> list[torch.Tensor]:
        return [getattr(self, f"cost{i}") for i in range(self.n_layers)]

    @classmethod
    def from_table(cls, view: LayerwiseView, table: LatencyTable, *, measure_missing: bool = False) -> LatencyModel:
        """Costs of every candidate of ``view`` from ``table``; a missing entry raises
        :class:`~latency_tables.table.MissingKeyError` naming its key, unless ``measure_missing``:
        then every missing op is measured here with the table's settings and added to the table
        (in memory), as :class:`~latency_tables.predict.LatencyPredictor` does."""
        predictor = LatencyPredictor(table, measure_missing=measure_missing)
        if measure_missing:
            for k in range(max(len(layer) for layer in view.layers)):  # every candidate is in one of these
                predictor.op_latencies(view.arch([k % len(layer) for layer in view.layers]))

        def cost(cfg: OpConfig) -> float:
            try:
                return predictor.op_cost(cfg)
            except MissingKeyError as exc:
                exc.hint += (f"; the supernet needs every candidate of the {view.space.name} space at "
                             f"{table.resolution}px (build the table for that space and size)")
                raise

        cal = table.calibration
        constant = cost(view.stem) + cost(view.head) + (cal.constant if cal is not None else 0.0)
        return cls([[cost(c) for c in layer.configs] for layer in view.layers], constant)

    def forward(self, weights: Sequence[torch.Tensor]) -> torch.Tensor:
        """The expected latency under per-layer weights (probabilities, or relaxed samples)."""
        if len(weights) != self.n_layers:
            raise ValueError(f"expected weights for {self.n_layers} layers, got {len(weights)}")
        total = torch.zeros((), dtype=torch.float64, device=weights[0].device)
        for w, c in zip(weights, self.costs(), strict=True):
            total = total + (w * c).sum()
        return total + self.constant

    def of(self, indices: Sequence[int]) -> float:
        """The latency of the architecture taking candidate ``indices[l]`` in layer ``l``."""
        return self.constant + sum(float(c[k]) for c, k in zip(self.costs(), indices, strict=True))

    def mean(self) -> float:
        """The expected latency under the uniform distribution (every candidate equally likely):
        the supernet's starting point, and the reference of the ``relative`` loss."""
        return self.constant + sum(float(c.mean()) for c in self.costs())

    def bounds(self) -> tuple[float, float]:
        """The lowest and highest latency any architecture of the view has."""
        costs = self.costs()
        return (self.constant + sum(float(c.min()) for c in costs), self.constant + sum(float(c.max()) for c in costs))
