"""Transfer learning end to end, as the README tells it: import a reference library's ImageNet
weights (`nas zoo import-weights`), fine-tune a new 2-class classifier on an image folder with the
features frozen (`nas train --init ... --num-classes 2 --freeze features`), export (`nas export`).

The checkpoint is the reference state dict of ``tests/data/reference_weights/mobilenet_v2_035.json``
(timm's ``mobilenetv2_035``) filled with :func:`fill_reference_tensor`, as the exactness tests
build it; the network runs at 64 px to keep the test fast (weights do not depend on the input size).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import nas
from nas.cli import main
from search_spaces import zoo
from search_spaces.zoo.weights.fill import fill_reference_tensor

FIXTURE = Path(__file__).parent / "data" / "reference_weights" / "mobilenet_v2_035.json"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _reference_checkpoint(path: Path) -> Path:
    fx = json.loads(FIXTURE.read_text(encoding="utf-8"))
    torch.save({k: fill_reference_tensor(k, shape, getattr(torch, dtype)) for k, shape, dtype in fx["keys"]}, path)
    return path


def _image_folder(root: Path, per_class: dict[str, int]) -> Path:
    """``train/<class>/`` and ``test/<class>/`` of random 72x80 JPEGs (not the network's size: the
    folder streams, as an ImageNet-style one does)."""
    rng = np.random.default_rng(0)
    for split, n in per_class.items():
        for label in ("cat", "dog"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (72, 80, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    return root


def test_import_fine_tune_frozen_features_and_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    checkpoint = _reference_checkpoint(tmp_path / "mobilenetv2_035.pth")
    imported = tmp_path / "mbv2.pt"
    assert main(["zoo", "import-weights", "mobilenet_v2_035", "--source", "timm", "--checkpoint", str(checkpoint),
                 "--out", str(imported)]) == 0
    arch = zoo.get("mobilenet_v2_035").replace(resolution=64).save(tmp_path / "mbv2_64.json")
    data = _image_folder(tmp_path / "pets", {"train": 8, "test": 4})
    run = tmp_path / "run"
    capsys.readouterr()
    assert main(["train", str(arch), "--init", str(imported), "--num-classes", "2", "--freeze", "features",
                 "--data", str(data), "--out", str(run), "--epochs", "1", "--batch-size", "8", "--workers", "0",
                 "--threads", "1", "--quiet", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["complete"] and summary["plan"]["device"] == "cpu"

    before = nas.load(imported).state_dict()
    after = torch.load(run / "weights.pt", map_location="cpu", weights_only=True)
    assert after["head.classifier.weight"].shape == (2, 1280)
    features = [k for k in after if not k.startswith("head.classifier.")]
    assert all(torch.equal(after[k], before[k]) for k in features)  # frozen, BatchNorm statistics included
    assert not torch.equal(after["head.classifier.bias"], torch.zeros(2))  # the new classifier trained

    for fmt, out in (("pt", tmp_path / "pets.pt"), ("onnx", tmp_path / "pets.onnx")):
        assert main(["export", str(run / "arch.json"), "--format", fmt, "--out", str(out),
                     "--weights", str(run / "weights.pt")]) == 0
    net = nas.load(tmp_path / "pets.pt")
    assert net.num_classes == 2 and net.arch.resolution == 64
    with torch.no_grad():
        assert net(torch.randn(1, 3, 64, 64)).shape == (1, 2)
