"""StreamingFolder on small generated image folders: batch shapes and labels, determinism across
worker counts, the train and test transforms, subsets, fingerprints, corrupt files, the mean/std
estimate, and should_stream / folder_bytes_estimate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evaluators.training.stream import (
    StreamingFolder,
    _random_resized_box,
    folder_bytes_estimate,
    should_stream,
)

CLASSES = ("ant", "bee", "cat")
SIZES = ((40, 30), (50, 50), (64, 48))  # width, height


def _textured(width: int, height: int, channel: int, rng: np.random.Generator) -> np.ndarray:
    """Class ``channel`` is bright in that channel, dark in the others, with noise on top."""
    base = np.full((height, width, 3), 40, dtype=np.int64)
    base[:, :, channel] = 200
    return np.clip(base + rng.integers(-30, 31, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x 6 train / 2 test images, JPEG and PNG, of mixed sizes."""
    root = tmp_path_factory.mktemp("stream") / "tiny"
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        for c, name in enumerate(CLASSES):
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                w, h = SIZES[i % 3]
                Image.fromarray(_textured(w, h, c, rng)).save(d / f"{i:02d}.{'jpg' if i % 2 else 'png'}")
    (root / "train" / "ant" / "notes.txt").write_text("not an image")
    return root


def _copy(src: Path, dst: Path) -> Path:
    for p in src.rglob("*"):
        if p.is_file():
            (dst / p.relative_to(src)).parent.mkdir(parents=True, exist_ok=True)
            (dst / p.relative_to(src)).write_bytes(p.read_bytes())
    return dst


def _all(batches) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in batches]


def test_shapes_labels_and_drop_last(folder: Path) -> None:
    s = StreamingFolder(folder, resolution=16, workers=0)
    assert (s.name, s.classes, s.num_classes, s.resolution, s.channels) == ("tiny", CLASSES, 3, 16, 3)
    assert (s.num_train, s.num_test) == (18, 6)
    assert s.steps_per_epoch(4) == 4 and s.steps_per_epoch(18) == 1
    batches = _all(s.train_batches(0, 4))
    assert len(batches) == 4  # 18 images: two dropped
    labels = torch.cat([y for _, y in batches])
    assert torch.bincount(labels, minlength=3).sum() == 16 and not torch.equal(labels, labels.sort().values)
    for x, y in batches:
        assert x.shape == (4, 16, 16, 3) and x.dtype == torch.uint8 and y.dtype == torch.int64
        # each class is bright in its own channel, so the brightest channel gives the label
        assert torch.equal(x.float().mean(dim=(1, 2)).argmax(dim=1), y)
    test = _all(s.test_batches(4))
    assert [len(y) for _, y in test] == [4, 2]
    assert torch.cat([y for _, y in test]).tolist() == [0, 0, 1, 1, 2, 2]
    assert all(torch.equal(x.float().mean(dim=(1, 2)).argmax(dim=1), y) for x, y in test)


def test_grayscale(folder: Path) -> None:
    s = StreamingFolder(folder, resolution=12, workers=0, channels=1)
    x, y = next(s.train_batches(0, 5))
    assert x.shape == (5, 12, 12, 1) and len(s.mean_std[0]) == 1
    assert next(s.test_batches(6))[0].shape == (6, 12, 12, 1)


def test_same_batches_whatever_the_workers(folder: Path) -> None:
    one = StreamingFolder(folder, resolution=16, seed=3, workers=0)
    two = StreamingFolder(folder, resolution=16, seed=3, workers=2)
    for epoch in (0, 1):
        a, b = _all(one.train_batches(epoch, 5)), _all(two.train_batches(epoch, 5))
        assert len(a) == len(b) == 3
        assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b, strict=True))
    assert all(torch.equal(xa, xb) for (xa, _), (xb, _) in zip(one.test_batches(4), two.test_batches(4), strict=True))


def test_epochs_and_seeds_differ(folder: Path) -> None:
    s = StreamingFolder(folder, resolution=16, workers=0)
    e0, e0_again, e1 = (torch.cat([x for x, _ in s.train_batches(e, 6)]) for e in (0, 0, 1))
    assert torch.equal(e0, e0_again) and not torch.equal(e0, e1)
    order = [torch.cat([y for _, y in s.train_batches(e, 6)]) for e in (0, 1)]
    assert not torch.equal(order[0], order[1])
    other = StreamingFolder(folder, resolution=16, seed=1, workers=0)
    assert not torch.equal(e0, torch.cat([x for x, _ in other.train_batches(0, 6)]))


def test_leaves_the_global_torch_generator_alone(folder: Path) -> None:
    s = StreamingFolder(folder, resolution=16, workers=0)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    list(s.train_batches(0, 6))
    list(s.test_batches(6))
    assert torch.equal(torch.rand(3), expected)


