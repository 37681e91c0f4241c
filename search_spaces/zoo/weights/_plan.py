"""The mapping between our state dict and a reference library's, as data.

A source layout (one module per library) names, for every parameterised part of one of our
networks, the module of the reference implementation that holds the same weights: a list of
:class:`Rename` (our module path -> reference module path), produced by walking the
description's stem, blocks and head and each block's parts by their role (the registry's
``weight_roles``), never by registration order. :func:`links` expands the renames into
per-tensor :class:`Link` objects by looking at our modules, which is where the layout
conversions are decided:

- ``same``: the tensor is stored identically (BatchNorm buffers included, down to
  ``num_batches_tracked``);
- ``split``: our grouped 1x1 conv is the reference's list of per-group convs (timm's MixNet
  holds ``conv_pw.0``, ``conv_pw.1`` where we hold one ``groups=2`` conv): ours is their
  concatenation along the output channels;
- ``conv1x1``: our linear layer is the reference's 1x1 conv on a pooled map (timm's GhostNet
  ``conv_head``): the same matrix with two trailing unit dimensions;
- ``eps``: the reference's BatchNorm adds another epsilon to the variance than ours
  (torchvision's MobileNetV3: 1e-3, ours 1e-5); the difference is folded into ``running_var``,
  which gives the same eval-mode output (``(x - mean) / sqrt(var + eps)`` is unchanged).

:func:`to_ours` and :func:`to_reference` apply the links in either direction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from nas.arch import Arch, Block
from search_spaces.ops.layers import MixedConv2d


@dataclass(frozen=True)
class Rename:
    """Our module ``ours`` holds what the reference keeps in module ``ref``.

    ``kind``: ``same``; ``split`` (the reference keeps a grouped 1x1 conv as one conv per group,
    ``ref.0``, ``ref.1``...; an ungrouped conv stays ``same``); ``conv1x1`` (our linear layer is
    the reference's 1x1 conv). ``eps``: the epsilon of the reference's BatchNorm, where it is not
    ours (``None``: the same).
    """

    ours: str
    ref: str
    kind: str = "same"
    eps: float | None = None


@dataclass(frozen=True)
class Link:
    """Our tensor ``ours`` is made of the reference tensors ``refs`` (see the module docstring);
    ``shift``: what kind ``eps`` adds to the reference's running variance."""

    ours: str
    refs: tuple[str, ...]
    kind: str = "same"
    shift: float = 0.0


def role_paths(block: Block, prefix: str) -> dict[str, str]:
    """``{role: module path}`` of the parts of ``block`` (built at module path ``prefix``), from
    the registry's ``weight_roles``."""
    roles = block.spec.weight_roles
    if roles is None:
        raise ValueError(f"op {block.op!r} declares no weight roles")
    return {role: f"{prefix}.{part.rstrip('.')}" for part, role in roles(block.kwargs).items()}


def parameterised_blocks(arch: Arch) -> Iterator[tuple[int, Block]]:
    """``(index, block)`` of the body blocks that hold weights: an identity ``skip`` (same width,
    stride 1) and a max-pool have none and no counterpart in the reference libraries."""
    for info in arch.layers():
        if info.role != "block" or info.block.op == "mp":
            continue
        if info.block.op == "skip" and info.block["stride"] == 1 and info.in_chs == info.out_chs:
            continue
        yield info.index, info.block


def shuffle_units(arch: Arch, library: str) -> Iterator[tuple[int, int, int]]:
    """``(index, stage, unit)`` of each ShuffleNetV2 unit of ``arch`` as the reference libraries
    number them: a new stage at each stride-2 unit (``stage`` 1 for the first), ``unit`` its
    position in the stage from 0. ``ValueError`` naming ``library`` for a block that is not a
    ShuffleNetV2 unit or a head without its 1x1 conv (``hc``)."""
    if arch.head.op != "hc":
        raise ValueError(f"{library}'s ShuffleNetV2 layout has a conv head (hc), not {arch.head.op!r}")
    stage, unit = 0, 0
    for i, block in parameterised_blocks(arch):
        if block.op != "shuffle":
            raise ValueError(f"{library}'s ShuffleNetV2 layout has no {block.op!r} block")
        if block["stride"] == 2:
            stage, unit = stage + 1, 0
        yield i, stage, unit
        unit += 1


def conv_bn(ours: str, conv: str, bn: str, kind: str = "same", eps: float | None = None) -> list[Rename]:
    """A conv-BN pair of ours (``ours.conv``, ``ours.bn``) held as ``conv`` and ``bn`` (whose
    epsilon is ``eps``, ``None``: ours)."""
    return [Rename(f"{ours}.conv", conv, kind), Rename(f"{ours}.bn", bn, eps=eps)]


def _submodule(model: nn.Module, path: str) -> nn.Module | None:
    try:
        return model.get_submodule(path)
    except AttributeError:
        return None


def _expand(module: nn.Module, rename: Rename) -> list[Link]:
    o, r = rename.ours, rename.ref
    if isinstance(module, MixedConv2d):
        return [Link(f"{o}.convs.{j}.weight", (f"{r}.{j}.weight",)) for j in range(len(module.convs))]
    if rename.kind == "split" and isinstance(module, nn.Conv2d) and module.groups > 1:
        if module.groups == module.in_channels or module.kernel_size != (1, 1) or module.bias is not None:
            raise ValueError(f"{o}: only grouped 1x1 convs without bias are held split, got {module}")
        return [Link(f"{o}.weight", tuple(f"{r}.{j}.weight" for j in range(module.groups)), "split")]
    if rename.eps is not None and isinstance(module, nn.BatchNorm2d) and rename.eps != module.eps:
        shift = rename.eps - module.eps
        return [Link(f"{o}.{k}", (f"{r}.{k}",), "eps", shift) if k == "running_var" else Link(f"{o}.{k}", (f"{r}.{k}",))
                for k in module.state_dict()]
    if rename.kind == "conv1x1" and not isinstance(module, nn.Linear):
        raise ValueError(f"{o}: the conv1x1 layout needs a linear layer, got {type(module).__name__}")
    out = []
    for key in module.state_dict():
        kind = "conv1x1" if rename.kind == "conv1x1" and key == "weight" else "same"
        out.append(Link(f"{o}.{key}", (f"{r}.{key}",), kind))
    return out


def links(model: nn.Module, renames: Iterable[Rename]) -> list[Link]:
    """Per-tensor links of ``renames`` over ``model``; renames of parts ``model`` lacks (no SE in
    this block, an identity shortcut) are dropped. Raises ``RuntimeError`` when the renames do not
    cover every tensor of ``model`` exactly once (a layout that misses a part: a bug here)."""
    out: list[Link] = []
    for rename in renames:
        module = _submodule(model, rename.ours)
        if module is not None:
            out.extend(_expand(module, rename))
    own = list(model.state_dict())
    mapped = Counter(link.ours for link in out)
    missed = [k for k in own if k not in mapped]
    extra = sorted(set(mapped) - set(own)) + sorted(k for k, n in mapped.items() if n > 1)
    if missed or extra:
        raise RuntimeError(f"weight layout does not cover the model: unmapped {missed[:5]}, "
                           f"unknown or repeated {extra[:5]}")
    order = {k: i for i, k in enumerate(own)}
    return sorted(out, key=lambda link: order[link.ours])


def combine(link: Link, parts: list[torch.Tensor]) -> torch.Tensor:
    """Our tensor from the reference tensors of ``link`` (may raise ``RuntimeError`` on shapes)."""
    if link.kind == "split":
        return torch.cat(parts, dim=0)
    (t,) = parts
    if link.kind == "eps":
        return t + link.shift
    if link.kind == "conv1x1":
        if t.dim() != 4 or t.shape[2:] != (1, 1):
            raise RuntimeError(f"expected a 1x1 conv weight, got shape {list(t.shape)}")
        return t.flatten(1)
    return t


def separate(link: Link, tensor: torch.Tensor) -> list[torch.Tensor]:
    """The reference tensors of ``link`` from our tensor (the inverse of :func:`combine`)."""
    if link.kind == "split":
        return [t.clone() for t in torch.chunk(tensor, len(link.refs), dim=0)]
    if link.kind == "conv1x1":
        return [tensor[:, :, None, None].clone()]
    if link.kind == "eps":  # a variance below the shift (never after import) has no exact counterpart
        return [(tensor - link.shift).clamp_min(0.0)]
    return [tensor.clone()]


def to_reference(plan: list[Link], ours: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reference state dict of our state dict ``ours`` (every key of ``plan`` must be there)."""
    out: dict[str, torch.Tensor] = {}
    for link in plan:
        out.update(zip(link.refs, separate(link, ours[link.ours]), strict=True))
    return out

