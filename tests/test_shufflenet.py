"""The ``shuffle`` op (ShuffleNetV2 unit, v2/v2b channel arithmetic, padding-free downsampling)
and the ShuffleNetV2 zoo family."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas import Arch, ArchError, Block, build_model
from nas.complexity import count_macs_conv_linear, count_params
from search_spaces import zoo
from search_spaces.ops.shufflenet import DWConvBN, ShuffleUnit
from search_spaces.registry import OpConfig

B = Block.make

SHUFFLE_ENTRIES = [
    "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
    "shufflenetv2b_w3d2",
    "cifar_shufflenet_v2_x1_0", "cifar_shufflenet_v2_x1_0_pf",
    "cifar_shufflenet_v2_x0_5", "cifar_shufflenet_v2_x0_5_pf",
]


def unit(in_chs: int, **args) -> nn.Module:
    block = B("shuffle", **args)
    return OpConfig(block.op, block.args, in_chs, 16).build()


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# ------------------------------------------------------------------------------------------------
# the op


@pytest.mark.parametrize("variant", ["v2", "v2b"])
@pytest.mark.parametrize("kernel", [3, 5, (3, 5)])
def test_output_shapes(variant, kernel):
    x = torch.randn(2, 24, 16, 16)
    down = unit(24, out_chs=48, stride=2, kernel=kernel, variant=variant)
    y = down(x)
    assert y.shape == (2, 48, 8, 8)
    same = unit(48, out_chs=48, kernel=kernel, variant=variant)
    assert same(y).shape == (2, 48, 8, 8)
    pf = unit(24, out_chs=48, stride=2, kernel=kernel, variant=variant, downsample="padding_free")
    assert pf(x).shape == (2, 48, 7, 7)  # floor((16 - 3) / 2) + 1


def test_v2_channels_match_torchvision():
    # torchvision InvertedResidual(24, 116, 2): branch1 dw24 + 1x1 24->58, branch2 1x1 24->58,
    # dw58, 1x1 58->58 (each conv followed by BN).
    m = unit(24, out_chs=116, stride=2)
    expected = (24 * 9 + 48) + (24 * 58 + 116) + (24 * 58 + 116) + (58 * 9 + 116) + (58 * 58 + 116)
    assert n_params(m) == expected
    m1 = unit(116, out_chs=116)  # 1x1 58->58, dw58, 1x1 58->58
    assert n_params(m1) == (58 * 58 + 116) + (58 * 9 + 116) + (58 * 58 + 116)


def test_v2b_channels_match_pytorchcv():
    # pytorchcv ShuffleUnit(24, 176, downsample=True): shortcut dw24 + 1x1 24->24; main 1x1
    # 24->88, dw88, 1x1 88->152.
    m = unit(24, out_chs=176, stride=2, variant="v2b")
    assert isinstance(m, ShuffleUnit)
    assert m.branch_proj[1].conv.out_channels == 24
    assert [m.branch_main[0].conv.out_channels, m.branch_main[2].conv.out_channels] == [88, 152]
    expected = (24 * 9 + 48) + (24 * 24 + 48) + (24 * 88 + 176) + (88 * 9 + 176) + (88 * 152 + 304)
    assert n_params(m) == expected


def test_variants_agree_at_stride_1():
    a, b = unit(116, out_chs=116), unit(116, out_chs=116, variant="v2b")
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


def test_channel_split_and_shuffle():
    m = unit(8, out_chs=8).eval()
    x = torch.randn(1, 8, 5, 5)
    y = m(x)
    # the untouched half lands on the even output channels after the 2-group shuffle
    assert torch.equal(y[:, 0::2], x[:, :4])


@pytest.mark.parametrize("variant", ["v2", "v2b"])
@pytest.mark.parametrize("kernel", [3, 5])
def test_padding_free_pair_differs_only_in_padding_and_pool(variant, kernel):
    args = {"out_chs": 64, "stride": 2, "kernel": kernel, "variant": variant}
    std, pf = unit(32, **args), unit(32, **args, downsample="padding_free")
    # no extra parameters, identical parameter/buffer layout
    assert n_params(std) == n_params(pf)
    assert {k: v.shape for k, v in std.state_dict().items()} == {k: v.shape for k, v in pf.state_dict().items()}
    dws_std = [m for m in std.modules() if isinstance(m, DWConvBN)]
    dws_pf = [m for m in pf.modules() if isinstance(m, DWConvBN)]
    assert len(dws_pf) == 2  # both stride-2 depthwise convs
    for s, p in zip(dws_std, dws_pf, strict=True):
        assert s.pool is None and isinstance(p.pool, nn.MaxPool2d)
        assert (p.pool.kernel_size, p.pool.stride, p.pool.padding) == (3, 2, 0)
        assert s.conv.padding == (kernel // 2,) * 2 and p.conv.padding == (kernel // 2 - 1,) * 2
    # patching the standard unit's paddings and adding the pools gives exactly the pf unit
    pf.load_state_dict(std.state_dict())
    for s in dws_std:
        s.conv.padding = (kernel // 2 - 1,) * 2
        s.pool = nn.MaxPool2d(3, 2, 0)
    std.eval()
    pf.eval()
    x = torch.randn(2, 32, 15, 15)
    assert torch.allclose(std(x), pf(x), atol=1e-6)


def test_padding_free_pool_is_added_before_bn():
    dw = DWConvBN(4, 3, 2, padding_free=True)
    with torch.no_grad():
        dw.bn.weight.uniform_(0.5, 2.0)
        dw.bn.bias.uniform_(-1, 1)
        dw.bn.running_mean.uniform_(-1, 1)
        dw.bn.running_var.uniform_(0.5, 2.0)
    dw.eval()
    x = torch.randn(1, 4, 9, 9)
    expected = dw.bn(F.conv2d(x, dw.conv.weight, stride=2, padding=0, groups=4) + F.max_pool2d(x, 3, 2))
    assert torch.allclose(dw(x), expected, atol=1e-6)


def test_padding_free_unit_backward():
    m = unit(24, out_chs=48, stride=2, downsample="padding_free")
    m(torch.randn(2, 24, 15, 15)).square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())


@pytest.mark.parametrize(("in_chs", "args", "match"), [
    (24, {"out_chs": 47, "stride": 2}, "must be even"),
    (23, {"out_chs": 24}, "channel split"),
    (24, {"out_chs": 48}, "keeps its width"),
    (48, {"out_chs": 48, "downsample": "padding_free"}, "needs stride 2"),
    (48, {"out_chs": 48, "stride": 2, "variant": "v2b"}, "no channels"),
    (32, {"out_chs": 64, "stride": 2, "kernel": (3, 5, 7)}, "mixed kernels"),
])
def test_invalid_units_are_rejected(in_chs, args, match):
    with pytest.raises(ArchError, match=match):
        Arch(resolution=32, num_classes=10, stem=B("cn", out_chs=in_chs),
             blocks=(B("shuffle", **args),), head=B("hc", out_chs=64))


def test_bad_variant_is_rejected():
    with pytest.raises(ValueError, match="variant"):
        B("shuffle", out_chs=48, variant="v3")


def test_string_round_trip():
    arch = zoo.get("shufflenetv2b_w3d2")
    text = arch.to_str()
    assert "shuffle_c176_s2_vv2b" in text
    assert Arch.from_str(text) == arch
    pf = zoo.get("cifar_shufflenet_v2_x0_5_pf")
    assert "dnpadding-free" in pf.to_str()
    assert Arch.from_str(pf.to_str()) == pf


# ------------------------------------------------------------------------------------------------
# the zoo family


def test_cifar_pf_map_sizes():
    arch = zoo.get("cifar_shufflenet_v2_x1_0_pf")
    sizes = [info.out_size for info in arch.layers() if info.role == "block" and info.block["stride"] == 2]
    assert sizes == [15, 7, 3]
    std = zoo.get("cifar_shufflenet_v2_x1_0")
    assert [i.out_size for i in std.layers() if i.role == "block" and i.block["stride"] == 2] == [16, 8, 4]
    # and the built module agrees
    model = build_model(arch).eval()
    seen = []
    for m in model.blocks:
        m.register_forward_hook(lambda mod, inp, out: seen.append(out.shape[-1]))
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 100)
    assert sorted(set(seen), reverse=True) == [15, 7, 3]


def test_cifar_pairs_differ_only_in_stem_and_downsampling():
    for w in ("x1_0", "x0_5"):
        std, pf = zoo.get(f"cifar_shufflenet_v2_{w}"), zoo.get(f"cifar_shufflenet_v2_{w}_pf")
        assert (std.stem.op, pf.stem.op) == ("cn", "hybrid") and std.stem["stride"] == 1
        assert std.head == pf.head and len(std.blocks) == len(pf.blocks) == 16
        for a, b in zip(std.blocks, pf.blocks, strict=True):
            expected = a.replace(downsample="padding_free") if a["stride"] == 2 else a
            assert b == expected


def test_imagenet_layout():
    arch = zoo.get("shufflenet_v2_x1_0")
    assert arch.stem == B("cn", out_chs=24, stride=2) and arch.blocks[0] == B("mp", kernel=3, stride=2)
    assert [b["out_chs"] for b in arch.blocks[1:] if b["stride"] == 2] == [116, 232, 464]
    assert zoo.get("shufflenetv2b_w3d2").head["out_chs"] == 1553


@functools.cache
def complexity_on_meta(name: str) -> tuple[int, int]:
    """(params, conv+linear MACs) counted on the meta device: exact shapes, no arithmetic."""
    arch = zoo.get(name)
    with torch.device("meta"):
        model = build_model(arch)
        return count_params(model), count_macs_conv_linear(model, (3, arch.resolution, arch.resolution))


@pytest.mark.parametrize("name", SHUFFLE_ENTRIES)
def test_fixed_points(name):
    params, macs = complexity_on_meta(name)
    assert zoo.matches_reference(name, params, macs), (name, params, macs, zoo.reference(name))


@pytest.mark.parametrize("width", ["x1_0", "x0_5"])
def test_padding_free_mac_cut_matches_table(width):
    std, pf = f"cifar_shufflenet_v2_{width}", f"cifar_shufflenet_v2_{width}_pf"
    assert complexity_on_meta(std)[0] < complexity_on_meta(pf)[0]  # only the hybrid stem adds params
    cut = 1 - complexity_on_meta(pf)[1] / complexity_on_meta(std)[1]
    table = 1 - zoo.reference(pf)["macs_conv_linear"] / zoo.reference(std)["macs_conv_linear"]
    assert abs(cut - table) <= 0.01