def test_full_area_crop_is_a_resize_maybe_flipped(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    image = _textured(50, 50, 0, rng)
    for split in ("train", "test"):
        (tmp_path / split / "a").mkdir(parents=True)
        Image.fromarray(image).save(tmp_path / split / "a" / "x.png")
    resized = np.asarray(Image.fromarray(image).resize((10, 10), Image.BILINEAR))
    plain = StreamingFolder(tmp_path, resolution=10, workers=0, min_scale=1.0, flip=False)
    for epoch in range(3):
        assert np.array_equal(next(plain.train_batches(epoch, 1))[0][0].numpy(), resized)
    flipping = StreamingFolder(tmp_path, resolution=10, workers=0, min_scale=1.0)
    seen = {next(flipping.train_batches(epoch, 1))[0][0].numpy().tobytes() for epoch in range(12)}
    assert seen == {resized.tobytes(), resized[:, ::-1].tobytes()}


def test_random_resized_box_bounds_and_fallback() -> None:
    rng = np.random.default_rng(0)
    for width, height in ((40, 30), (20, 60), (300, 300)):
        for _ in range(200):
            left, top, w, h = _random_resized_box(width, height, 0.08, rng)
            assert 0 <= left and 0 <= top and left + w <= width and top + h <= height
            assert (w + 0.5) * (h + 0.5) >= 0.08 * width * height  # up to rounding of the sides
            assert (w - 0.5) / (h + 0.5) <= 4 / 3 and (w + 0.5) / (h - 0.5) >= 3 / 4
    # a 1000x10 strip admits no crop: centre of the widest 4:3 box
    assert _random_resized_box(1000, 10, 0.5, rng) == ((1000 - 13) // 2, 0, 13, 10)
    assert _random_resized_box(10, 1000, 0.5, rng) == (0, (1000 - 13) // 2, 10, 13)
    assert _random_resized_box(7, 200, 0.08, rng) == (0, (200 - 9) // 2, 7, 9)


def test_test_batches_centre_crop(tmp_path: Path) -> None:
    # 64x48 at resolution 16: shorter side to round(16 / 0.875) = 18 (24x18), centre crop 16x16,
    # i.e. source columns ~10.7..53.3 and rows ~2.7..45.3. Blue margins outside that box must vanish.
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    image[:, :] = (255, 0, 0)
    image[:, :8] = image[:, 56:] = image[:1] = image[47:] = (0, 0, 255)
    image[16:32, 24:40] = (0, 255, 0)
    for split in ("train", "test"):
        (tmp_path / split / "a").mkdir(parents=True)
        Image.fromarray(image).save(tmp_path / split / "a" / "x.png")
    s = StreamingFolder(tmp_path, resolution=16, workers=0)
    x = next(s.test_batches(1))[0][0].numpy()
    assert x.shape == (16, 16, 3) and x[..., 2].max() == 0
    assert tuple(x[8, 8]) == (0, 255, 0) and tuple(x[0, 0]) == (255, 0, 0)
    assert np.array_equal(x, next(s.test_batches(1))[0][0].numpy())
    assert np.asarray(Image.fromarray(image).resize((16, 16), Image.BILINEAR))[..., 2].max() > 0


def test_large_jpeg_matches_the_two_step_centre_crop(tmp_path: Path) -> None:
    # A 400x300 JPEG is decoded at reduced scale (PIL draft) and only the crop box is resized; the
    # result must still match the full decode resized to 24x18 (shorter side round(16 / 0.875)),
    # then centre-cropped to 16x16.
    yy, xx = np.mgrid[0:300, 0:400]
    image = np.stack([xx * 255 // 399, yy * 255 // 299, (xx + yy) * 255 // 698], axis=-1).astype(np.uint8)
    for split in ("train", "test"):
        (tmp_path / split / "a").mkdir(parents=True)
        Image.fromarray(image).save(tmp_path / split / "a" / "x.jpg", quality=95)
    with Image.open(tmp_path / "test" / "a" / "x.jpg") as im:
        reference = np.asarray(im.convert("RGB").resize((24, 18), Image.BILINEAR))[1:17, 4:20]
    s = StreamingFolder(tmp_path, resolution=16, workers=0)
    x = next(s.test_batches(1))[0][0].numpy()
    assert np.abs(x.astype(int) - reference).mean() < 3
    assert next(s.train_batches(0, 1))[0].shape == (1, 16, 16, 3)


@pytest.mark.parametrize("workers", [0, 2])
def test_corrupt_image_names_the_file(folder: Path, tmp_path: Path, workers: int) -> None:
    root = _copy(folder, tmp_path / "data")
    bad = root / "train" / "bee" / "zz_bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff not really a jpeg")
    s = StreamingFolder(root, resolution=16, workers=workers)
    with pytest.raises(ValueError, match="zz_bad.jpg: cannot decode image"):
        list(s.train_batches(0, 19))


def test_subsets(folder: Path) -> None:
    s = StreamingFolder(folder, resolution=16, workers=0, train_per_class=2, test_per_class=1, seed=4)
    assert (s.num_train, s.num_test) == (6, 3)
    labels = torch.cat([y for _, y in s.train_batches(0, 3)])
    assert torch.bincount(labels).tolist() == [2, 2, 2]
    again = StreamingFolder(folder, resolution=16, workers=0, train_per_class=2, test_per_class=1, seed=4)
    assert again.describe() == s.describe()
    assert s.describe()["fingerprint"] != StreamingFolder(folder, resolution=16, workers=0).describe()["fingerprint"]
    with pytest.raises(ValueError, match=r"train/ant: 6 images, fewer than the train_per_class=7"):
        StreamingFolder(folder, resolution=16, train_per_class=7)
    with pytest.raises(ValueError, match="test_per_class"):
        StreamingFolder(folder, resolution=16, test_per_class=0)


def test_describe_is_stable_and_tracks_files(folder: Path, tmp_path: Path) -> None:
    root = _copy(folder, tmp_path / "tiny")
    a, b = StreamingFolder(root, resolution=16), StreamingFolder(root, resolution=16)
    d = a.describe()
    assert d == b.describe()
    assert d == {"kind": "stream", "fingerprint": d["fingerprint"], "classes": 3, "train": 18, "test": 6,
                 "resolution": 16}
    assert len(d["fingerprint"]) == 16 and int(d["fingerprint"], 16) >= 0
    assert StreamingFolder(folder, resolution=16).describe() == d  # same relative paths and sizes
    Image.new("RGB", (20, 20)).save(root / "train" / "cat" / "new.png")
    changed = StreamingFolder(root, resolution=16).describe()
    assert changed["fingerprint"] != d["fingerprint"] and changed["train"] == 19


def test_mean_std_of_solid_colours(tmp_path: Path) -> None:
    colours = {"a": (255, 0, 0), "b": (0, 128, 255), "c": (60, 60, 60)}
    for split in ("train", "test"):
        for name, colour in colours.items():
            (tmp_path / split / name).mkdir(parents=True)
            for i, size in enumerate(SIZES):
                Image.new("RGB", size, colour).save(tmp_path / split / name / f"{i}.png")
    s = StreamingFolder(tmp_path, resolution=8, workers=0)
    mean, std = s.mean_std
    values = np.asarray(list(colours.values()), dtype=np.float64) / 255
    np.testing.assert_allclose(mean, values.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(std, values.std(axis=0), atol=1e-4)
    assert s.mean_std is s.mean_std


def test_invalid_arguments(folder: Path) -> None:
    for kwargs, name in (({"resolution": 7}, "resolution"), ({"resolution": 16.0}, "resolution"),
                         ({"resolution": True}, "resolution"), ({"workers": -1}, "workers"),
                         ({"min_scale": 0.0}, "min_scale"), ({"min_scale": 1.5}, "min_scale"),
                         ({"channels": 2}, "channels"), ({"seed": -1}, "seed"), ({"flip": 1}, "flip")):
        with pytest.raises(ValueError, match=name):
            StreamingFolder(folder, **{"resolution": 16, **kwargs})
    s = StreamingFolder(folder, resolution=16, workers=0)
    with pytest.raises(ValueError, match="exceeds the 18 training images"):
        s.steps_per_epoch(19)
    with pytest.raises(ValueError, match="batch_size"):
        s.test_batches(0)
    with pytest.raises(ValueError, match="epoch"):
        s.train_batches(-1, 4)
    with pytest.raises(ValueError, match="missing"):
        StreamingFolder(folder / "train", resolution=16)


def test_unknown_test_class_is_rejected(folder: Path, tmp_path: Path) -> None:
    root = _copy(folder, tmp_path / "data")
    (root / "test" / "dog").mkdir()
    Image.new("RGB", (8, 8)).save(root / "test" / "dog" / "0.png")
    with pytest.raises(ValueError, match="'dog' is not in"):
        StreamingFolder(root, resolution=16)


def test_bytes_estimate_and_should_stream(folder: Path, tmp_path: Path) -> None:
    assert folder_bytes_estimate(folder, 16) == 24 * 16 * 16 * 3
    assert folder_bytes_estimate(folder, 16, channels=1) == 24 * 16 * 16
    for split in ("train", "test"):
        (tmp_path / split / "a").mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (16, 16)).save(tmp_path / split / "a" / f"{i}.jpg")
    assert not should_stream(tmp_path, 16)
    assert not should_stream(tmp_path, 16, memory_budget=4 * 16 * 16 * 3)
    assert should_stream(tmp_path, 16, memory_budget=4 * 16 * 16 * 3 - 1)
    assert should_stream(tmp_path, 32)  # first image is 16x16, the network wants 32x32
    assert should_stream(folder, 16, memory_budget=1 << 40)  # first image is 40x30
    with pytest.raises(ValueError, match="memory_budget"):
        should_stream(tmp_path, 16, memory_budget=0)
    (tmp_path / "train" / "a" / "0.jpg").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"0\.jpg: cannot read image header"):
        should_stream(tmp_path, 16)
