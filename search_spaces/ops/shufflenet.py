"""ShuffleNetV2 unit (Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN
Architecture Design", ECCV 2018), one op ``shuffle`` whose variants are arguments.

- Stride 1: channel split in halves; the first half passes through, the second goes through
  1x1 conv-BN-act, depthwise kxk conv-BN, 1x1 conv-BN-act; concatenate; channel shuffle (2 groups).
- Stride 2: no split; two branches over the whole input, ``dw kxk-BN, 1x1-BN-act`` and
  ``1x1-BN-act, dw kxk-BN, 1x1-BN-act``; concatenate; channel shuffle.

``variant`` picks the channel arithmetic of the reference implementation reproduced:

- ``v2``: the paper and torchvision's ``shufflenet_v2_*``: each branch gives ``out_chs / 2``
  channels, the main branch's inner width equals its output width.
- ``v2b``: pytorchcv's ``shufflenetv2b_*`` (osmr/imgclsmob, "the alternative version"): the
  main branch's inner width is ``out_chs // 2`` and it produces ``out_chs - c`` channels, where
  ``c`` is what the other branch carries: the untouched half at stride 1, and at stride 2 the
  whole input width (its 1x1 conv keeps ``in_chs`` channels). Its SE and residual options are
  off in every pretrained model and are not reproduced. Shuffle stays group-first, as in
  pytorchcv's ``shuffle_group_first=True`` default.
  At stride 1 with ``in_chs == out_chs`` the two variants build the same unit.

``downsample="padding_free"`` (``shared/reference/padding_free.md``): both stride-2 depthwise
convs lose one unit of padding (k3: 0) so maps shrink as ``floor((H-3)/2)+1``, and each gets a
parameter-free 3x3 stride-2 max-pool (padding 0) of its own input, added to the conv output before
the BN that follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from search_spaces.ops.common import (
    act_field,
    check_downsample,
    downsample_field,
    dw_out_size,
    kernel_field,
    out_chs_field,
    stride_field,
)
from search_spaces.ops.layers import ChannelShuffle, ConvBnAct, create_conv, kernel_tuple
from search_spaces.registry import Field, OpSpec, register

VARIANTS = ("v2", "v2b")


def unit_channels(in_chs: int, out_chs: int, stride: int, variant: str) -> tuple[int, int, int, int]:
    """``(main_in, mid, main_out, side_out)`` channels of a unit.

    ``main_in``: input width of the main (1x1-dw-1x1) branch; ``mid``: its inner width;
    ``main_out``: its output width; ``side_out``: what the other branch carries (the untouched
    half at stride 1, the projection branch's output at stride 2).
    """
    if stride == 1:
        main_in = side_out = in_chs // 2
    else:
        main_in = in_chs
        side_out = out_chs // 2 if variant == "v2" else in_chs
    main_out = out_chs - side_out
    mid = main_out if variant == "v2" else out_chs // 2
    return main_in, mid, main_out, side_out


class DWConvBN(nn.Module):
    """Depthwise conv then BN (no activation), optionally padding-free.

    Padding-free: the conv loses one unit of padding and a 3x3 stride-2 max-pool (padding 0) of
    the input is added to the conv output before the BN. The shortcut has no parameters.
    """

    def __init__(self, chs: int, kernel: Any, stride: int, padding_free: bool):
        super().__init__()
        self.conv = create_conv(chs, chs, kernel, stride, groups=chs, pad_reduce=1 if padding_free else 0)
        self.pool = nn.MaxPool2d(3, 2, 0) if padding_free else None
        self.bn = nn.BatchNorm2d(chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.pool is not None:
            y = y + self.pool(x)
        return self.bn(y)


class ShuffleUnit(nn.Module):
    """A ShuffleNetV2 unit (see the module docstring): ``branch_proj`` is the stride-2 side branch
    (``None`` at stride 1, where the first half of the input passes through), ``branch_main`` the
    1x1-dw-1x1 branch; their outputs are concatenated and shuffled."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, *, kernel: int | tuple[int, ...] = 3,
                 act: str = "relu", variant: str = "v2", downsample: str = "standard"):
        super().__init__()
        self.stride = stride
        k, pf = kernel, downsample == "padding_free"
        main_in, mid, main_out, side_out = unit_channels(in_chs, out_chs, stride, variant)
        self.branch_proj = None
        if self.stride == 2:
            self.branch_proj = nn.Sequential(
                DWConvBN(in_chs, k, 2, pf),
                ConvBnAct(in_chs, side_out, 1, act=act),
            )
        self.branch_main = nn.Sequential(
            ConvBnAct(main_in, mid, 1, act=act),
            DWConvBN(mid, k, self.stride, pf),
            ConvBnAct(mid, main_out, 1, act=act),
        )
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.branch_proj is None:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch_main(x2)), dim=1)
        else:
            out = torch.cat((self.branch_proj(x), self.branch_main(x)), dim=1)
        return self.shuffle(out)


def _check(in_chs: int, a: Mapping[str, Any]) -> str | None:
    out = a["out_chs"]
    if out % 2:
        return f"field 'out_chs': must be even for the 2-group channel shuffle, got {out}"
    if a["stride"] == 1 and in_chs % 2:
        return f"input channels must be even for the channel split of a stride-1 unit, got {in_chs}"
    main_in, mid, main_out, side_out = unit_channels(in_chs, out, a["stride"], a["variant"])
    if main_out < 1:
        return (f"field 'out_chs': {out} leaves the main branch no channels "
                f"(the other branch already carries {side_out})")
    if a["variant"] == "v2" and a["stride"] == 1 and in_chs != out:
        return f"field 'out_chs': a stride-1 v2 unit keeps its width, got in_chs {in_chs} != out_chs {out}"
    n = len(kernel_tuple(a["kernel"]))
    if n > 1:
        for what, chs in (("inner", mid), ("input", in_chs if a["stride"] == 2 else mid)):
            if chs % n:
                return f"field 'kernel': {n} mixed kernels do not divide the {chs} {what} channels"
    return check_downsample(a)


def _out_size(size: int, a: Mapping[str, Any]) -> int:
    return size if a["stride"] == 1 else dw_out_size(size, a)


register(OpSpec(
    name="shuffle",
    summary="ShuffleNetV2 unit (split/two-branch, dw conv, concat, channel shuffle); v2 or v2b channels",
    roles=frozenset({"block"}),
    fields=(
        out_chs_field(),
        kernel_field(),
        stride_field(),
        act_field("relu"),
        Field("variant", "v", "str", "v2",
              doc="channel arithmetic: v2 (paper, torchvision) or v2b (pytorchcv shufflenetv2b)",
              choices=VARIANTS),
        downsample_field(),
    ),
    build=lambda ctx, a: ShuffleUnit(ctx.in_chs, **a),
    weight_roles=lambda a: {"branch_proj.": "branch_proj", "branch_main.": "branch_main"},
    out_chs=lambda in_chs, a: a["out_chs"],
    out_size=_out_size,
    check=_check,
))
