"""Zero-cost proxies: score an untrained network from one minibatch (or none), no training.

- ``synflow``: Tanaka et al., "Pruning neural networks without any data by iteratively
  conserving synaptic flow", NeurIPS 2020. Weights replaced by their absolute values, an all-ones
  input, ``R = sum(f(1))``; the score is ``sum |theta * dR/dtheta|`` over conv and linear
  weights. Computed in float64 with BatchNorm in inference mode (its fresh statistics make it an
  identity, i.e. the network is scored without BN, as in Abdelfattah et al.).
- ``naswot``: Mellor et al., "Neural Architecture Search without Training", ICML 2021. The binary
  codes ``c_i`` (which rectifier inputs are positive) of a minibatch give the kernel
  ``K[i, j] = N_A - hamming(c_i, c_j)``; the score is ``log |det K|``. Every activation module of
  the rectifier family (ReLU, ReLU6, hard-swish, swish) contributes its input's sign pattern.
- ``grad_norm``: sum over conv and linear weights of the L2 norm of the cross-entropy gradient.
- ``snip``: Lee et al., "SNIP: Single-shot Network Pruning based on Connection Sensitivity", ICLR
  2019; the saliency ``sum |theta * dL/dtheta|``.

``grad_norm`` and ``snip`` follow Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS",
ICLR 2021, which evaluates all four as architecture rankers. Every proxy is "higher is better".
:func:`nas.rank_stats.kendall_tau` measures how well a proxy ranks architectures against trained accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from evaluators.base import BaseEvaluator, Metric
from evaluators.datasets import Dataset, normalise
from evaluators.scorers import ScoreSettings, register_scorer
from evaluators.train import check_compatible
from nas.arch import Arch
from nas.builder import build_model
from nas.checks import is_int
from nas.runtime import check_threads, fixed_threads, resolve_device

__all__ = ["PROXIES", "synflow", "naswot", "grad_norm", "snip", "ZeroCostProxies"]

_RECTIFIERS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.LeakyReLU, nn.GELU)


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def synflow(model: nn.Module, input_shape: tuple[int, int, int]) -> float:
    """Natural log of the SynFlow score of ``model`` (modified in place: weights become absolute,
    float64). The raw score spans tens of orders of magnitude across a space (1e30..1e40 at
    224px), which would swamp any other term of an objective; its log ranks the same way."""
    model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.zero_grad(set_to_none=True)
    device = next(model.parameters()).device
    model(torch.ones(1, *input_shape, dtype=torch.float64, device=device)).sum().backward()
    total = float(sum((w * w.grad).detach().abs().sum() for w in _weights(model) if w.grad is not None))
    return math.log(total) if total > 0 else float("-inf")


def naswot(model: nn.Module, images: torch.Tensor) -> float:
    """NASWOT score: log-determinant of the activation-code kernel of a minibatch.

    The kernel is accumulated layer by layer (as the reference implementation does), so the
    codes of the whole network are never held at once."""
    n = images.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=images.device)

    def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        c = (inputs[0].detach().flatten(1) > 0).float()
        # agreements = both active + both inactive = c c^T + (1-c)(1-c)^T = D - |c_i| - |c_j| + 2 c c^T
        cc = c @ c.T
        ones = c.sum(1)
        kernel.add_((c.shape[1] - ones[:, None] - ones[None, :] + 2 * cc).double())

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, _RECTIFIERS)]
    if not handles:
        raise ValueError("NASWOT needs rectifier activations (ReLU, ReLU6, hard-swish, swish) and found none")
    try:
        model.train()
        with torch.no_grad():
            model(images)
    finally:
        for h in handles:
            h.remove()
    return float(torch.linalg.slogdet(kernel)[1])


def _loss_grads(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> list[torch.Tensor]:
    model.train()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(images), labels).backward()
    return _weights(model)


def grad_norm(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Sum of the per-layer L2 norms of the cross-entropy gradient (conv and linear weights)."""
    return float(sum(w.grad.detach().norm() for w in _loss_grads(model, images, labels) if w.grad is not None))


