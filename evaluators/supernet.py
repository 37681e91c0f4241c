"""A weight-sharing one-shot supernet and the evaluator that scores a candidate by the weights it
inherits from it.

Single-Path One-Shot (Guo et al., "Single Path One-Shot Neural Architecture Search with Uniform
Sampling", ECCV 2020): every searched layer of a :class:`~search_spaces.layerwise.LayerwiseView`
holds all its candidate blocks (built by the op registry, as the model builder builds them); each
training step runs one path drawn uniformly, so every sub-network is trained a little and any of
them can be scored afterwards with its inherited weights. Options from Once-for-All (Cai et al.,
ICLR 2020) and BigNAS (Yu et al., ECCV 2020): the *sandwich rule* (each step trains the largest
and the smallest path plus random ones, accumulating their gradients) and *in-place
distillation* (the smaller paths learn from the largest path's soft predictions).

A candidate's inherited network is a plain :class:`~nas.builder.LiteNet` of its architecture whose
blocks are the supernet's chosen candidates (:meth:`OneShotSupernet.subnet_state_dict` maps the
keys and cuts its slices of the shared weights), so it is scored exactly as a stand-alone network
is. Its BatchNorm statistics were
accumulated over many paths and fit none of them, so :class:`SupernetAccuracy` re-estimates them
on ``K`` training batches before testing (SPOS, Section 3.3; OFA's "BN calibration").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from evaluators.base import BaseEvaluator, Metric
from evaluators.datasets import Dataset, Holdout, normalise
from evaluators.scorers import ScoreSettings, register_scorer
from evaluators.training.engine import StepLoss
from evaluators.training.sources import epoch_generator
from nas.arch import Arch
from nas.builder import LiteNet, build_model, init_weights, zero_last_bn_of_residuals
from nas.checks import is_int
from nas.complexity import count_macs_conv_linear
from nas.io import read_json_file
from nas.runtime import check_threads, fixed_threads, resolve_device
from search_spaces.layerwise import LayerwiseView, layerwise_view
from search_spaces.ops.slices import centred_cut, mixed_conv_slot
from search_spaces.registry import get_op
from search_spaces.spaces import get_space

__all__ = ["OneShotSupernet", "sandwich_loss", "recalibrate_bn", "SupernetAccuracy",
           "supernet_view", "supernet_holdout", "load_supernet"]

CandidatePath = tuple[int, ...]


@dataclass(frozen=True)
class _Binding:
    """One parameter of a candidate block: which module attribute it is, the shared tensor it is
    cut from (``key`` in its layer's bank) and the cut (leading channels; centred kernel)."""

    module: str
    attr: str
    name: str
    key: str
    cut: tuple[slice, ...]


class OneShotSupernet(nn.Module):
    """``stem -> (all candidates of each searched layer) -> head`` with shared weights.

    Candidates of a layer whose op declares its parts (the registry's ``weight_roles``: expand,
    depthwise, squeeze-excite, project...) share one tensor per part and parameter, of the largest
    shape any of them needs; each candidate uses the leading channels and the centred kernel of it
    (Once-for-All's elastic width and kernel; one path's step trains every candidate that shares
    the slice, which a space of ~140 candidates per layer needs: with separate weights each
    candidate would be trained once in ~140 steps). Other ops keep weights of their own.
    BatchNorm statistics stay per candidate (re-calibrated before scoring anyway).

    ``forward`` runs :attr:`path` when one is set (:meth:`use`), else a path drawn uniformly from
    the global torch RNG (training: a new path every call). Initialised as
    :func:`nas.builder.build_model` initialises a network.
    """

    def __init__(self, view: LayerwiseView):
        super().__init__()
        self.view = view
        self.stem = view.stem.build()
        self.layers = nn.ModuleList(nn.ModuleList(cfg.build() for cfg in layer.configs) for layer in view.layers)
        self.head = view.head.build()
        init_weights(self)  # the builder's scheme, so inherited weights start as a stand-alone network's
        zero_last_bn_of_residuals(op for ops in self.layers for op in ops)
        self.path: CandidatePath | None = None
        self._macs = [[count_macs_conv_linear(op, (layer.in_chs, layer.in_size, layer.in_size)) for op in ops]
                      for layer, ops in zip(view.layers, self.layers, strict=True)]
        self.shared = nn.ModuleList(nn.ParameterDict() for _ in view.layers)
        self._bindings: list[list[list[_Binding]]] = [self._share(i) for i in range(len(view.layers))]

    def _share(self, i: int) -> list[list[_Binding]]:
        """Move the shareable parameters of layer ``i``'s candidates into its bank. The channel
        groups of a mixed-kernel depthwise conv (MixConv) are cut from the same tensor as a plain
        one, each at its channel offset: a mixed kernel is a per-channel choice of kernel."""
        members: dict[str, list[tuple[int, str, torch.Tensor, int]]] = {}
        for k, (cfg, op) in enumerate(zip(self.view.layers[i].configs, self.layers[i], strict=True)):
            roles = get_op(cfg.op).weight_roles
            parts = roles(dict(cfg.args)) if roles else {}
            for name, p in op.named_parameters():
                prefix = next((pre for pre in parts if name.startswith(pre)), None)
                if prefix is None:
                    continue
                shared_name, offset = mixed_conv_slot(op, name)
                key = f"{cfg.op}.{parts[prefix]}.{shared_name[len(prefix):]}.{p.dim()}d".replace(".", "_")
                members.setdefault(key, []).append((k, name, p, offset))
        bank = self.shared[i]
        bindings: list[list[_Binding]] = [[] for _ in self.layers[i]]
        for key, group in members.items():
            full = [max(p.shape[d] + (off if d == 0 else 0) for _, _, p, off in group) for d in range(group[0][2].dim())]
            master = torch.zeros(full)
            for k, name, p, off in sorted(group, key=lambda m: m[2].numel()):  # the largest candidate's values win
                cut = centred_cut(p.shape, full, offset=off)
                master[cut] = p.detach()
                module, _, attr = name.rpartition(".")
                bindings[k].append(_Binding(module, attr, name, key, cut))
            bank[key] = nn.Parameter(master)
        for k, op in enumerate(self.layers[i]):
            for b in bindings[k]:
                del op.get_submodule(b.module)._parameters[b.attr]
        return bindings

    def _bind(self, i: int, k: int) -> None:
        """Point candidate ``k`` of layer ``i`` at its slices of the shared tensors."""
        op, bank = self.layers[i][k], self.shared[i]
        for b in self._bindings[i][k]:
            setattr(op.get_submodule(b.module), b.attr, bank[b.key][b.cut])

    # ----------------------------------------------------------------------------------- paths
    def check_path(self, path: Sequence[int]) -> CandidatePath:
        path = tuple(int(k) for k in path)
        if len(path) != len(self.layers) or any(not 0 <= k < len(ops) for k, ops in zip(path, self.layers,
                                                                                          strict=False)):
            raise ValueError(f"a path has one candidate index per layer ({len(self.layers)}), in range; got {path}")
        return path

    def random_path(self, generator: torch.Generator | None = None) -> CandidatePath:
        """A uniformly drawn path (global RNG unless a generator is given)."""
        return tuple(int(torch.randint(len(ops), (1,), generator=generator)) for ops in self.layers)

    def largest_path(self) -> CandidatePath:
        """The candidate with the most conv+linear MACs in every layer (the sandwich rule's top)."""
        return tuple(max(range(len(m)), key=m.__getitem__) for m in self._macs)

    def smallest_path(self) -> CandidatePath:
        """The candidate with the fewest MACs in every layer."""
        return tuple(min(range(len(m)), key=m.__getitem__) for m in self._macs)

    def use(self, path: Sequence[int] | None) -> OneShotSupernet:
        """Run ``path`` from now on (``None``: a random path per call)."""
        self.path = None if path is None else self.check_path(path)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path = self.path if self.path is not None else self.random_path()
        x = self.stem(x)
        for i, (k, ops) in enumerate(zip(path, self.layers, strict=True)):
            self._bind(i, k)
            x = ops[k](x)
        return self.head(x)

    # ----------------------------------------------------------------------- inherited networks
    def subnet_state_dict(self, path: Sequence[int], state: Mapping[str, torch.Tensor] | None = None) -> dict[
            str, torch.Tensor]:
        """The state dict of ``build_model(view.arch(path))`` with the supernet's weights (of
        ``state``, a state dict of this supernet, when given): ``layers.<l>.<k>.*`` and the
        candidate's slices of ``shared.<l>.*`` become ``blocks.<l>.*``."""
        path = self.check_path(path)
        state = self.state_dict() if state is None else state
        out = {k: v for k, v in state.items() if k.startswith(("stem.", "head."))}
        for i, k in enumerate(path):
            prefix = f"layers.{i}.{k}."
            out.update({f"blocks.{i}.{n[len(prefix):]}": v for n, v in state.items() if n.startswith(prefix)})
            for b in self._bindings[i][k]:
                out[f"blocks.{i}.{b.name}"] = state[f"shared.{i}.{b.key}"][b.cut].clone()
        return out

    def subnet(self, path: Sequence[int]) -> LiteNet:
        """A stand-alone copy of the network at ``path`` with its inherited weights."""
        model = build_model(self.view.arch(path))
        model.load_state_dict(self.subnet_state_dict(path))
        return model


def sandwich_loss(supernet: OneShotSupernet, *, randoms: int = 2, distill: bool = True,
                  label_smoothing: float = 0.1) -> StepLoss:
    """A training-step loss for :class:`~evaluators.training.engine.Trainer`: the largest path on
    the labels, the smallest and ``randoms`` random paths on the labels or, with ``distill``, on the
    largest path's (detached) soft predictions; the sum, so one backward accumulates every path's
    gradient."""

    def loss(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        supernet.use(supernet.largest_path())
        logits = model(x).float()
        total = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
        soft = F.softmax(logits.detach(), dim=1)
        for path in [supernet.smallest_path()] + [supernet.random_path() for _ in range(randoms)]:
            supernet.use(path)
            out = model(x).float()
            total = total + (F.cross_entropy(out, soft) if distill else
                             F.cross_entropy(out, y, label_smoothing=label_smoothing))
        supernet.use(None)
        return total

    return loss


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Sequence[torch.Tensor]) -> None:
    """Re-estimate every BatchNorm's running mean and variance as the plain average over
    ``batches`` (train-mode forwards, no gradient); nothing else changes."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    model.train()
    for x in batches:
        model(x)
    for m, (momentum, _) in zip(bns, saved, strict=True):
        m.momentum = momentum
    model.eval()


class SupernetAccuracy(BaseEvaluator):
    """``top1`` (percent) of a candidate with the weights it inherits from a trained
    :class:`OneShotSupernet`, after BatchNorm re-calibration on ``bn_batches`` batches of the
    training split, on the data's test split (a search passes the split held out of the training
    set). Deterministic given ``seed``. The supernet's weights travel with the evaluator (one copy
    per Ray worker through the object store, not one load per task)."""

    name = "supernet"
    metrics = (Metric("top1", "max", "%", "top-1 with weights inherited from a supernet"),)

    def __init__(self, supernet: OneShotSupernet, data: Dataset, *, identity: dict[str, Any], bn_batches: int = 8,
                 batch_size: int = 128, seed: int = 0, device: str | torch.device = "cpu",
                 threads: int | None = None):
        if not isinstance(data, Dataset):
            raise ValueError(f"data must be a Dataset, got {type(data).__name__}")
        for name, v in (("bn_batches", bn_batches), ("batch_size", batch_size)):
            if not is_int(v) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        self.view = supernet.view
        self.supernet = supernet.cpu().eval()
        self.identity = dict(identity)
        self.data, self.bn_batches, self.batch_size, self.seed = data, bn_batches, batch_size, seed
        self.device = torch.device(device)
        self.threads = check_threads(threads)

    @classmethod
    def from_settings(cls, s: ScoreSettings) -> SupernetAccuracy:
        """``--evaluator supernet``: the trained supernet of ``s.supernet``, checked against the
        search's space, resolution and class count."""
        if s.supernet is None:
            raise ValueError("supernet: the supernet evaluator needs a trained supernet (--supernet)")
        if s.data is None:
            raise ValueError("data: the supernet evaluator re-calibrates BatchNorm and tests on a dataset, not 'none'")
        supernet, identity = load_supernet(s.supernet, space=s.space, resolution=s.resolution or s.data.resolution,
                                           num_classes=s.data.num_classes)
        return cls(supernet, s.data, identity=identity, batch_size=s.batch_size, seed=s.seed, device=s.device,
                   threads=s.threads)

    def config(self) -> dict[str, Any]:
        return {"supernet": self.identity, "data": self.data.describe(), "bn_batches": self.bn_batches,
                "batch_size": self.batch_size, "seed": self.seed,
                **({"device": self.device.type} if self.device.type != "cpu" else {})}

    def check(self, arch: Arch) -> None:
        super().check(arch)
        self.view.indices(arch)  # outside the supernet's part of the space: a bad request

    def _inherited(self, arch: Arch) -> LiteNet:
        model = build_model(arch)
        model.load_state_dict(self.supernet.subnet_state_dict(self.view.indices(arch)))
        return model

    def compute(self, arch: Arch) -> tuple[dict[str, float], dict[str, Any]]:
        device = resolve_device(self.device)
        mean, std = self.data.mean_std
        gen = epoch_generator(self.seed, 0)
        n = len(self.data.train)
        idx = torch.randperm(n, generator=gen)[: self.bn_batches * self.batch_size].numpy()
        # Copies of the batches (numpy indexing copies): the data's arrays may be read-only views
        # (Ray's object store), which torch tensors must not share.
        images = torch.from_numpy(self.data.train.images[idx])
        with fixed_threads(self.threads):
            model = self._inherited(arch).to(device)
            batches = [normalise(images[i:i + self.batch_size].to(device), mean, std)
                       for i in range(0, len(idx), self.batch_size)]
            recalibrate_bn(model, batches)
            correct = 0
            test_x, test_y = self.data.test.images, self.data.test.labels
            with torch.no_grad():
                for i in range(0, len(test_y), 500):
                    logits = model(normalise(torch.tensor(test_x[i:i + 500], device=device), mean, std))
                    correct += int((logits.argmax(1).cpu() == torch.tensor(test_y[i:i + 500])).sum())
        return {"top1": 100.0 * correct / len(test_y)}, {"bn_images": len(idx)}


