"""pytorchcv's state-dict layout (osmr/imgclsmob: ``shufflenetv2b``, ``hardnet``).

Every conv-BN-act is a ``ConvBlock`` (``.conv``, ``.bn``); the body is ``features.stage<s>.unit<u>``
(1-based), the classifier ``output`` (``output.fc`` for HarDNet).

- ShuffleNetV2b: ``features.init_block.conv`` stem, a new stage at each stride-2 unit; a unit's
  main branch is ``conv1``, ``dconv``, ``conv2`` and its stride-2 side branch ``shortcut_dconv``,
  ``shortcut_conv`` (registered after the main branch: the order differs from ours, the
  function does not); ``features.final_block`` head conv.
- HarDNet-DS: ``features.init_block`` holds the stem (``conv1``), the 1x1 conv (``conv2``) and
  the depthwise stride-2 conv (``downsample``); each harmonic block is ``stage<s>.unit1``, its
  layers ``blocks.block<k>`` (``pw_conv``, ``dw_conv``), then the transition ``conv`` and, where
  the stage downsamples, ``downsample``.
"""

from __future__ import annotations

from collections.abc import Callable

from nas.arch import Arch
from search_spaces.zoo.weights._plan import Rename, conv_bn, parameterised_blocks, shuffle_units


def _block(ours: str, ref: str) -> list[Rename]:
    """A conv-BN(-act) of ours held as pytorchcv's ``ConvBlock`` ``ref``."""
    return conv_bn(ours, f"{ref}.conv", f"{ref}.bn")


def shufflenet_v2b(arch: Arch) -> list[Rename]:
    """Renames for pytorchcv's ShuffleNetV2 / V2b."""
    out = _block("stem", "features.init_block.conv")
    for i, stage, unit in shuffle_units(arch, "pytorchcv"):
        ours, ref = f"blocks.{i}", f"features.stage{stage}.unit{unit + 1}"
        out += [
            *_block(f"{ours}.branch_main.0", f"{ref}.conv1"),
            *_block(f"{ours}.branch_main.1", f"{ref}.dconv"),
            *_block(f"{ours}.branch_main.2", f"{ref}.conv2"),
            *_block(f"{ours}.branch_proj.0", f"{ref}.shortcut_dconv"),
            *_block(f"{ours}.branch_proj.1", f"{ref}.shortcut_conv"),
        ]
    out += [*_block("head.pre", "features.final_block"), Rename("head.classifier", "output")]
    return out


def hardnet(arch: Arch) -> list[Rename]:
    """Renames for pytorchcv's HarDNet (depthwise-separable flavour): a stage is the run of
    harmonic blocks up to a downsampling, each block with its transition a unit."""
    if arch.stem.op != "cn" or arch.head.op != "hp" or arch.head["hidden"]:
        raise ValueError("pytorchcv's HarDNet layout has a conv stem and a pooled head without a hidden layer")
    out = _block("stem", "features.init_block.conv1")
    where, stage, unit, new_stage = "features.init_block", 0, 0, True
    for i, block in parameterised_blocks(arch):
        ours = f"blocks.{i}"
        if block.op == "hardnet":
            stage, unit = (stage + 1, 1) if new_stage else (stage, unit + 1)
            where, new_stage = f"features.stage{stage}.unit{unit}", False
            for k in range(block["layers"]):
                layer = f"{where}.blocks.block{k + 1}"
                out += [*_block(f"{ours}.layers.{k}.0", f"{layer}.pw_conv"),
                        *_block(f"{ours}.layers.{k}.1", f"{layer}.dw_conv")]
        elif block.op == "cn" and block["kernel"] == 1:
            out += _block(ours, f"{where}.conv2" if stage == 0 else f"{where}.conv")
        elif block.op == "cn" and block["stride"] == 2 and block["groups"] == block["out_chs"]:
            out += _block(ours, f"{where}.downsample")
            new_stage = True
        else:
            raise ValueError(f"pytorchcv's HarDNet layout has no such block at position {i} ({block.op})")
    out.append(Rename("head.classifier", "output.fc"))
    return out


LAYOUTS: dict[str, Callable[[Arch], list[Rename]]] = {
    "shufflenet_v2": shufflenet_v2b,
    "hardnet": hardnet,
}
