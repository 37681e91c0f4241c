"""Weight inheritance (``nas train --init-from``): which layers correspond, how tensors are cut, what
is counted, and the command's input checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nas.arch import Arch, Block
from nas.builder import build_model
from nas.cli import main
from nas.export.pt import save
from nas.inherit import block_stages, corresponding_layers, inherit

FAST = ["--batch-size", "16", "--threads", "1", "--quiet", "--epochs", "1"]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def net(width: int = 16, exp: float = 4, kernel: int | tuple[int, ...] = 5, depth: int = 2, classes: int = 4,
        se: float = 0.0) -> Arch:
    """A small network: stem, a stride-2 stage of ``depth`` inverted residuals, a 2nd stage."""
    stage = [Block.make("ir", out_chs=width, exp_ratio=exp, kernel=kernel, stride=2, se_ratio=se)]
    stage += [Block.make("ir", out_chs=width, exp_ratio=exp, kernel=kernel, se_ratio=se)] * (depth - 1)
    return Arch(resolution=16, num_classes=classes, stem=Block.make("cn", out_chs=8),
                blocks=(*stage, Block.make("ir", out_chs=2 * width, exp_ratio=exp, stride=2)),
                head=Block.make("hc", out_chs=64))


def trained_state(arch: Arch, seed: int = 1) -> dict[str, torch.Tensor]:
    """A state dict of ``arch`` with every tensor random (as if trained; BN statistics included)."""
    gen = torch.Generator().manual_seed(seed)
    state = build_model(arch).state_dict()
    return {k: (torch.rand(v.shape, generator=gen) + 0.5 if v.is_floating_point() else v) for k, v in state.items()}


def test_stages_start_at_every_shape_change() -> None:
    stages = block_stages(net(depth=3))
    assert [[i.index for i in s] for s in stages] == [[0, 1, 2], [3]]


def test_a_network_inherits_all_of_itself() -> None:
    arch = net()
    state = trained_state(arch)
    got = inherit(arch, arch, state)
    assert got.fraction == 1.0 and got.params_inherited == sum(p.numel() for p in build_model(arch).parameters())
    assert all(torch.equal(got.state[k], v) for k, v in state.items() if v.dim())


def test_narrower_smaller_kernel_shallower_takes_leading_channels_and_centred_kernels() -> None:
    source, target = net(width=16, exp=6, kernel=5, depth=3), net(width=8, exp=3, kernel=3, depth=2)
    state = trained_state(source)
    got = inherit(target, source, state)
    # block 0 of each: expand conv [mid, in, 1, 1] leading rows; depthwise [mid, 1, 5, 5] -> centre 3x3
    mid = build_model(target).blocks[0].body[0].conv.weight.shape[0]
    assert torch.equal(got.state["blocks.0.body.0.conv.weight"], state["blocks.0.body.0.conv.weight"][:mid])
    dw = state["blocks.0.body.1.dw.conv.weight"]
    assert torch.equal(got.state["blocks.0.body.1.dw.conv.weight"], dw[:mid, :, 1:4, 1:4])
    assert torch.equal(got.state["blocks.0.body.1.dw.bn.running_var"], state["blocks.0.body.1.dw.bn.running_var"][:mid])
    # the target's last block (2nd stage, position 0) meets the source's block 3, not block 2
    assert torch.equal(got.state["blocks.2.body.2.conv.weight"], state["blocks.3.body.2.conv.weight"][:16, :24])
    assert torch.equal(got.state["head.pre.conv.weight"], state["head.pre.conv.weight"][:, :16])
    assert got.fraction == 1.0  # narrower everywhere: every tensor fits inside its counterpart
    assert "head.classifier.weight" in got.keys  # same class count


def test_wider_tensors_other_classes_and_other_ops_keep_their_initialisation() -> None:
    source = net(width=8)
    target = net(width=16, classes=7).replace(stem=Block.make("hybrid", out_chs=8))
    fresh = build_model(target).state_dict()
    got = inherit(target, source, trained_state(source), target_state=fresh)
    assert not any(k.startswith(("stem.", "head.classifier.")) for k in got.keys)  # another op; 7 vs 4 classes
    # projection of block 0: 16 output channels where the source has 8 -> stays as initialised
    assert "blocks.0.body.2.conv.weight" not in got.keys
    assert torch.equal(got.state["blocks.0.body.2.conv.weight"], fresh["blocks.0.body.2.conv.weight"])
    assert "blocks.0.body.0.conv.weight" in got.keys  # its expansion (8 -> 32 channels) has the same shape


def test_mixed_kernel_groups_are_cut_from_a_plain_depthwise_conv() -> None:
    source, target = net(kernel=7), net(kernel=(3, 5))
    state = trained_state(source)
    got = inherit(target, source, state)
    dw = state["blocks.0.body.1.dw.conv.weight"]
    half = dw.shape[0] // 2
    assert torch.equal(got.state["blocks.0.body.1.dw.conv.convs.0.weight"], dw[:half, :, 2:5, 2:5])
    assert torch.equal(got.state["blocks.0.body.1.dw.conv.convs.1.weight"], dw[half:, :, 1:6, 1:6])


def test_parts_meet_by_role_whatever_their_position() -> None:
    """Squeeze-excite shifts the projection from body.2 to body.3; it is still the projection."""
    source, target = net(se=0.25), net()
    state = trained_state(source)
    got = inherit(target, source, state)
    assert torch.equal(got.state["blocks.0.body.2.conv.weight"], state["blocks.0.body.3.conv.weight"])
    pairs = [(a, b) for a, _, b, _ in corresponding_layers(target, source)]
    assert pairs == [("stem", "stem"), ("blocks.0", "blocks.0"), ("blocks.1", "blocks.1"), ("blocks.2", "blocks.2"),
                     ("head", "head")]


def test_cli_inherits_from_a_run_or_a_model_file_and_reports_it(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    source = net(width=16, exp=6).save(tmp_path / "source.json")
    assert main(["train", str(source), "--data", "synthetic", "--out", str(tmp_path / "src"), *FAST]) == 0
    target = net(width=8, exp=3).save(tmp_path / "target.json")
    capsys.readouterr()
    assert main(["train", str(target), "--data", "synthetic", "--out", str(tmp_path / "a"), "--init-from",
                 str(tmp_path / "src"), "--json", *FAST]) == 0
    summary = json.loads(capsys.readouterr().out)["init_from"]
    assert 0 < summary["fraction"] <= 1 and summary["params_inherited"] <= summary["params_total"]
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["identity"]["init_from"]["arch"] == Arch.load(source).hash()
    model = build_model(Arch.load(source))
    model.load_state_dict(torch.load(tmp_path / "src" / "weights.pt", weights_only=True))
    save(model, tmp_path / "source.pt")
    assert main(["train", str(target), "--data", "synthetic", "--out", str(tmp_path / "b"), "--init-from",
                 str(tmp_path / "source.pt"), *FAST]) == 0
    out = capsys.readouterr().out
    assert f"inherited {summary['params_inherited']:,} of {summary['params_total']:,} parameters" in out


def test_cli_refuses_what_it_cannot_inherit_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arch = net().save(tmp_path / "a.json")
    plain = tmp_path / "plain.pt"
    torch.save(build_model(net()).state_dict(), plain)
    cases = {
        "mobilenet_v2_100": "zoo entries carry no weights",
        str(plain): "without its description",
        str(tmp_path / "nothing"): "no such file",
    }
    for spec, needle in cases.items():
        assert main(["train", str(arch), "--data", "synthetic", "--out", str(tmp_path / "o"), "--init-from", spec,
                     *FAST]) == 2
        assert needle in capsys.readouterr().err
    assert main(["train", str(arch), "--data", "synthetic", "--out", str(tmp_path / "o"), "--init-from", str(plain),
                 "--init", str(plain), *FAST]) == 2
    assert "exclude each other" in capsys.readouterr().err
