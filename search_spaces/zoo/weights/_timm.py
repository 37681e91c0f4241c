"""timm's state-dict layout (``timm.models.efficientnet`` builder and ``timm.models.ghostnet``).

Both keep ``conv_stem``/``bn1`` for the stem and ``blocks.<stage>.<block>`` for the body.

- EfficientNet builder (MobileNetV2, MnasNet, FBNet, MixNet, EfficientNet): a stage is one row
  group of the ``arch_def``; its blocks share an output width and only its first may have stride
  2, so a new stage starts at a stride-2 block or where the width changes (narrow MobileNetV2s
  round consecutive stages to the same width, so the width alone does not tell). Inverted residual parts: ``conv_pw``/``bn1``, ``conv_dw``/``bn2``, ``se``,
  ``conv_pwl``/``bn3``; depthwise-separable: ``conv_dw``/``bn1``, ``se``, ``conv_pw``/``bn2``;
  head ``conv_head``/``bn2``, ``classifier``. A mixed-kernel conv keeps one conv per kernel
  (``conv_dw.0``...), and so does a grouped 1x1 conv (MixNet's ``a1.1``/``p1.1``: split).
- GhostNet: every stride-2 bottleneck is a stage of its own (timm's ``cfgs``), the final 1x1
  conv-BN-act is the last stage (``blocks.<n>.0.conv``/``bn1``), and the head's hidden layer is
  the 1x1 ``conv_head`` with bias on the pooled map (our linear: ``conv1x1``).
"""

from __future__ import annotations

from collections.abc import Callable

from nas.arch import Arch, Block
from search_spaces.zoo.weights._plan import Rename, conv_bn, parameterised_blocks, role_paths

_STEM = [*conv_bn("stem", "conv_stem", "bn1")]


def _effnet_block(block: Block, ours: str, ref: str) -> list[Rename]:
    parts = role_paths(block, ours)
    if block.op == "ir":
        return [
            *conv_bn(parts["expand"], f"{ref}.conv_pw", f"{ref}.bn1", "split"),
            *conv_bn(f"{parts['dw']}.dw", f"{ref}.conv_dw", f"{ref}.bn2"),
            *([Rename(parts["se"], f"{ref}.se")] if "se" in parts else []),
            *conv_bn(parts["proj"], f"{ref}.conv_pwl", f"{ref}.bn3", "split"),
        ]
    if block.op == "ds":
        return [
            *conv_bn(f"{parts['dw']}.dw", f"{ref}.conv_dw", f"{ref}.bn1"),
            *([Rename(parts["se"], f"{ref}.se")] if "se" in parts else []),
            *conv_bn(parts["pw"], f"{ref}.conv_pw", f"{ref}.bn2"),
        ]
    raise ValueError(f"timm's EfficientNet layout has no {block.op!r} block")


def effnet(arch: Arch) -> list[Rename]:
    """Renames for timm's EfficientNet-builder networks."""
    if arch.head.op != "hc":
        raise ValueError(f"timm's EfficientNet layout has a conv head (hc), not {arch.head.op!r}")
    out = list(_STEM)
    stage, index, width = -1, 0, None
    for i, block in parameterised_blocks(arch):
        if block["out_chs"] != width or block["stride"] == 2:
            stage, index, width = stage + 1, 0, block["out_chs"]
        out += _effnet_block(block, f"blocks.{i}", f"blocks.{stage}.{index}")
        index += 1
    out += [*conv_bn("head.pre", "conv_head", "bn2"), Rename("head.classifier", "classifier")]
    return out


def _ghost_module(ours: str, ref: str) -> list[Rename]:
    return [
        *conv_bn(f"{ours}.primary_conv", f"{ref}.primary_conv.0", f"{ref}.primary_conv.1"),
        *conv_bn(f"{ours}.cheap_operation", f"{ref}.cheap_operation.0", f"{ref}.cheap_operation.1"),
    ]


def _ghost_block(ours: str, ref: str) -> list[Rename]:
    return [
        *_ghost_module(f"{ours}.ghost1", f"{ref}.ghost1"),
        *conv_bn(f"{ours}.conv_dw.dw", f"{ref}.conv_dw", f"{ref}.bn_dw"),
        Rename(f"{ours}.se", f"{ref}.se"),
        *_ghost_module(f"{ours}.ghost2", f"{ref}.ghost2"),
        *conv_bn(f"{ours}.shortcut.0", f"{ref}.shortcut.0", f"{ref}.shortcut.1"),
        *conv_bn(f"{ours}.shortcut.1", f"{ref}.shortcut.2", f"{ref}.shortcut.3"),
    ]


def ghostnet(arch: Arch) -> list[Rename]:
    """Renames for timm's GhostNet."""
    if arch.head.op != "hp" or not arch.head["hidden"]:
        raise ValueError("timm's GhostNet layout has a pooled head with a hidden layer (hp with hidden)")
    out = list(_STEM)
    stage, index, after_stride2 = -1, 0, True
    for i, block in parameterised_blocks(arch):
        if block.op == "ghost":
            stride2 = block["stride"] == 2
            if stride2 or after_stride2:
                stage, index = stage + 1, 0
            out += _ghost_block(f"blocks.{i}", f"blocks.{stage}.{index}")
            index, after_stride2 = index + 1, stride2
        elif block.op == "cn" and i == len(arch.blocks) - 1:
            out += conv_bn(f"blocks.{i}", f"blocks.{stage + 1}.0.conv", f"blocks.{stage + 1}.0.bn1")
        else:
            raise ValueError(f"timm's GhostNet layout has no {block.op!r} block at position {i}")
    out += [Rename("head.hidden.0", "conv_head", "conv1x1"), Rename("head.classifier", "classifier")]
    return out


LAYOUTS: dict[str, Callable[[Arch], list[Rename]]] = {
    "mobilenet_v2": effnet,
    "mnasnet": effnet,
    "fbnet": effnet,
    "mixnet": effnet,
    "efficientnet": effnet,
    "ghostnet": ghostnet,
}
