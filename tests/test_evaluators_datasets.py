"""Dataset loaders on small generated folders and files: image folders (with the decode cache),
CIFAR python pickles, idx files, archives, the synthetic set, subsets and hold-outs."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from evaluators.datasets import (
    Dataset,
    ImageSet,
    extract_archive,
    load_cifar,
    load_dataset,
    load_fashion_mnist,
    load_image_folder,
    normalise,
    read_idx,
    synthetic,
)
from evaluators.datasets import folder as ds_folder


def _write_images(folder: Path, n: int, *, size: int = 8, fmt: str = "png", value: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        arr = np.full((size, size, 3), (value + 10 * i) % 256, dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"{i:03d}.{fmt}")


def _image_tree(root: Path) -> Path:
    for split, n in (("train", 3), ("test", 2)):
        _write_images(root / split / "cat", n, value=100)
        _write_images(root / split / "ant", n, fmt="jpg", value=20)
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_loads_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _image_tree(tmp_path / "data")
    cache = tmp_path / "cache"
    d = load_image_folder(root, cache_dir=cache, progress=False)
    assert d.classes == ("ant", "cat")
    assert d.train.images.shape == (6, 8, 8, 3) and d.train.images.dtype == np.uint8
    assert d.test.images.shape == (4, 8, 8, 3)
    assert list(d.train.labels) == [0, 0, 0, 1, 1, 1]
    assert d.train.images[3, 0, 0, 0] == 100  # PNG is lossless
    assert len(list(cache.glob("*.npz"))) == 1 and len(list(cache.glob("*.json"))) == 1

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded again although the folder is unchanged")

    monkeypatch.setattr(ds_folder, "_decode", no_decoding)
    again = load_image_folder(root, cache_dir=cache, progress=False)
    assert again.fingerprint == d.fingerprint and np.array_equal(again.train.images, d.train.images)
    monkeypatch.undo()
    npz = next(cache.glob("*.npz"))
    npz.write_bytes(npz.read_bytes()[:100])  # a damaged cache is decoded again, not fatal
    assert np.array_equal(load_image_folder(root, cache_dir=cache, progress=False).train.images, d.train.images)
    _write_images(root / "train" / "cat" / "more", 0)  # a sub-folder is not an image: no change
    _write_images(root / "train" / "cat", 4, value=100)  # one more image: decoded afresh
    changed = load_image_folder(root, cache_dir=cache, progress=False)
    assert len(changed.train) == 7 and changed.fingerprint != d.fingerprint


def test_image_folder_grayscale_and_resize(tmp_path: Path) -> None:
    root = _image_tree(tmp_path / "data")
    _write_images(root / "train" / "cat", 1, size=12, value=5)  # overwrite 000.png with a bigger image
    with pytest.raises(ValueError, match=r"000\.png: image is 12x12"):
        load_image_folder(root, cache_dir=tmp_path / "c", progress=False)
    d = load_image_folder(root, cache_dir=tmp_path / "c", mode="L", size=6, progress=False)
    assert d.train.images.shape == (6, 6, 6, 1) and d.channels == 1 and d.resolution == 6


def test_image_folder_errors_name_the_culprit(tmp_path: Path) -> None:
    root = _image_tree(tmp_path / "data")
    bad = root / "train" / "ant" / "001.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    with pytest.raises(ValueError, match=r"001\.jpg: cannot decode image"):
        load_image_folder(root, cache_dir=tmp_path / "c", progress=False)
    bad.unlink()
    (root / "test" / "bee").mkdir()
    with pytest.raises(ValueError, match=r"test/bee: empty class folder"):
        load_image_folder(root, cache_dir=tmp_path / "c", progress=False)
    _write_images(root / "test" / "bee", 1)
    with pytest.raises(ValueError, match=r"class 'bee' is not in"):
        load_image_folder(root, cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(ValueError, match=r"train: missing"):
        load_image_folder(tmp_path / "nowhere", cache_dir=tmp_path / "c", progress=False)


def _cifar_arrays(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), [int(v) for v in rng.integers(0, 10, n)]


def test_cifar10_batches(tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    batches = {}
    for name, seed in [(f"data_batch_{i}", i) for i in range(1, 6)] + [("test_batch", 9)]:
        data, labels = _cifar_arrays(4, seed)
        batches[name] = data
        with open(root / name, "wb") as fh:
            pickle.dump({"data": data, "labels": labels, "batch_label": b"x"}, fh, protocol=2)
    with open(root / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh, protocol=2)
    d = load_cifar(tmp_path)  # the parent folder works too
    assert d.name == "cifar10" and d.num_classes == 10
    assert d.train.images.shape == (20, 32, 32, 3) and d.test.images.shape == (4, 32, 32, 3)
    # row layout: 1024 red, then 1024 green, then 1024 blue values, each row-major 32x32
    raw = batches["data_batch_1"][0]
    assert d.train.images[0, 1, 2, 0] == raw[1 * 32 + 2] and d.train.images[0, 1, 2, 2] == raw[2048 + 34]
    assert load_dataset(root).fingerprint == d.fingerprint
    (root / "data_batch_3").unlink()
    with pytest.raises(ValueError, match=r"data_batch_3: missing"):
        load_cifar(root)


def test_cifar100_and_hostile_pickles(tmp_path: Path) -> None:
    for name, n in (("train", 6), ("test", 3)):
        data, _ = _cifar_arrays(n, n)
        with open(tmp_path / name, "wb") as fh:
            pickle.dump({"data": data, "fine_labels": list(range(n)), "coarse_labels": [0] * n}, fh)
    with open(tmp_path / "meta", "wb") as fh:
        pickle.dump({"fine_label_names": [f"f{i}" for i in range(100)]}, fh)
    d = load_cifar(tmp_path)
    assert d.name == "cifar100" and d.num_classes == 100 and len(d.train) == 6

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.getcwd, ())  # any callable outside the allow-list must be refused

    with open(tmp_path / "train", "wb") as fh:
        pickle.dump({"data": Evil()}, fh)
    with pytest.raises(ValueError, match=r"train: not a CIFAR batch file .*refusing to load"):
        load_cifar(tmp_path)


def _idx_bytes(arr: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}i", *arr.shape) + arr.tobytes()


def test_fashion_mnist_idx(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for prefix, n, gz in (("train", 5, True), ("t10k", 3, False)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            path = tmp_path / f"{prefix}-{kind}-ubyte"
            if gz:
                Path(f"{path}.gz").write_bytes(gzip.compress(_idx_bytes(arr)))
            else:
                path.write_bytes(_idx_bytes(arr))
    d = load_dataset(tmp_path)
    assert d.name == "fashion_mnist" and d.classes[0] == "t-shirt/top"
    assert d.train.images.shape == (5, 28, 28, 1) and d.test.images.shape == (3, 28, 28, 1)
    assert np.array_equal(read_idx(tmp_path / "t10k-images-idx3-ubyte")[..., None], d.test.images)
    truncated = tmp_path / "t10k-labels-idx1-ubyte"
    truncated.write_bytes(truncated.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: truncated"):
        load_fashion_mnist(tmp_path)
    truncated.write_bytes(b"\x12\x34\x08\x01")
    with pytest.raises(ValueError, match=r"not an idx file"):
        load_fashion_mnist(tmp_path)


def test_archive_extracted_once(tmp_path: Path) -> None:
    root = _image_tree(tmp_path / "tree")
    archive = tmp_path / "tiny-jpg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(root / split, arcname=split)
    cache = tmp_path / "cache"
    out = extract_archive(archive, cache)
    assert (out / "train" / "cat" / "000.png").is_file()
    marker = out / ".complete"
    stamp = marker.stat().st_mtime_ns
    assert extract_archive(archive, cache) == out and marker.stat().st_mtime_ns == stamp
    d = load_dataset(archive, cache_dir=cache, progress=False)
    assert d.classes == ("ant", "cat") and len(d.test) == 4
    with pytest.raises(ValueError, match="no such archive"):
        extract_archive(tmp_path / "missing.tar.gz", cache)


def test_processes_loading_one_archive_at_once_extract_it_once(tmp_path: Path, monkeypatch) -> None:
    """Shards of a benchmark start together on a fresh machine: one extracts, the others wait and
    read its folder (before, each extracted and the last one replaced the folder under the first
    one's feet: FileNotFoundError while it listed the images)."""
    import multiprocessing

    from evaluators.datasets import archive as archive_mod

    root = _image_tree(tmp_path / "tree")
    archive = tmp_path / "tiny-jpg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(root / split, arcname=split)
    cache, runs = tmp_path / "cache", tmp_path / "extractions"
    runs.mkdir()
    extract = archive_mod._extract

    def slow_extract(*args) -> None:  # counted, and slow enough for the others to arrive meanwhile
        (runs / str(os.getpid())).touch()
        time.sleep(0.5)
        extract(*args)

    monkeypatch.setattr(archive_mod, "_extract", slow_extract)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(3) as pool:
        sizes = pool.starmap(_load_test_split, [(archive, cache)] * 3)
    assert sizes == [4, 4, 4] and len(list(runs.iterdir())) == 1


def _load_test_split(archive: Path, cache: Path) -> int:
    return len(load_dataset(archive, cache_dir=cache, progress=False).test)


def test_load_dataset_rejects_unknown_layouts(tmp_path: Path) -> None:
    assert load_dataset("synthetic").name == "synthetic"
    (tmp_path / "stuff").mkdir()
    with pytest.raises(ValueError, match="not a recognised dataset"):
        load_dataset(tmp_path / "stuff")
    with pytest.raises(ValueError, match="not a dataset folder"):
        load_dataset(tmp_path / "nope")


def test_synthetic_subset_holdout() -> None:
    a, b = synthetic(seed=3), synthetic(seed=3)
    assert a.fingerprint == b.fingerprint and np.array_equal(a.train.images, b.train.images)
    assert synthetic(seed=4).fingerprint != a.fingerprint
    sub = a.subset(train_per_class=5, test_per_class=2, seed=1)
    assert np.bincount(sub.train.labels).tolist() == [5] * 4 and len(sub.test) == 8
    assert sub.fingerprint != a.fingerprint
    held = a.holdout(10)
    assert len(held.train) == len(a.train) - 40 and np.bincount(held.test.labels).tolist() == [10] * 4
    train_rows = {r.tobytes() for r in held.train.images}
    assert not any(r.tobytes() in train_rows for r in held.test.images)
    with pytest.raises(ValueError, match="fewer than the 1000"):
        a.subset(train_per_class=1000)
    with pytest.raises(ValueError, match="resolution"):
        synthetic(resolution=10)


def test_dataset_checks_and_normalise() -> None:
    img = np.zeros((2, 4, 4, 3), np.uint8)
    with pytest.raises(ValueError, match="labels outside"):
        Dataset("x", ("a",), ImageSet(img, np.array([0, 1])), ImageSet(img, np.array([0, 0])))
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(img.astype(np.float32), np.array([0, 0]))
    d = synthetic()
    mean, std = d.mean_std
    x = normalise(torch.from_numpy(d.train.images), mean, std)
    assert x.shape == (256, 3, 16, 16)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2)


def test_search_ranks_on_images_held_out_of_the_training_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A search never sees the test set: it ranks on images split off the training set."""
    from nas.search.config import SearchConfig
    from nas.search.scoring import load_search_data

    monkeypatch.setenv("LITENAS_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    for name, value in (("ant", 0), ("cat", 5)):
        _write_images(root / "train" / name, 10, value=value)  # pixel values below 100
        _write_images(root / "test" / name, 2, value=200)
    table = tmp_path / "t.json"
    from test_search_runner import fake_table

    fake_table(table)
    config = SearchConfig.of(space="fbnet", latency_table=str(table), max_latency_ms=50, evaluator="train",
                          data=str(root), train_per_class=5, test_per_class=2, out=str(tmp_path / "run"))
    data = load_search_data(config, 32)
    assert len(data.train) == 10 and len(data.test) == 4
    assert data.test.images.max() < 100 and data.train.images.max() < 100  # nothing from test/
    default = load_search_data(SearchConfig.of(**{**config.to_dict(), "train_per_class": None, "test_per_class": None}), 32)
    assert len(default.test) == 2 and len(default.train) == 18  # a tenth of each class held out