def snip(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """SNIP saliency ``sum |theta * dL/dtheta|`` (conv and linear weights)."""
    return float(sum((w * w.grad).detach().abs().sum() for w in _loss_grads(model, images, labels) if w.grad is not None))


@dataclass(frozen=True)
class _Proxy:
    score: Callable[[nn.Module, tuple[torch.Tensor, torch.Tensor] | None, tuple[int, int, int]], float]
    needs_data: bool
    doc: str


PROXIES: dict[str, _Proxy] = {
    "synflow": _Proxy(lambda m, batch, shape: synflow(m, shape), False, "log SynFlow (Tanaka et al. 2020)"),
    "naswot": _Proxy(lambda m, batch, shape: naswot(m, batch[0]), True,
                     "NASWOT log-det of the activation-code kernel (Mellor et al. 2021)"),
    "grad_norm": _Proxy(lambda m, batch, shape: grad_norm(m, *batch), True, "gradient norm (Abdelfattah et al. 2021)"),
    "snip": _Proxy(lambda m, batch, shape: snip(m, *batch), True, "SNIP saliency (Lee et al. 2019)"),
}
"""The proxies by name: how to score a model, whether a minibatch is needed, a citation."""


class ZeroCostProxies(BaseEvaluator):
    """The chosen ``proxies`` (all by default) of a freshly initialised network.

    The data-dependent proxies use one random minibatch of ``batch_size`` train
    images of ``data`` (normalised as in training, no augmentation), drawn with ``seed``; the
    network is initialised with ``seed`` too, afresh for every proxy. ``synflow`` alone needs no
    data (``data=None`` is allowed then).
    """

    name = "proxies"

    def __init__(self, data: Dataset | None, *, proxies: Sequence[str] = tuple(PROXIES), batch_size: int = 64,
                 seed: int = 0, threads: int | None = None, device: str | torch.device = "cpu"):
        proxies = tuple(proxies)
        unknown = [p for p in proxies if p not in PROXIES]
        if unknown or not proxies or len(set(proxies)) != len(proxies):
            raise ValueError(f"proxies must be distinct names from {', '.join(PROXIES)}; got {list(proxies)}")
        needy = [p for p in proxies if PROXIES[p].needs_data]
        if data is None and needy:
            raise ValueError(f"proxies {needy} need data")
        if data is not None and not isinstance(data, Dataset):
            raise ValueError(f"data must be a Dataset or None, got {type(data).__name__}")
        if not is_int(batch_size) or batch_size < 2:
            raise ValueError(f"batch_size must be an integer >= 2, got {batch_size!r}")
        self.data = data
        self.proxies = proxies
        self.batch_size = batch_size
        self.seed = seed
        self.threads = check_threads(threads)
        self.device = torch.device(device)
        self.metrics = tuple(Metric(p, "max", "", PROXIES[p].doc) for p in proxies)

    @classmethod
    def from_settings(cls, s: ScoreSettings) -> ZeroCostProxies:
        """``--evaluator proxy``: the configured proxy alone, on the search's device (one on this
        machine, checked now, for an in-process search)."""
        if s.check_device:
            resolve_device(s.device, what="device")
        return cls(s.data, proxies=[s.proxy], batch_size=s.batch_size, seed=s.seed, threads=s.threads, device=s.device)

    def config(self) -> dict[str, Any]:
        return {"proxies": list(self.proxies), "batch_size": self.batch_size, "seed": self.seed,
                "data": None if self.data is None else self.data.describe(),
                **({"device": self.device.type} if self.device.type != "cpu" else {})}

    def check(self, arch: Arch) -> None:
        super().check(arch)
        if self.data is not None:
            check_compatible(arch, self.data)

    def _batch(self, data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(self.seed)
        n = min(self.batch_size, len(data.train))
        idx = np.sort(rng.choice(len(data.train), n, replace=False))
        mean, std = data.mean_std
        return normalise(torch.from_numpy(data.train.images[idx]), mean, std), torch.from_numpy(data.train.labels[idx])

    def compute(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        device = resolve_device(self.device)  # where the evaluation runs: a Ray task's assigned GPU
        batch = None if self.data is None else tuple(t.to(device) for t in self._batch(self.data))
        shape = (arch.in_chans, arch.resolution, arch.resolution)
        out = {}
        with fixed_threads(self.threads), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for p in self.proxies:
                torch.manual_seed(self.seed)
                out[p] = PROXIES[p].score(build_model(arch).to(device), batch, shape)
        return out, {}


register_scorer("proxy", ZeroCostProxies.from_settings, "a zero-cost proxy of the untrained network, one minibatch (--proxy)")
