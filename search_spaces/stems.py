"""The stems that search spaces and zoo families build, in one vocabulary.

- ``conv``: a 3x3 conv-BN-act at stride 2, the ImageNet stem of MobileNetV2/V3, MnasNet,
  EfficientNet, MixNet, FBNet, GhostNet and ShuffleNetV2;
- ``conv_s1``: the same at stride 1, the stem of the CIFAR networks (32x32 inputs);
- ``hybrid``: the padding-free paper's stride-1 stem (op ``hybrid``,
  ``shared/reference/padding_free.md``).

The ``mobile`` space offers these kinds as a choice, the zoo's builders take them as a setting,
and :func:`stem_kind` reads a kind back from a block (the space's encoder).
"""

from __future__ import annotations

from nas.arch import Block

__all__ = ["STEM_KINDS", "stem_block", "stem_kind"]

STEM_KINDS = ("conv", "conv_s1", "hybrid")


def stem_block(kind: str, width: int, act: str = "relu") -> Block:
    """The stem of ``kind`` (:data:`STEM_KINDS`), ``width`` channels wide with activation ``act``;
    ``ValueError`` naming the kinds for another one."""
    if kind == "hybrid":
        return Block.make("hybrid", out_chs=width, act=act)
    if kind in ("conv", "conv_s1"):
        return Block.make("cn", out_chs=width, kernel=3, stride=2 if kind == "conv" else 1, act=act)
    raise ValueError(f"stem must be one of {', '.join(STEM_KINDS)}, got {kind!r}")


def stem_kind(block: Block) -> str | None:
    """The kind of ``block`` when it is a stem :func:`stem_block` builds (of its own width and
    activation), else ``None``."""
    if block.op == "hybrid":
        kind = "hybrid"
    elif block.op == "cn":
        kind = "conv_s1" if block["stride"] == 1 else "conv"
    else:
        return None
    return kind if block == stem_block(kind, block["out_chs"], block["act"]) else None
