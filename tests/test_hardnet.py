"""HarDNet: the harmonic dense block op and the hardnet39ds/68ds fixed points (pytorchcv)."""

from __future__ import annotations

import pytest
import torch

from nas.arch import Arch, Block
from nas.builder import build_model
from nas.complexity import complexity, count_params
from search_spaces import zoo
from search_spaces.ops.hardnet import (
    HarmonicBlock,
    hardnet_in_widths,
    hardnet_layer_widths,
    hardnet_links,
    hardnet_out_chs,
    hardnet_out_layers,
)
from search_spaces.registry import OpConfig, get_op
from search_spaces.zoo.hardnet import HARDNET39DS, HARDNET68DS, HarDNetDef, HarDStage, hardnet

# ---------------------------------------------------------------------------------------------
# link pattern and channel arithmetic


@pytest.mark.parametrize("k, links", [
    (1, (0,)), (2, (1, 0)), (3, (2,)), (4, (3, 2, 0)), (5, (4,)), (6, (5, 4)), (7, (6,)),
    (8, (7, 6, 4, 0)), (12, (11, 10, 8)), (16, (15, 14, 12, 8, 0)),
])
def test_links(k, links):
    assert hardnet_links(k) == links


def test_links_reject_layer_zero():
    with pytest.raises(ValueError):
        hardnet_links(0)


def test_out_layers_odd_and_last():
    assert hardnet_out_layers(1) == (1,)
    assert hardnet_out_layers(4) == (1, 3, 4)
    assert hardnet_out_layers(5) == (1, 3, 5)
    assert hardnet_out_layers(8) == (1, 3, 5, 7, 8)


def test_widths_hardnet39ds_first_block():
    # growth 16, x1.6 per extra link, rounded to even the reference's way: 25.6 -> 26, 40.96 -> 40.
    assert hardnet_layer_widths(16, 1.6, 4) == (16, 26, 16, 40)
    assert hardnet_in_widths(48, 16, 1.6, 4) == (48, 16 + 48, 26, 16 + 26 + 48)
    assert hardnet_out_chs(16, 1.6, 4) == 16 + 16 + 40


def test_widths_hardnet68ds_first_block():
    # 14*1.7 = 23.8 -> 24; 14*1.7^2 = 40.46 -> 40; 14*1.7^3 = 68.78 -> 68.
    assert hardnet_layer_widths(14, 1.7, 8) == (14, 24, 14, 40, 14, 24, 14, 68)
    assert hardnet_out_chs(14, 1.7, 8) == 4 * 14 + 68


def test_width_rounding_to_even():
    assert hardnet_layer_widths(15, 1.0, 1) == (16,)  # int(int(15 + 1) / 2) * 2
    assert hardnet_layer_widths(14, 1.0, 1) == (14,)
    assert hardnet_layer_widths(10, 1.25, 2)[1] == 12  # 12.5 -> int(13.5)=13 -> 6 -> 12


@pytest.mark.parametrize("growth, mult, layers, out", [
    # Values from a literal transcription of pytorchcv's calc_blocks_params / stage_out_channels.
    (20, 1.6, 16, 292), (64, 1.6, 8, 518), (160, 1.6, 4, 730),  # hardnet39ds blocks 2..4
    (16, 1.7, 16, 262), (20, 1.7, 16, 328), (40, 1.7, 16, 654), (160, 1.7, 4, 782),  # 68ds 2..5
    (24, 1.7, 16, 392), (256, 1.7, 4, 1252),  # hardnet85 blocks 2 and 6
])
def test_out_chs_of_zoo_blocks(growth, mult, layers, out):
    assert hardnet_out_chs(growth, mult, layers) == out


# ---------------------------------------------------------------------------------------------
# the op


def test_op_out_chs_matches_module_and_ignores_in_chs():
    spec = get_op("hardnet")
    for in_chs in (8, 48, 96):
        for args in ({"growth": 16, "mult": 1.6, "layers": 4}, {"growth": 14, "mult": 1.7, "layers": 8},
                     {"growth": 6, "mult": 1.5, "layers": 3, "layer": "conv"}):
            block = Block.make("hardnet", args)
            module = OpConfig("hardnet", block.args, in_chs, 8).build()
            assert spec.out_chs(in_chs, block.kwargs) == module.out_chs == hardnet_out_chs(
                args["growth"], args["mult"], args["layers"])
            assert spec.out_size(8, block.kwargs) == 8


