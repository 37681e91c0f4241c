"""Building bricks shared by the registered ops: activations, channel rounding, the conv factory,
mixed-kernel depthwise convolution, squeeze-excite and channel shuffle.

The conv factory follows timm's: given a tuple of kernel sizes it returns a mixed-kernel conv
(MixConv, Tan & Le, "MixConv: Mixed Depthwise Convolutional Kernels", BMVC 2019), so blocks never
special-case MixNet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

# Every activation by name, in one table (the ``act`` field's choices come from it): the names a
# block's ``act`` argument takes, then the gates squeeze-excite uses.
_ACT_MODULES: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "hswish": lambda: nn.Hardswish(inplace=True),
    "swish": lambda: nn.SiLU(inplace=True),
    "none": nn.Identity,
}
_GATE_MODULES: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "hsigmoid": lambda: nn.Hardsigmoid(inplace=True),
}
ACTIVATIONS = tuple(_ACT_MODULES)
GATES = tuple(_GATE_MODULES)


def create_act(name: str) -> nn.Module:
    """Activation module by name (``relu``, ``relu6``, ``hswish``, ``swish``, ``none``, and the
    gates ``sigmoid``, ``hsigmoid``)."""
    make = _ACT_MODULES.get(name) or _GATE_MODULES.get(name)
    if make is None:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS + GATES)}")
    return make()


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9) -> int:
    """Round ``v`` to the nearest multiple of ``divisor``, never going down by more than 10%.

    The rule of the TF MobileNet/MnasNet/EfficientNet reference code (and of torchvision and timm),
    needed to reproduce their channel counts exactly.
    """
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def split_channels(channels: int, groups: int) -> list[int]:
    """Split ``channels`` into ``groups`` parts, the remainder going to the first (as MixConv)."""
    split = [channels // groups] * groups
    split[0] += channels - sum(split)
    return split


def kernel_tuple(kernel: int | Sequence[int]) -> tuple[int, ...]:
    """A kernel argument as a tuple (a plain int becomes a 1-tuple)."""
    return tuple(kernel) if isinstance(kernel, (tuple, list)) else (int(kernel),)


class MixedConv2d(nn.Module):
    """Depthwise convolution whose channels are split into groups with different kernel sizes.

    MixConv (Tan & Le, BMVC 2019): channel group ``i`` is convolved with kernel ``kernels[i]``
    and the outputs are concatenated. Each group uses "same" padding ``k // 2`` minus
    ``pad_reduce`` (1 for padding-free downsampling).
    """

    def __init__(self, channels: int, kernels: Sequence[int], stride: int, pad_reduce: int = 0):
        super().__init__()
        self.splits = split_channels(channels, len(kernels))
        self.convs = nn.ModuleList(
            nn.Conv2d(c, c, k, stride, max(k // 2 - pad_reduce, 0), groups=c, bias=False)
            for c, k in zip(self.splits, kernels, strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.splits, dim=1)
        outs = []
        for i, conv in enumerate(self.convs):  # indexed, not zipped: TorchScript unrolls this loop
            outs.append(conv(parts[i]))
        return torch.cat(outs, dim=1)


def create_conv(
    in_chs: int,
    out_chs: int,
    kernel: int | Sequence[int],
    stride: int = 1,
    groups: int = 1,
    pad_reduce: int = 0,
    bias: bool = False,
) -> nn.Module:
    """Conv factory: a plain ``nn.Conv2d`` for one kernel size, :class:`MixedConv2d` for several.

    Padding is ``k // 2 - pad_reduce`` ("same" padding for odd kernels, reduced by one for
    padding-free downsampling).
    """
    ks = kernel_tuple(kernel)
    if len(ks) > 1:
        if not (groups == in_chs == out_chs):
            raise ValueError("mixed kernels are only supported for depthwise convolutions")
        return MixedConv2d(in_chs, ks, stride, pad_reduce)
    k = ks[0]
    return nn.Conv2d(in_chs, out_chs, k, stride, max(k // 2 - pad_reduce, 0), groups=groups, bias=bias)


class ConvBnAct(nn.Sequential):
    """Convolution, BatchNorm, activation (the activation may be ``none``)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel: int | Sequence[int],
        stride: int = 1,
        groups: int = 1,
        act: str = "relu",
        pad_reduce: int = 0,
    ):
        super().__init__()
        self.conv = create_conv(in_chs, out_chs, kernel, stride, groups, pad_reduce)
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = create_act(act)


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation (Hu et al., CVPR 2018): global pool, reduce 1x1 conv, act,
    expand 1x1 conv, gate, channel-wise rescale. Both 1x1 convs carry a bias, as in the
    MnasNet/EfficientNet and MobileNetV3 reference code."""

    def __init__(self, chs: int, rd_chs: int, act: str, gate: str):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv_reduce = nn.Conv2d(chs, rd_chs, 1, bias=True)
        self.act = create_act(act)
        self.conv_expand = nn.Conv2d(rd_chs, chs, 1, bias=True)
        self.gate = create_act(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.conv_expand(self.act(self.conv_reduce(self.pool(x))))
        return x * self.gate(s)


class ChannelShuffle(nn.Module):
    """Channel shuffle (Zhang et al., ShuffleNet, CVPR 2018): interleave ``groups`` channel groups."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)
