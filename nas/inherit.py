"""Weight inheritance: start a network from the trained weights of another one it resembles.

A searched network rarely has a trained twin, but it shares most of its structure with a trained
network of its space (a fixed point, an earlier candidate): the same ops at the same places, at
most as wide, with kernels at most as large. :func:`inherit` copies every tensor whose layer and
shape correspond, cut as Once-for-All cuts a sub-network out of its full network (leading
channels, centred kernel: :mod:`search_spaces.ops.slices`), and leaves the rest as initialised.

Which layer corresponds to which is decided on the descriptions alone, in three steps:

1. **Stem to stem, head to head**, when both use the same op (a head's classifier only when
   both predict the same number of classes: a classifier of other classes is not a start).
2. **Blocks by stage and position.** The body is cut into stages: a stage starts at the first
   block and at every block that changes the shape of the map (channels or size), and goes on
   over the shape-keeping blocks after it (MobileNetV2's stages, a ShuffleNet unit and its
   repeats). Stage ``s`` of one network meets stage ``s`` of the other, and there block ``j``
   meets block ``j`` (Once-for-All's elastic depth keeps the first blocks of each stage). Blocks
   of different ops do not correspond.
3. **Parts by role.** Inside two corresponding blocks, parts meet by the role the registry gives
   them (``OpSpec.weight_roles``: expand, depthwise, squeeze-excite, project...), not by position,
   so an optional part present in only one of them (squeeze-excite, a channel shuffle) shifts
   nothing; ops that declare no roles meet tensor by tensor under the same name. A tensor is
   copied when it fits inside its counterpart (:func:`~search_spaces.ops.slices.fits_inside`),
   BatchNorm statistics included (their step counters are not copied); a wider or
   larger-kernel one keeps its initialisation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas.arch import Arch, Block, LayerInfo
from nas.builder import build_model
from search_spaces.ops.slices import centred_cut, fits_inside, mixed_conv_slot

__all__ = ["Inheritance", "block_stages", "corresponding_layers", "inherit"]

_CLASSIFIER = "classifier."  # under the head


@dataclass(frozen=True)
class Inheritance:
    """What :func:`inherit` copied.

    Attributes:
        state: the target's complete state dict, inherited tensors in place.
        keys: the target's state-dict keys that were inherited.
        params_inherited: parameter elements (not buffers) copied from the source.
        params_total: the target's parameter elements.
    """

    state: dict[str, torch.Tensor]
    keys: tuple[str, ...]
    params_inherited: int
    params_total: int

    @property
    def fraction(self) -> float:
        """Share of the target's parameters that were inherited."""
        return self.params_inherited / self.params_total if self.params_total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the tensors)."""
        return {"params_inherited": self.params_inherited, "params_total": self.params_total,
                "fraction": round(self.fraction, 4), "tensors": len(self.keys)}


def block_stages(arch: Arch) -> list[list[LayerInfo]]:
    """The body blocks of ``arch`` cut into stages: a new stage at the first block and at every
    block whose output map differs from its input map in channels or size."""
    stages: list[list[LayerInfo]] = []
    for info in arch.layers():
        if info.role != "block":
            continue
        keeps_shape = info.in_chs == info.out_chs and info.in_size == info.out_size
        if not stages or not keeps_shape:
            stages.append([])
        stages[-1].append(info)
    return stages


def corresponding_layers(target: Arch, source: Arch) -> Iterator[tuple[str, Block, str, Block]]:
    """``(target module path, its description, source module path, its description)`` of every
    pair of corresponding layers (same op; stem, head, and blocks by stage and position)."""
    if target.stem.op == source.stem.op:
        yield "stem", target.stem, "stem", source.stem
    for mine, theirs in zip(block_stages(target), block_stages(source), strict=False):
        for a, b in zip(mine, theirs, strict=False):
            if a.block.op == b.block.op:
                yield f"blocks.{a.index}", a.block, f"blocks.{b.index}", b.block
    if target.head.op == source.head.op:
        yield "head", target.head, "head", source.head


def _pieces(module: nn.Module, block: Block) -> dict[tuple[str, str], list[tuple[int, str, torch.Tensor]]]:
    """The tensors of one layer's module keyed by ``(role, name within the part)``: each entry a
    list of ``(channel offset, state-dict name, tensor)`` (several for the channel groups of a
    mixed-kernel conv, one otherwise). Ops without declared roles have one part, ``""``."""
    parts = block.spec.weight_roles(block.kwargs) if block.spec.weight_roles else {"": ""}
    out: dict[tuple[str, str], list[tuple[int, str, torch.Tensor]]] = {}
    for name, tensor in module.state_dict().items():
        prefix = next((pre for pre in parts if name.startswith(pre)), None)
        if prefix is None:  # a part without a role (a shortcut projection): no counterpart
            continue
        shared, offset = mixed_conv_slot(module, name)
        out.setdefault((parts[prefix], shared[len(prefix):]), []).append((offset, name, tensor))
    return out


def _cut_from(tensor: torch.Tensor, offset: int, sources: list[tuple[int, str, torch.Tensor]]) -> torch.Tensor | None:
    """``tensor``'s counterpart cut out of the first source piece it fits inside, or ``None``."""
    for start, _, src in sources:
        if fits_inside(tensor.shape, src.shape, offset=offset - start):
            return src[centred_cut(tensor.shape, src.shape, offset=offset - start)]
    return None


def inherit(target: Arch, source: Arch, source_state: Mapping[str, torch.Tensor], *,
            target_state: Mapping[str, torch.Tensor] | None = None) -> Inheritance:
    """The state dict of ``target`` with every tensor that corresponds to one of ``source``'s
    (see the module docstring) cut out of ``source_state``; the rest from ``target_state`` (an
    initialised network's, default: a fresh ``build_model(target)``'s).

    Raises ``ValueError`` when ``source_state`` is not a state dict of ``source``."""
    source_model = build_model(source)
    try:
        source_model.load_state_dict(source_state)
    except RuntimeError as exc:
        raise ValueError(f"the source weights do not fit the source description: {str(exc).splitlines()[0]}") from None
    target_model = build_model(target)
    if target_state is not None:
        target_model.load_state_dict(target_state)
    state = {k: v.detach().clone() for k, v in target_model.state_dict().items()}
    same_classes = target.num_classes == source.num_classes
    keys: list[str] = []
    for mine, block, theirs, their_block in corresponding_layers(target, source):
        available = _pieces(source_model.get_submodule(theirs), their_block)
        for key, pieces in _pieces(target_model.get_submodule(mine), block).items():
            if mine == "head" and key[1].startswith(_CLASSIFIER) and not same_classes:
                continue
            for offset, name, tensor in pieces:
                if tensor.dim() == 0:  # a BatchNorm's step count, meaningful with its statistics only
                    continue
                cut = _cut_from(tensor, offset, available.get(key, []))
                if cut is not None:
                    state[f"{mine}.{name}"] = cut.detach().clone().to(tensor.dtype)
                    keys.append(f"{mine}.{name}")
    params = dict(target_model.named_parameters())
    return Inheritance(state=state, keys=tuple(keys),
                       params_inherited=sum(params[k].numel() for k in keys if k in params),
                       params_total=sum(p.numel() for p in params.values()))

