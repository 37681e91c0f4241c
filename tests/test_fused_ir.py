"""The fused inverted residual (op ``er``, Fused-MBConv of EfficientNetV2), end to end: an op added
by its module, its registration and these tests only; and the keyword constructors every block
module has. It builds with exact counts, is written and
read in both description forms, has latency-table keys that read back and are measured by the
table builder, stands in a search space as a layer template (sampled, encoded, counted), shares
its weights in a supernet and inherits them, and exports (``tests/test_export.py`` covers it
through a network of the space below)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from evaluators.supernet import OneShotSupernet
from latency_tables.build import build_table
from latency_tables.measure import Settings
from latency_tables.predict import LatencyPredictor
from nas.arch import Arch, Block
from nas.builder import build_model
from nas.complexity import count_macs_conv_linear
from search_spaces.layerwise import layerwise_view
from search_spaces.mobile import CORE_TEMPLATES, MobileSpace
from search_spaces.ops.ghost import GhostBottleneck
from search_spaces.ops.mbconv import DepthwiseSeparable, FusedInvertedResidual, InvertedResidual
from search_spaces.ops.shufflenet import ShuffleUnit
from search_spaces.registry import OpConfig, OpContext, get_op

ER_TEMPLATES = ("er_k3_e1", "er_k3_e4", "er_k5_e4_se0.25")
"""Fused-MBConv layer templates: EfficientNetV2's e1/e4 with 3x3 kernels, and a 5x5 with SE."""


def er_space(templates: tuple[str, ...] = CORE_TEMPLATES + ER_TEMPLATES) -> MobileSpace:
    return MobileSpace(resolution=32, num_classes=10, templates=templates)


def net(*blocks: Block) -> Arch:
    return Arch(resolution=32, num_classes=10, stem=Block.make("cn", out_chs=16), blocks=blocks,
                head=Block.make("hc", out_chs=64))


def test_counts_shapes_and_residual() -> None:
    spec = get_op("er")
    args = spec.normalise_args({"out_chs": 24, "stride": 2, "exp_ratio": 4})
    op = spec.build(OpContext(16), args)
    # 3x3 expansion 16 -> 64 (make_divisible(16 * 4)), BN, 1x1 projection 64 -> 24, BN; no bias.
    assert sum(p.numel() for p in op.parameters()) == 16 * 64 * 9 + 2 * 64 + 64 * 24 + 2 * 24
    assert count_macs_conv_linear(op, (16, 32, 32)) == (16 * 64 * 9 + 64 * 24) * 16 * 16
    assert op(torch.randn(2, 16, 32, 32)).shape == (2, 24, 16, 16) and not op.has_skip
    assert spec.out_size(32, args) == 16 and spec.out_chs(16, args) == 24
    same = spec.build(OpContext(24), spec.normalise_args({"out_chs": 24, "exp_ratio": 4}))
    assert same.has_skip
    with_se = spec.build(OpContext(24), spec.normalise_args({"out_chs": 24, "exp_ratio": 4, "se_ratio": 0.25}))
    assert [type(m).__name__ for m in with_se.body] == ["ConvBnAct", "SqueezeExcite", "ConvBnAct"]
    with pytest.raises(ValueError, match="field 'kernel'.*odd"):
        spec.normalise_args({"out_chs": 24, "exp_ratio": 4, "kernel": 4})
    with pytest.raises(ValueError, match="field 'kernel'.*integer"):
        spec.normalise_args({"out_chs": 24, "exp_ratio": 4, "kernel": [3, 5]})


def test_description_forms_and_training_step() -> None:
    arch = net(Block.make("er", out_chs=16, exp_ratio=1),
               Block.make("er", out_chs=24, stride=2, exp_ratio=4, kernel=5, se_ratio=0.25),
               Block.make("er", out_chs=24, exp_ratio=4, act="hswish"))
    assert "\ner_c24_k5_s2_e4_se0.25\n" in arch.to_str()  # timm's EdgeResidual token, ``er_...``
    assert Arch.from_str(arch.to_str()) == arch == Arch.from_json(arch.to_json())
    model = build_model(arch)
    loss = model(torch.randn(4, 3, 32, 32)).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_latency_keys_read_back_and_are_measured(tmp_path) -> None:
    arch = net(Block.make("er", out_chs=24, stride=2, exp_ratio=4), Block.make("er", out_chs=24, exp_ratio=4))
    configs = list(arch.op_configs())
    keys = [c.key() for c in configs]
    assert keys[1] == "er|16x32x32|out_chs=24,stride=2,exp_ratio=4.0"
    assert [OpConfig.from_key(k) for k in keys] == configs
    fast = Settings(warmup=1, min_repeats=3, max_repeats=6, max_seconds=0.5, per_round=2)
    table = build_table(configs, tmp_path / "t.json", fast, resolution=32, progress=False)
    assert all(k in table for k in keys) and LatencyPredictor(table).predict(arch) > 0


def test_a_space_with_fused_templates_samples_encodes_and_counts_them() -> None:
    space = er_space()
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(30)]
    fused = [a for a in archs if any(b.op == "er" for b in a.blocks)]
    assert fused, "no sampled network used a fused template"
    for a in fused:
        assert space.decode(space.encode(a)) == a
    assert space.size() > er_space(CORE_TEMPLATES).size()
    assert not er_space(CORE_TEMPLATES).contains(fused[0])


def test_supernet_shares_and_hands_down_fused_weights() -> None:
    view = layerwise_view(er_space(("er_k3_e4", "er_k5_e4", "er_k3_e1", "skip")))
    torch.manual_seed(0)
    sn = OneShotSupernet(view)
    banks = {key for bank in sn.shared for key in bank}
    assert any(key.startswith("er_expand_") for key in banks) and any(key.startswith("er_proj_") for key in banks)
    path = sn.random_path(torch.Generator().manual_seed(3))
    sub = sn.subnet(path).eval()
    sn.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(sub(x), sn.use(path)(x), atol=1e-5)


@pytest.mark.parametrize(("op", "cls"), [("ds", DepthwiseSeparable), ("ir", InvertedResidual),
                                         ("er", FusedInvertedResidual), ("ghost", GhostBottleneck),
                                         ("shuffle", ShuffleUnit)])
def test_block_constructors_take_the_registry_fields_by_keyword(op: str, cls: type) -> None:
    """The ``(in_chs, out_chs, stride, **kwargs)`` constructors name every field of their op, with
    its default (required fields without one), so building from Python and from a description agree."""
    params = dict(inspect.signature(cls).parameters)
    assert list(params)[:3] == ["in_chs", "out_chs", "stride"]
    fields = get_op(op).fields
    assert set(params) - {"in_chs"} == {f.name for f in fields}
    for f in fields:
        default = params[f.name].default
        assert (default is inspect.Parameter.empty) if f.required else (default == f.default), f.name
