"""The Ghost bottleneck op (``ghost``) and the padding-free pairs of the CIFAR GhostNet and
MobileNetV3-Large zoo entries.

Per-op: output shapes at stride 1 and 2, padding-free sizes ``floor((H-3)/2)+1``, exact
parameter counts, and that a padding-free block differs from its standard twin only in the
padding of its two stride-2 depthwise convs and the max-pool shortcut of the main one.
Zoo-wide build/forward/backward/exact-count checks live in ``test_zoo.py``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas import Arch, ArchError, Block
from nas.complexity import complexity, count_macs_conv_linear, count_params
from search_spaces import zoo
from search_spaces.registry import OpConfig

B = Block.make


def build(in_chs: int, size: int = 16, **args):
    block = B("ghost", **args)
    return OpConfig("ghost", block.args, in_chs, size).build(), block


def pf_size(h: int) -> int:
    return (h - 3) // 2 + 1


@pytest.mark.parametrize(
    "in_chs, args, size, out_shape",
    [
        (16, dict(out_chs=16, mid_chs=16), 16, (16, 16)),  # identity shortcut
        (16, dict(out_chs=24, mid_chs=48), 16, (24, 16)),  # conv shortcut, stride 1
        (16, dict(out_chs=24, mid_chs=48, stride=2), 16, (24, 8)),
        (24, dict(out_chs=40, mid_chs=72, kernel=5, stride=2, se_ratio=0.25), 17, (40, 9)),
        (16, dict(out_chs=24, mid_chs=48, stride=2, downsample="padding_free"), 16, (24, 7)),
        (24, dict(out_chs=40, mid_chs=72, kernel=5, stride=2, se_ratio=0.25, downsample="padding_free"), 32, (40, 15)),
        (8, dict(out_chs=15, mid_chs=21, ratio=3, cheap_kernel=5), 8, (15, 8)),  # odd widths are sliced
    ],
)
def test_shapes(in_chs: int, args: dict, size: int, out_shape: tuple[int, int]) -> None:
    module, block = build(in_chs, **args)
    y = module(torch.randn(2, in_chs, size, size))
    assert y.shape == (2, out_shape[0], out_shape[1], out_shape[1])
    assert block.spec.out_size(size, block.kwargs) == out_shape[1]
    assert block.spec.out_chs(in_chs, block.kwargs) == out_shape[0]


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("h", [32, 15, 7, 16, 9])
def test_padding_free_size(kernel: int, h: int) -> None:
    module, block = build(8, out_chs=16, mid_chs=16, kernel=kernel, stride=2, downsample="padding_free")
    y = module.eval()(torch.randn(1, 8, h, h))
    assert y.shape[-1] == pf_size(h) == block.spec.out_size(h, block.kwargs)


@pytest.mark.parametrize("name", ["cifar_ghostnet_100", "cifar_mobilenet_v3_large"])
def test_cifar_pf_map_sizes(name: str) -> None:
    # Stem and second block at stride 1 (the reference code's CIFAR layout): three downsamplings.
    sizes = [info.out_size for info in zoo.get(name).layers() if info.role == "block"]
    assert sorted(set(sizes), reverse=True) == [32, 16, 8, 4]
    pf = zoo.get(name + "_pf")
    assert pf.stem.op == "hybrid"
    sizes = [info.out_size for info in pf.layers() if info.role == "block"]
    assert sorted(set(sizes), reverse=True) == [32, 15, 7, 3]
    stride2 = [b for b in pf.blocks if b.kwargs.get("stride") == 2]
    assert len(stride2) == 3 and all(b["downsample"] == "padding_free" for b in stride2)


def test_exact_param_count() -> None:
    # in 16, mid 48, out 24, k3, s2, no SE:
    # ghost1 16->48: primary 16*24 + BN 48, cheap 24*9 + BN 48 = 696; dw 48*9 + BN 96 = 528;
    # ghost2 48->24: primary 48*12 + BN 24, cheap 12*9 + BN 24 = 732;
    # shortcut: dw 16*9 + BN 32, 1x1 16*24 + BN 48 = 608.
    module, _ = build(16, out_chs=24, mid_chs=48, stride=2)
    assert count_params(module) == 696 + 528 + 732 + 608
    # MACs at 16x16 in: ghost1 at 16x16, the rest at 8x8.
    macs = 16 * 16 * (24 * 16 + 24 * 9) + 8 * 8 * (48 * 9 + 12 * 48 + 12 * 9 + 16 * 9 + 24 * 16)
    assert count_macs_conv_linear(module, (16, 16, 16)) == macs


def test_se_is_ghostnet_style() -> None:
    module, _ = build(24, out_chs=40, mid_chs=72, kernel=5, stride=2, se_ratio=0.25)
    # make_divisible(72 * 0.25, 4) = 20, hard-sigmoid gate
    assert module.se.conv_reduce.out_channels == 20
    assert isinstance(module.se.gate, nn.Hardsigmoid)


@pytest.mark.parametrize("kernel", [3, 5])
def test_padding_free_twin_differs_only_in_padding_and_pool(kernel: int) -> None:
    args = dict(out_chs=40, mid_chs=72, kernel=kernel, stride=2, se_ratio=0.25)
    std, _ = build(24, **args)
    pf, _ = build(24, downsample="padding_free", **args)
    assert count_params(std) == count_params(pf)
    assert {k: v.shape for k, v in std.state_dict().items()} == {k: v.shape for k, v in pf.state_dict().items()}

    std_mods, pf_mods = dict(std.named_modules()), dict(pf.named_modules())
    assert set(pf_mods) - set(std_mods) == {"conv_dw.pool"}
    assert set(std_mods) <= set(pf_mods)
    pool = pf_mods["conv_dw.pool"]
    assert isinstance(pool, nn.MaxPool2d) and (pool.kernel_size, pool.stride, pool.padding) == (3, 2, 0)
    changed = set()
    for name, m in std_mods.items():
        if isinstance(m, nn.Conv2d):
            p = pf_mods[name]
            same = {a: getattr(m, a) == getattr(p, a) for a in ("in_channels", "out_channels", "kernel_size",
                                                                   "stride", "groups", "padding")}
            assert all(v for a, v in same.items() if a != "padding"), name
            if not same["padding"]:
                assert p.padding[0] == m.padding[0] - 1 == kernel // 2 - 1
                changed.add(name)
    assert changed == {"conv_dw.dw.conv", "shortcut.0.conv"}

    # Same weights, computed by hand: the pf block is the standard one with reduced padding
    # in both stride-2 depthwise convs and a max-pool of the dw input added after its BN.
    torch.manual_seed(0)
    for m in std.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    pf.load_state_dict(std.state_dict())
    std.eval()
    pf.eval()
    x = torch.randn(2, 24, 17, 17)
    pad = kernel // 2 - 1
    with torch.no_grad():
        h = std.ghost1(x)
        dw = std.conv_dw.dw
        h = dw.bn(F.conv2d(h, dw.conv.weight, None, 2, pad, groups=h.shape[1])) + F.max_pool2d(h, 3, 2, 0)
        h = std.ghost2(std.se(h))
        sc_dw = std.shortcut[0]
        s = sc_dw.bn(F.conv2d(x, sc_dw.conv.weight, None, 2, pad, groups=24))
        expected = h + std.shortcut[1](s)
        torch.testing.assert_close(pf(x), expected)


@pytest.mark.parametrize(
    "args, message",
    [
        (dict(out_chs=16, mid_chs=16, downsample="padding_free"), "padding_free needs stride 2"),
        (dict(out_chs=16, mid_chs=16, kernel=4), "odd"),
        (dict(out_chs=16, mid_chs=16, ratio=1), "ghost ratio"),
        (dict(out_chs=16), "mid_chs"),
        (dict(out_chs=16, mid_chs=16, exp_ratio=6), "unknown field"),
    ],
)
def test_bad_arguments(args: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Arch(
            resolution=32, num_classes=10, stem=B("cn", out_chs=16), blocks=(B("ghost", **args),),
            head=B("hp"),
        )


def test_string_round_trip() -> None:
    arch = zoo.get("cifar_ghostnet_100_pf")
    assert "ghost_c40_m72_k5_s2_se0.25_dnpadding-free" in arch.to_str()
    assert Arch.from_str(arch.to_str()) == arch
    assert Arch.from_json(arch.to_json()) == arch
    with pytest.raises(ArchError):
        Arch.from_str("litenas/1 res32 cls10\nstem cn_c16\nghost_c16\nhead hp")


PF_PAIRS = [
    ("cifar_ghostnet_100", "cifar_ghostnet_100_pf"),
    ("cifar_mobilenet_v3_large", "cifar_mobilenet_v3_large_pf"),
]


@pytest.mark.parametrize("std_name, pf_name", PF_PAIRS)
def test_pf_mac_cut_matches_reference(std_name: str, pf_name: str) -> None:
    std = complexity(zoo.get(std_name), ptflops=False).macs_conv_linear
    pf = complexity(zoo.get(pf_name), ptflops=False).macs_conv_linear
    ref_std = zoo.reference(std_name)["macs_conv_linear"]
    ref_pf = zoo.reference(pf_name)["macs_conv_linear"]
    cut, ref_cut = 1 - pf / std, 1 - ref_pf / ref_std
    assert abs(cut - ref_cut) <= 0.01, (cut, ref_cut)
