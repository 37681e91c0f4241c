"""Importing reference weights (torchvision, timm, pytorchcv) into the zoo, exactly.

The reference libraries are not installed here: ``scripts/make_reference_fixtures.py`` recorded,
per network, the reference state dict's keys and its eval-mode output when every tensor holds
``fill_reference_tensor(key, shape)``. These tests rebuild that state dict, import it and
compare our network's output with the recorded one.
"""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import nas
from nas.builder import build_model
from nas.cli import main
from search_spaces import zoo
from search_spaces.zoo.weights import export_weights, import_weights, read_state_dict, reference_model
from search_spaces.zoo.weights.fill import fill_reference_tensor, reference_input

FIXTURES = Path(__file__).parent / "data" / "reference_weights"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))
TOLERANCE = 1e-3
"""Max abs difference relative to the largest |logit|. The fixtures' outputs were computed on one CPU;
float32 kernels sum in another order on another (AVX2 vs AVX-512 paths): the deepest networks'
logits then move by ~1e-4 (mixnet_l: 1.2e-4 on an Intel Xeon against outputs from an AMD EPYC).
A wrong mapping moves them by O(1) (see the swapped-split test)."""


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def _reference_state(fx: dict) -> dict[str, torch.Tensor]:
    """The reference state dict the fixture script built: every key filled by its function."""
    return {k: fill_reference_tensor(k, shape, getattr(torch, dtype)) for k, shape, dtype in fx["keys"]}


def _reference_output(fx: dict) -> torch.Tensor:
    raw = base64.b64decode(fx["output"]["float32_base64"])
    return torch.from_numpy(np.frombuffer(raw, dtype="<f4").reshape(fx["output"]["shape"]).copy())


def _our_output(name: str, state: dict[str, torch.Tensor], resolution: int) -> torch.Tensor:
    model = build_model(zoo.get(name))
    model.load_state_dict(state)
    with torch.no_grad():
        return model.eval()(reference_input(resolution))


def _max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_every_library_reference_has_a_fixture() -> None:
    names = []
    for name in zoo.names():
        try:
            reference_model(name)
        except ValueError:
            assert name.startswith("cifar_"), name  # only the padding-free paper's own code is not a library
            continue
        names.append(name)
    assert sorted(names) == NAMES
    assert len(NAMES) == 23


@pytest.mark.parametrize("name", NAMES)
def test_import_matches_reference_output(name: str) -> None:
    fx = _fixture(name)
    assert (fx["source"], fx["model"]) == reference_model(name)
    ours = import_weights(name, fx["source"], _reference_state(fx))
    expected = _reference_output(fx)
    out = _our_output(name, ours, fx["input"]["resolution"])
    assert out.shape == expected.shape
    assert _max_rel_diff(out, expected) <= TOLERANCE
    # the check has teeth: the two inputs of the batch give clearly different outputs
    assert _max_rel_diff(expected[0], expected[1]) > 1e-2


@pytest.mark.parametrize("name", NAMES)
def test_export_round_trips(name: str) -> None:
    fx = _fixture(name)
    reference = _reference_state(fx)
    back = export_weights(name, fx["source"], import_weights(name, fx["source"], reference))
    assert sorted(back) == sorted(reference)
    for k, v in reference.items():
        # exact but for MobileNetV3's running variances, where the BatchNorm epsilon is folded in
        torch.testing.assert_close(back[k], v, rtol=1e-6, atol=0, msg=k)


def test_split_group_order_matters() -> None:
    """Swapping MixNet's two split 1x1 convs (same shapes) must change the output: the grouped
    conv's halves are placed by name, and the comparison would notice a wrong placement."""
    fx = _fixture("mixnet_s")
    state = _reference_state(fx)
    a, b = "blocks.1.0.conv_pw.0.weight", "blocks.1.0.conv_pw.1.weight"
    state[a], state[b] = state[b], state[a]
    out = _our_output("mixnet_s", import_weights("mixnet_s", "timm", state), 224)
    assert _max_rel_diff(out, _reference_output(fx)) > 1e-3


def test_another_source_layout_of_the_same_network() -> None:
    """timm's MobileNetV2 layout imports into mobilenet_v2_100 too (timm's mobilenetv2_100)."""
    fx = _fixture("mobilenet_v2_100")
    ours = import_weights("mobilenet_v2_100", "torchvision", _reference_state(fx))
    timm_state = export_weights("mobilenet_v2_100", "timm", ours)
    assert "blocks.0.0.conv_dw.weight" in timm_state and "conv_head.weight" in timm_state
    again = import_weights("mobilenet_v2_100", "timm", timm_state)
    assert all(torch.equal(again[k], v) for k, v in ours.items())


# ------------------------------------------------------------------------------------------------
# bad input


def _save(path: Path, obj: object) -> Path:
    torch.save(obj, path)
    return path


def test_keys_of_another_network_are_refused(tmp_path: Path) -> None:
    path = _save(tmp_path / "mbv3.pt", _reference_state(_fixture("mobilenet_v3_large")))
    with pytest.raises(ValueError) as err:
        import_weights("mixnet_s", "timm", path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(path))
    assert "not timm weights of mixnet_s" in msg
    assert "unmapped: features.0.0.weight" in msg and "missing: conv_stem.weight" in msg


