"""Backbones: ``feature_info``, ``forward_intermediates`` and ``build_model(features_only=True)``
(timm's conventions), and exported networks that keep them."""

from __future__ import annotations

import importlib.util
import json
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from nas.builder import LiteNet, LiteNetFeatures, build_model
from nas.export import export
from nas.export.torchscript import FEATURE_INFO_FILE
from nas.export.torchscript import load as load_torchscript
from nas.features import feature_take_indices
from search_spaces import zoo

# timm's feature_info of the same networks (mobilenetv2_100, mobilenetv3_large_100, mixnet_s,
# efficientnet_b0): channels at reductions 2, 4, 8, 16, 32.
TIMM_CHANNELS = {
    "mobilenet_v2_100": [16, 24, 32, 96, 320],
    "mobilenet_v3_large": [16, 24, 40, 112, 960],
    "mixnet_s": [16, 24, 40, 120, 200],
    "efficientnet_b0": [16, 24, 40, 112, 320],
}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _maps_by_hooks(model: LiteNet, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The output of every module ``feature_info`` names, caught by forward hooks on the plain
    forward pass, and the network's output."""
    caught: dict[str, torch.Tensor] = {}
    handles = [model.get_submodule(f["module"]).register_forward_hook(
        lambda _m, _i, out, name=f["module"]: caught.__setitem__(name, out)) for f in model.feature_info]
    try:
        logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return logits, [caught[f["module"]] for f in model.feature_info]


@pytest.mark.parametrize("name", sorted(TIMM_CHANNELS))
def test_imagenet_nets_have_timms_five_feature_maps(name: str) -> None:
    info = build_model(zoo.get(name)).feature_info
    assert [f["reduction"] for f in info] == [2, 4, 8, 16, 32]
    assert [f["num_chs"] for f in info] == TIMM_CHANNELS[name]


def test_mobilenet_v2_feature_modules() -> None:
    info = build_model(zoo.get("mobilenet_v2_100")).feature_info
    assert [f["module"] for f in info] == ["blocks.0", "blocks.2", "blocks.5", "blocks.12", "blocks.16"]


@pytest.mark.parametrize("name, resolution", [("mobilenet_v2_035", 96), ("shufflenet_v2_x0_5", 64),
                                              ("cifar_mobilenet_v3_large", 32), ("hardnet39ds", 64)])
def test_intermediates_are_the_plain_forwards_maps(name: str, resolution: int) -> None:
    arch = zoo.get(name)
    model = build_model(arch.replace(resolution=resolution)).eval()
    x = torch.randn(2, 3, resolution, resolution)
    with torch.no_grad():
        logits, expected = _maps_by_hooks(model, x)
        final, maps = model.forward_intermediates(x)
        assert torch.equal(final, model.forward_features(x))
        assert torch.equal(model.forward_head(final), logits)
        assert len(maps) == len(expected) == len(model.feature_info)
        for m, e, f in zip(maps, expected, model.feature_info, strict=True):
            assert torch.equal(m, e)
            assert m.shape[1] == f["num_chs"]
            assert m.shape[-1] == -(-resolution // f["reduction"])  # 'same' padding: ceil(size / reduction)
        only = model.forward_intermediates(x, indices=[0, -1], intermediates_only=True)
        assert [torch.equal(a, b) for a, b in zip(only, [expected[0], expected[-1]], strict=True)] == [True, True]
        assert all(torch.equal(a, b) for a, b in zip(model.forward_intermediates(x, 2, True), expected[-2:],
                                                     strict=True))


def test_features_only_model_truncates_and_matches() -> None:
    arch = zoo.get("mobilenet_v2_100").replace(resolution=64)
    full = build_model(arch).eval()
    backbone = LiteNetFeatures(full, out_indices=(1, 2, 3))
    assert backbone.feature_info.channels() == [24, 32, 96]
    assert backbone.feature_info.reduction() == [4, 8, 16]
    assert backbone.feature_info.module_name() == ["blocks.2", "blocks.5", "blocks.12"]
    assert len(backbone.blocks) == 13  # nothing after the last selected map is kept
    assert not any(k.startswith("head.") for k in backbone.state_dict())
    assert all(torch.equal(v, full.state_dict()[k]) for k, v in backbone.state_dict().items())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        got = backbone.eval()(x)
        expected = full.forward_intermediates(x, [1, 2, 3], intermediates_only=True)
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))
    built = build_model(arch, features_only=True)
    assert isinstance(built, LiteNetFeatures) and built.feature_info.reduction() == [2, 4, 8, 16, 32]


def test_index_selection_and_bad_indices() -> None:
    assert feature_take_indices(5) == [0, 1, 2, 3, 4]
    assert feature_take_indices(5, 2) == [3, 4]
    assert feature_take_indices(5, [4, -5, 4]) == [0, 4]
    for bad in (0, 6, [5], [-6]):
        with pytest.raises(ValueError, match="feature"):
            feature_take_indices(5, bad)
    with pytest.raises(ValueError, match="features_only"):
        build_model(zoo.get("mobilenet_v2_035"), out_indices=(1,))


def test_exported_py_and_torchscript_keep_forward_intermediates(tmp_path: Path) -> None:
    model = build_model(zoo.get("cifar_mobilenet_v3_large")).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model.forward_intermediates(x, intermediates_only=True)
        export(model, "torchscript", tmp_path / "net.ts")
        scripted = load_torchscript(tmp_path / "net.ts").forward_intermediates(x, None, True)
        export(model, "py", tmp_path / "net.py")
        spec = importlib.util.spec_from_file_location("_features_py_export", tmp_path / "net.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
            standalone = module.load()
            generated = standalone.forward_intermediates(x, intermediates_only=True)
        finally:
            del sys.modules[spec.name]
    assert standalone.feature_info == model.feature_info
    for got in (scripted, generated):
        assert len(got) == len(expected) and all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, expected,
                                                                                                  strict=True))
    with zipfile.ZipFile(tmp_path / "net.ts") as archive:
        stored = next(n for n in archive.namelist() if n.endswith(f"extra/{FEATURE_INFO_FILE}"))
        assert json.loads(archive.read(stored)) == model.feature_info