def supernet_view(space: str, resolution: int, num_classes: int) -> LayerwiseView:
    """The layer-wise view a supernet of ``space`` at ``resolution`` holds."""
    return layerwise_view(get_space(space, resolution=resolution, num_classes=num_classes))


def _trained_identity(run: Path) -> dict[str, Any]:
    """The identity in the ``config.json`` of the ``nas supernet train`` directory ``run``; a missing
    or malformed file is a ``ValueError`` naming it."""
    if not run.is_dir():
        raise ValueError(f"supernet: {run}: no such directory (give a `nas supernet train` run directory)")
    config = read_json_file(run / "config.json", "the config of a `nas supernet train` run")
    try:
        identity = config["identity"]
        trained = identity["supernet"]
        if trained["holdout"] is not None:
            Holdout(**trained["holdout"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"supernet: {run} is not a `nas supernet train` directory (config.json: {exc!r})") from None
    return identity


def supernet_holdout(run_dir: str | Path) -> Holdout | None:
    """The training images the supernet of ``run_dir`` never trained on (a search ranks on them);
    ``None`` for a supernet trained on synthetic data."""
    held = _trained_identity(Path(run_dir))["supernet"]["holdout"]
    return None if held is None else Holdout(**held)


def load_supernet(run_dir: str | Path, *, space: str, resolution: int, num_classes: int) -> tuple[OneShotSupernet,
                                                                                                   dict[str, Any]]:
    """The trained supernet of a ``nas supernet train`` directory and its identity; ``ValueError``
    naming both sides when it covers another space, resolution or class count than the search."""
    run = Path(run_dir)
    identity = _trained_identity(run)
    trained = identity["supernet"]
    mine = {"space": space, "resolution": resolution, "num_classes": num_classes}
    theirs = {k: trained.get(k) for k in mine}
    if mine != theirs:
        diff = ", ".join(f"{k} {theirs[k]} (supernet) vs {mine[k]} (search)" for k in mine if mine[k] != theirs[k])
        raise ValueError(f"supernet: {run} was trained for another task: {diff}")
    if not (run / "weights.pt").is_file():
        raise ValueError(f"supernet: {run} has no weights.pt yet (train at least one epoch)")
    supernet = OneShotSupernet(supernet_view(space, resolution, num_classes))
    weights = run / "weights.pt"
    try:
        supernet.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged or foreign file
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"supernet: {weights}: not readable as the weights of this supernet, the file may be "
                         f"damaged ({type(exc).__name__}: {first})") from None
    return supernet, {**trained, "recipe": identity.get("recipe"), "data": identity.get("data")}


register_scorer("supernet", SupernetAccuracy.from_settings, "inherited weights of a trained one-shot supernet (--supernet)")