def test_block_params_ds():
    in_chs, block = 48, HarmonicBlock(48, 16, 1.6, 4)
    ins, outs = hardnet_in_widths(in_chs, 16, 1.6, 4), hardnet_layer_widths(16, 1.6, 4)
    # 1x1 conv + BN, depthwise 3x3 + BN per layer, no biases.
    expected = sum(i * o + 2 * o + 9 * o + 2 * o for i, o in zip(ins, outs, strict=True))
    assert count_params(block) == expected


def test_block_params_conv():
    block = HarmonicBlock(32, 10, 1.5, 4, layer="conv", act="relu")
    ins, outs = hardnet_in_widths(32, 10, 1.5, 4), hardnet_layer_widths(10, 1.5, 4)
    assert count_params(block) == sum(9 * i * o + 2 * o for i, o in zip(ins, outs, strict=True))


def test_block_forward_concatenates_odd_and_last_layers():
    torch.manual_seed(0)
    block = HarmonicBlock(12, 6, 1.6, 6).eval()
    seen = []
    for layer in block.layers:
        layer.register_forward_hook(lambda m, i, o: seen.append(o))
    x = torch.randn(2, 12, 9, 9)
    y = block(x)
    assert y.shape == (2, hardnet_out_chs(6, 1.6, 6), 9, 9)
    assert torch.equal(y, torch.cat([seen[k - 1] for k in (1, 3, 5, 6)], dim=1))


def test_block_backward_reaches_every_parameter():
    block = HarmonicBlock(8, 4, 1.7, 8)
    block(torch.randn(2, 8, 6, 6)).square().mean().backward()
    for name, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("bad", [{"growth": 0}, {"mult": 0.0}, {"layers": 0}, {"layers": 1024}, {"layer": "sep"}])
def test_op_rejects_bad_args(bad):
    with pytest.raises(ValueError):
        Block.make("hardnet", {"growth": 16, "mult": 1.6, "layers": 4, **bad})


# ---------------------------------------------------------------------------------------------
# the zoo entries


@pytest.mark.parametrize("name", ["hardnet39ds", "hardnet68ds"])
def test_exact_counts(name):
    arch = zoo.get(name)
    ref = zoo.reference(name)
    c = complexity(arch, ptflops=False)
    assert c.params == ref["params"]  # hardnet68ds: 4,180,602 (pytorchcv), not the seed's 4,181,602
    assert c.macs_conv_linear == ref["macs_conv_linear"]
    assert zoo.matches_reference(name, c.params, c.macs_conv_linear)


def test_hardnet68ds_param_count_is_the_reference_one():
    assert zoo.reference("hardnet68ds")["params"] == 4_180_602
    assert "4,180,602" in zoo.entry("hardnet68ds").note


@pytest.mark.parametrize("name, definition", [("hardnet39ds", HARDNET39DS), ("hardnet68ds", HARDNET68DS)])
def test_definition_round_trips(name, definition):
    arch = zoo.get(name)
    assert HarDNetDef.from_arch(arch) == definition
    assert Arch.from_str(arch.to_str()) == arch
    assert Arch.from_json(arch.to_json()) == arch
    assert arch.num_features == 1024


def test_definition_exposes_search_decisions():
    assert HARDNET39DS.growth == (16, 20, 64, 160) and HARDNET39DS.depths == (4, 16, 8, 4)
    assert HARDNET68DS.growth == (14, 16, 20, 40, 160) and HARDNET68DS.depths == (8, 16, 16, 16, 4)
    d = HARDNET68DS.replace_stages(growth=(12, 16, 24, 40, 128), layers=(4, 8, 16, 8, 4))
    assert d.growth == (12, 16, 24, 40, 128) and d.depths == (4, 8, 16, 8, 4)
    assert [s.out_chs for s in d.stages] == [s.out_chs for s in HARDNET68DS.stages]
    assert HarDNetDef.from_arch(hardnet(d)) == d
    with pytest.raises(ValueError):
        HARDNET68DS.replace_stages(growth=(16, 20, 64, 160))


def test_from_arch_rejects_other_networks():
    with pytest.raises(ValueError):
        HarDNetDef.from_arch(zoo.get("mobilenet_v2_100"))


def test_resolution_and_classes_are_parameters():
    arch = hardnet(HarDNetDef(stem_chs=16, mult=1.6, stages=(HarDStage(4, 4, 24, True), HarDStage(8, 2, 32, False))),
                   resolution=64, num_classes=10)
    model = build_model(arch)
    y = model(torch.randn(2, 3, 64, 64))
    assert y.shape == (2, 10) and torch.isfinite(y).all()
    big = hardnet(HARDNET39DS, resolution=32, num_classes=100)
    assert big.num_classes == 100 and [i.out_size for i in big.layers()][-2] == 1
