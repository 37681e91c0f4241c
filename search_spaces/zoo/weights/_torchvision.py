"""torchvision's state-dict layout (``torchvision.models.mobilenetv2/mobilenetv3/shufflenetv2``).

- MobileNetV2/V3: ``features.0`` is the stem, ``features.<i+1>`` our block ``i`` (the final 1x1
  conv included), each conv-BN-act a ``Sequential`` (``.0`` conv, ``.1`` BN). Inside a block
  the parts are numbered in order of presence: V2 ``conv.<j>`` (the projection's conv and BN
  are two entries), V3 ``block.<j>`` (expand, dw, SE with ``fc1``/``fc2``, project). V2's head
  conv is the last ``features`` entry and its classifier ``classifier.1``; V3's hidden layer is
  ``classifier.0`` and its classifier ``classifier.3``, and its BatchNorms use epsilon 1e-3
  (ours 1e-5), folded into the running variance.
- ShuffleNetV2: ``conv1`` stem, stages ``stage2..4`` (a new stage at each stride-2 unit) of
  units with ``branch1`` (stride-2 side branch: dw conv, BN, 1x1 conv, BN) and ``branch2``
  (1x1 conv, BN, [ReLU], dw conv, BN, 1x1 conv, BN), ``conv5`` head conv, ``fc``.
"""

from __future__ import annotations

from collections.abc import Callable

from nas.arch import Arch, Block
from search_spaces.zoo.weights._plan import Rename, conv_bn, parameterised_blocks, role_paths, shuffle_units

_MOBILENET_V3_BN_EPS = 1e-3
"""torchvision's MobileNetV3 BatchNorm epsilon (ours is 1e-5): folded into ``running_var``."""


def _cna(ours: str, ref: str, eps: float | None = None) -> list[Rename]:
    """A conv-BN-act of ours held as torchvision's ``Conv2dNormActivation`` (``.0``, ``.1``)."""
    return conv_bn(ours, f"{ref}.0", f"{ref}.1", eps=eps)


def _v2_block(block: Block, ours: str, ref: str) -> list[Rename]:
    parts = role_paths(block, ours)
    if block.op == "ds":
        return [*_cna(f"{parts['dw']}.dw", f"{ref}.conv.0"), *conv_bn(parts["pw"], f"{ref}.conv.1", f"{ref}.conv.2")]
    if block.op == "ir":
        return [
            *_cna(parts["expand"], f"{ref}.conv.0"),
            *_cna(f"{parts['dw']}.dw", f"{ref}.conv.1"),
            *conv_bn(parts["proj"], f"{ref}.conv.2", f"{ref}.conv.3"),
        ]
    raise ValueError(f"torchvision's MobileNetV2 layout has no {block.op!r} block")


def mobilenet_v2(arch: Arch) -> list[Rename]:
    """Renames for torchvision's MobileNetV2."""
    if arch.head.op != "hc":
        raise ValueError(f"torchvision's MobileNetV2 layout has a conv head (hc), not {arch.head.op!r}")
    out = _cna("stem", "features.0")
    body = list(parameterised_blocks(arch))
    for j, (i, block) in enumerate(body, start=1):
        out += _v2_block(block, f"blocks.{i}", f"features.{j}")
    out += [*_cna("head.pre", f"features.{len(body) + 1}"), Rename("head.classifier", "classifier.1")]
    return out


def _v3_block(block: Block, ours: str, ref: str) -> list[Rename]:
    if block.op == "cn":
        return _cna(ours, ref, _MOBILENET_V3_BN_EPS)
    if block.op not in ("ir", "ds"):
        raise ValueError(f"torchvision's MobileNetV3 layout has no {block.op!r} block")
    out = []
    for j, (role, path) in enumerate(role_paths(block, ours).items()):
        part = f"{ref}.block.{j}"
        if role == "se":
            out += [Rename(f"{path}.conv_reduce", f"{part}.fc1"), Rename(f"{path}.conv_expand", f"{part}.fc2")]
        else:
            out += _cna(f"{path}.dw" if role == "dw" else path, part, _MOBILENET_V3_BN_EPS)
    return out


def mobilenet_v3(arch: Arch) -> list[Rename]:
    """Renames for torchvision's MobileNetV3."""
    if arch.head.op != "hp" or not arch.head["hidden"]:
        raise ValueError("torchvision's MobileNetV3 layout has a pooled head with a hidden layer (hp with hidden)")
    out = _cna("stem", "features.0", _MOBILENET_V3_BN_EPS)
    for j, (i, block) in enumerate(parameterised_blocks(arch), start=1):
        out += _v3_block(block, f"blocks.{i}", f"features.{j}")
    out += [Rename("head.hidden.0", "classifier.0"), Rename("head.classifier", "classifier.3")]
    return out


def _unit(ours: str, ref: str) -> list[Rename]:
    return [
        *conv_bn(f"{ours}.branch_proj.0", f"{ref}.branch1.0", f"{ref}.branch1.1"),
        *conv_bn(f"{ours}.branch_proj.1", f"{ref}.branch1.2", f"{ref}.branch1.3"),
        *conv_bn(f"{ours}.branch_main.0", f"{ref}.branch2.0", f"{ref}.branch2.1"),
        *conv_bn(f"{ours}.branch_main.1", f"{ref}.branch2.3", f"{ref}.branch2.4"),
        *conv_bn(f"{ours}.branch_main.2", f"{ref}.branch2.5", f"{ref}.branch2.6"),
    ]


def shufflenet_v2(arch: Arch) -> list[Rename]:
    """Renames for torchvision's ShuffleNetV2 (stages numbered from 2, as the paper's table)."""
    out = _cna("stem", "conv1")
    for i, stage, unit in shuffle_units(arch, "torchvision"):
        out += _unit(f"blocks.{i}", f"stage{stage + 1}.{unit}")
    out += [*_cna("head.pre", "conv5"), Rename("head.classifier", "fc")]
    return out


LAYOUTS: dict[str, Callable[[Arch], list[Rename]]] = {
    "mobilenet_v2": mobilenet_v2,
    "mobilenet_v3": mobilenet_v3,
    "shufflenet_v2": shufflenet_v2,
}
