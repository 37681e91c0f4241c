"""Complexity of an architecture: parameters and MACs in two conventions.

- ``macs_conv_linear``: multiply-adds of convolutions and linear layers only, the convention of
  the MobileNet/MnasNet/EfficientNet papers (``out_h * out_w * out_c * in_c / groups * k_h * k_w``
  per conv, ``in * out`` per linear, biases not counted). Counted with forward hooks on one
  forward pass, so it follows exactly what the built module computes.
- ``macs_ptflops``: ptflops' total (also BN, activations, pooling, biases, element-wise ops), the
  number its users quote. ptflops is imported lazily so a target device needs only torch.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import asdict, dataclass

import torch
from torch import nn

from nas.arch import Arch
from nas.builder import build_model


@dataclass(frozen=True)
class Complexity:
    params: int
    macs_conv_linear: int
    macs_ptflops: int | None

    def to_dict(self) -> dict[str, int | None]:
        return asdict(self)


def count_params(model: nn.Module) -> int:
    """Number of parameters (BatchNorm running statistics are buffers and not counted)."""
    return sum(p.numel() for p in model.parameters())


def count_macs_conv_linear(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Conv + linear multiply-adds of one forward pass on a single ``(C, H, W)`` input."""
    total = 0

    def conv_hook(m: nn.Conv2d, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out[0].numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        total += out[0].numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    return int(total)


def count_macs_ptflops(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """ptflops' total MACs (its ``pytorch`` backend), with its printing silenced."""
    from ptflops import get_model_complexity_info

    was_training = model.training
    model.eval()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        macs, _ = get_model_complexity_info(
            model, input_shape, as_strings=False, print_per_layer_stat=False, verbose=False, backend="pytorch"
        )
    model.train(was_training)
    return int(macs)


def complexity(arch: Arch, *, ptflops: bool = True) -> Complexity:
    """Parameters and MACs of ``arch`` at its own input resolution."""
    model = build_model(arch)
    shape = (arch.in_chans, arch.resolution, arch.resolution)
    return Complexity(
        params=count_params(model),
        macs_conv_linear=count_macs_conv_linear(model, shape),
        macs_ptflops=count_macs_ptflops(model, shape) if ptflops else None,
    )