def test_misshaped_keys_are_listed() -> None:
    state = _reference_state(_fixture("mixnet_s"))
    state["conv_stem.weight"] = torch.zeros(8, 3, 3, 3)
    with pytest.raises(ValueError, match=r"1 mis-shaped: conv_stem.weight \[8, 3, 3, 3\] \(expected \[16, 3, 3, 3\]\)"):
        import_weights("mixnet_s", "timm", state)


def test_another_class_count_offers_num_classes(tmp_path: Path) -> None:
    state = _reference_state(_fixture("mixnet_s"))
    state["classifier.weight"] = state["classifier.weight"][:10].clone()
    state["classifier.bias"] = state["classifier.bias"][:10].clone()
    path = _save(tmp_path / "ten.pt", state)
    with pytest.raises(ValueError, match=r"10-class classifier.*--num-classes 10"):
        import_weights("mixnet_s", "timm", path)
    ours = import_weights("mixnet_s", "timm", path, num_classes=10)
    model = build_model(zoo.get("mixnet_s").replace(num_classes=10))
    model.load_state_dict(ours)
    assert export_weights("mixnet_s", "timm", ours)["classifier.weight"].shape == (10, 1536)


def test_truncated_file_is_refused(tmp_path: Path) -> None:
    path = _save(tmp_path / "whole.pt", _reference_state(_fixture("mobilenet_v3_small")))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"whole\.pt: not a state dict torch\.load\(weights_only=True\) can read"):
        import_weights("mobilenet_v3_small", "torchvision", path)


@pytest.mark.parametrize(("obj", "what"), [
    ([torch.zeros(1)], r"not a state dict \(a list\)"),
    ({"conv1.0.weight": 3}, r"not a state dict \(entry 'conv1.0.weight' is a int, not a tensor\)"),
    ({}, "an empty state dict"),
])
def test_not_a_state_dict_is_refused(tmp_path: Path, obj: object, what: str) -> None:
    path = _save(tmp_path / "x.pt", obj)
    with pytest.raises(ValueError, match=rf"x\.pt: {what}"):
        import_weights("shufflenet_v2_x0_5", "torchvision", path)


_RAN: list[str] = []


def _record(tag: str) -> str:
    _RAN.append(tag)
    return tag


class _Payload:
    """Unpickling this would call :func:`_record`: weights_only must refuse it instead."""

    def __reduce__(self) -> tuple:
        return (_record, ("unpickled",))


def test_pickle_with_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"conv1.0.weight": _Payload()}, fh, protocol=2)
    torch_path = _save(tmp_path / "evil_torch.pt", {"conv1.0.weight": _Payload()})
    for p in (path, torch_path):
        with pytest.raises(ValueError, match=rf"{p.name}: not a state dict torch\.load\(weights_only=True\)"):
            read_state_dict(p)
    assert _RAN == []


def test_missing_file_unknown_source_and_no_layout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"nope\.pt: no such file"):
        import_weights("mixnet_s", "timm", tmp_path / "nope.pt")
    with pytest.raises(ValueError, match=r"unknown weights source 'keras'; known: torchvision, timm, pytorchcv"):
        import_weights("mixnet_s", "keras", {"a": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"hardnet39ds: no torchvision layout for the hardnet family"):
        import_weights("hardnet39ds", "torchvision", {"a": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"is not one of torchvision, timm, pytorchcv"):
        reference_model("cifar_ghostnet_100_pf")


def test_safetensors_file(tmp_path: Path) -> None:
    import safetensors.torch as st

    fx = _fixture("ghostnet_050")
    path = tmp_path / "g.safetensors"
    st.save_file(_reference_state(fx), str(path))
    ours = import_weights("ghostnet_050", "timm", path)
    assert _max_rel_diff(_our_output("ghostnet_050", ours, 224), _reference_output(fx)) <= TOLERANCE


# ------------------------------------------------------------------------------------------------
# CLI


def test_cli_import_weights_writes_a_litenas_model_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fx = _fixture("ghostnet_050")
    ckpt = _save(tmp_path / "ghostnet_050_timm.pt", _reference_state(fx))
    out = tmp_path / "weights.pt"
    assert main(["zoo", "import-weights", "ghostnet_050", "--source", "timm", "--checkpoint", str(ckpt),
                 "--out", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["tensors"] == 512 and record["num_classes"] == 1000
    model = nas.load(out)  # the pt format: also what `nas train --init` and `nas export --weights` read
    with torch.no_grad():
        assert _max_rel_diff(model(reference_input(224)), _reference_output(fx)) <= TOLERANCE


def test_cli_refuses_another_class_count_with_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = _reference_state(_fixture("shufflenet_v2_x0_5"))
    state["fc.weight"], state["fc.bias"] = state["fc.weight"][:2].clone(), state["fc.bias"][:2].clone()
    ckpt = _save(tmp_path / "two.pt", state)
    args = ["zoo", "import-weights", "shufflenet_v2_x0_5", "--checkpoint", str(ckpt), "--out", str(tmp_path / "w.pt")]
    assert main(args) == 2
    assert "--num-classes 2" in capsys.readouterr().err
    assert main([*args, "--num-classes", "2"]) == 0
    assert nas.load(tmp_path / "w.pt").num_classes == 2
