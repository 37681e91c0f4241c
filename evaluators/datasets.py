"""Image classification datasets as in-memory uint8 arrays, so training epochs are fast.

Loaders (each returns a :class:`Dataset` with a ``train`` and a ``test`` split):

- :func:`load_image_folder`: any ``<root>/train/<class>/*.jpg|png|...`` and
  ``<root>/test/<class>/...`` tree. The folder is decoded once into a uint8 ``.npz`` beside a
  JSON manifest in a cache folder, keyed by the folder's listing (paths, sizes, modification
  times), so later loads skip decoding.
- :func:`load_cifar`: the CIFAR-10 / CIFAR-100 "python version" folders (Krizhevsky, "Learning
  Multiple Layers of Features from Tiny Images", 2009). Those files are pickles; they are read
  with an unpickler that only admits the numpy array types they contain.
- :func:`load_fashion_mnist`: the Fashion-MNIST idx files (Xiao et al., "Fashion-MNIST: a Novel
  Image Dataset for Benchmarking Machine Learning Algorithms", 2017), gzipped or not.
- :func:`synthetic`: a small generated, learnable dataset for tests.
- :func:`load_dataset`: any of the above from a path (a ``.tar.gz`` is extracted first with
  :func:`extract_archive`) or the name ``synthetic``.

Problems with the data (a corrupt image, an empty class folder, a missing file) raise
``ValueError`` naming the file or folder.
"""

from __future__ import annotations

import codecs
import gzip
import hashlib
import json
import logging
import os
import pickle
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from nas.io import atomic_path, atomic_write_json, parse_json_object

__all__ = [
    "IMAGE_EXTENSIONS",
    "FASHION_MNIST_CLASSES",
    "ImageSet",
    "Dataset",
    "Holdout",
    "default_cache_dir",
    "load_image_folder",
    "load_cifar",
    "load_fashion_mnist",
    "read_idx",
    "synthetic",
    "load_dataset",
    "extract_archive",
    "normalise",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".tif", ".tiff")
FASHION_MNIST_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                         "sneaker", "bag", "ankle boot")
logger = logging.getLogger(__name__)
_FOLDER_CACHE_FORMAT = "litenas.image_folder_cache"
_FOLDER_CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$LITENAS_CACHE`` or ``~/.cache/litenas``."""
    return Path(os.environ.get("LITENAS_CACHE", "~/.cache/litenas")).expanduser()


@dataclass(frozen=True)
class ImageSet:
    """One split: ``images`` ``(N, H, W, C)`` uint8 and integer ``labels`` ``(N,)``."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be a (N, H, W, C) uint8 array, got {self.images.dtype} {self.images.shape}")
        if self.labels.ndim != 1 or len(self.labels) != len(self.images):
            raise ValueError(f"labels must be ({len(self.images)},), got {self.labels.shape}")
        object.__setattr__(self, "labels", self.labels.astype(np.int64, copy=False))

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index])


@dataclass(frozen=True)
class Dataset:
    """A classification dataset: class names, a train and a test split, and a content fingerprint
    (SHA-256 of the arrays and class names) that identifies it in evaluator cache keys."""

    name: str
    classes: tuple[str, ...]
    train: ImageSet
    test: ImageSet
    fingerprint: str = field(default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        if not self.classes:
            raise ValueError(f"dataset {self.name!r} has no classes")
        if len(self.train) == 0 or len(self.test) == 0:
            raise ValueError(f"dataset {self.name!r}: both splits need images (train {len(self.train)}, test {len(self.test)})")
        if self.train.images.shape[1:] != self.test.images.shape[1:]:
            raise ValueError(f"dataset {self.name!r}: train images are {self.train.images.shape[1:]}, "
                             f"test images {self.test.images.shape[1:]}")
        for split, s in (("train", self.train), ("test", self.test)):
            if s.labels.min() < 0 or s.labels.max() >= len(self.classes):
                raise ValueError(f"dataset {self.name!r}: {split} labels outside 0..{len(self.classes) - 1}")
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", _content_digest(self.classes, self.train, self.test))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def resolution(self) -> int:
        """Image height (networks take square inputs; ``train.check_compatible`` rejects others)."""
        return int(self.train.images.shape[1])

    @property
    def channels(self) -> int:
        return int(self.train.images.shape[3])

    def describe(self) -> dict[str, Any]:
        """JSON-ready identity (content fingerprint, sizes) for cache keys; the name is left out
        because the same data loaded from an archive or its extracted folder is the same data."""
        return {"fingerprint": self.fingerprint, "classes": self.num_classes,
                "train": len(self.train), "test": len(self.test), "shape": list(self.train.images.shape[1:])}

    @cached_property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and standard deviation of the train images, in [0, 1] units (computed
        once)."""
        x = self.train.images.reshape(-1, self.channels)
        mean = x.mean(axis=0, dtype=np.float64) / 255.0
        sq = np.square(x, dtype=np.float64).mean(axis=0) / 255.0**2
        std = np.sqrt(np.maximum(sq - mean**2, 1e-12))
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)

    def subset(self, *, train_per_class: int | None = None, test_per_class: int | None = None,
               seed: int = 0) -> Dataset:
        """A class-balanced random subset (``None`` keeps a split whole); deterministic in ``seed``."""
        train = self.train if train_per_class is None else self.train.take(
            _per_class_index(self.train.labels, self.num_classes, train_per_class, seed, "train"))
        test = self.test if test_per_class is None else self.test.take(
            _per_class_index(self.test.labels, self.num_classes, test_per_class, seed + 1, "test"))
        return Dataset(self.name, self.classes, train, test)

    def holdout(self, per_class: int, *, seed: int = 0) -> Dataset:
        """Split ``per_class`` images of each class off the train split as the new test split, so a
        search can rank candidates without ever looking at the real test set."""
        held = _per_class_index(self.train.labels, self.num_classes, per_class, seed, "train")
        rest = np.setdiff1d(np.arange(len(self.train)), held)
        return Dataset(f"{self.name}-holdout", self.classes, self.train.take(rest), self.train.take(held))


@dataclass(frozen=True)
class Holdout:
    """Which training images a search ranks candidates on: ``per_class`` images of each class,
    drawn with ``seed`` (``None``: a tenth of the smallest class). What trains before the search
    (a supernet) holds out the same images, so the ranking never scores on images it learned."""

    per_class: int | None = None
    seed: int = 0

    def resolve(self, data: Dataset) -> Holdout:
        """This hold-out with ``per_class`` fixed for ``data``."""
        if self.per_class is not None:
            return self
        smallest = int(np.bincount(data.train.labels, minlength=data.num_classes).min())
        return Holdout(max(1, smallest // 10), self.seed)

    def apply(self, data: Dataset) -> Dataset:
        """``data`` with the held-out images as its test split (the rest train)."""
        resolved = self.resolve(data)
        return data.holdout(resolved.per_class, seed=resolved.seed)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {"per_class": self.per_class, "seed": self.seed}


def _per_class_index(labels: np.ndarray, num_classes: int, per_class: int, seed: int, split: str) -> np.ndarray:
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"images per class must be an integer >= 1, got {per_class!r}")
    rng = np.random.default_rng(seed)
    out = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        if len(idx) < per_class:
            raise ValueError(f"{split} split: class {c} has {len(idx)} images, fewer than the {per_class} asked for")
        out.append(rng.choice(idx, per_class, replace=False))
    return np.sort(np.concatenate(out))


def _content_digest(classes: Sequence[str], train: ImageSet, test: ImageSet) -> str:
    h = hashlib.sha256(json.dumps(list(classes)).encode())
    for s in (train, test):
        h.update(str(s.images.shape).encode())
        h.update(np.ascontiguousarray(s.images).data)
        h.update(s.labels.astype("<i8").tobytes())
    return h.hexdigest()[:16]


def normalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(N, H, W, C)`` uint8 images -> ``(N, C, H, W)`` float32, standardised per channel."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)


# ---------------------------------------------------------------------------------------------
# Image folders
def _list_split(root: Path, split: str) -> dict[str, list[Path]]:
    folder = root / split
    if not folder.is_dir():
        found = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        raise ValueError(f"{folder}: missing; an image-folder dataset needs {root}/train/<class>/ and "
                         f"{root}/test/<class>/ (found: {', '.join(found) or 'nothing'})")
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{folder}: no class folders")
    out = {}
    for c in classes:
        files = sorted(p for p in c.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise ValueError(f"{c}: empty class folder (no {'/'.join(IMAGE_EXTENSIONS)} files)")
        out[c.name] = files
    return out


def _listing_key(root: Path, listing: dict[str, dict[str, list[Path]]], mode: str, size: int | None) -> str:
    h = hashlib.sha256(json.dumps({"version": _FOLDER_CACHE_VERSION, "mode": mode, "size": size}).encode())
    for split, classes in listing.items():
        for files in classes.values():
            for p in files:
                st = p.stat()
                h.update(f"{p.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        h.update(split.encode())
    return h.hexdigest()[:20]


def _decode(path: Path, mode: str, size: int | None, expect: tuple[int, ...] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"{path}: cannot decode image ({exc})") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if expect is not None and arr.shape != expect:
        raise ValueError(f"{path}: image is {arr.shape[1]}x{arr.shape[0]}, the others are "
                         f"{expect[1]}x{expect[0]}; pass size= to resize every image")
    return arr


def load_image_folder(root: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None,
                      mode: str = "RGB", size: int | None = None, name: str | None = None,
                      progress: bool = True) -> Dataset:
    """Load ``<root>/train/<class>/*`` and ``<root>/test/<class>/*`` as uint8 arrays.

    Class names are the train split's folder names, sorted; the test split must use the same
    names. Every image must have the same size unless ``size`` resizes them all to
    ``size x size``. ``mode`` is the PIL mode (``RGB`` or ``L``). The decoded arrays are cached in
    ``cache_dir`` (default :func:`default_cache_dir` ``/datasets``) as ``<key>.npz`` plus
    ``<key>.json``, where the key covers the folder listing, so a changed folder is decoded again.
    ``name`` defaults to the folder's name.
    """
    root = Path(root).expanduser().resolve()
    name = name or root.name
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
        raise ValueError(f"size must be a positive integer or None, got {size!r}")
    listing = {split: _list_split(root, split) for split in ("train", "test")}
    classes = tuple(listing["train"])
    unknown = sorted(set(listing["test"]) - set(classes))
    if unknown:
        raise ValueError(f"{root / 'test' / unknown[0]}: class {unknown[0]!r} is not in {root / 'train'}")
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir() / "datasets"
    key = _listing_key(root, listing, mode, size)
    manifest_path, arrays_path = cache / f"{key}.json", cache / f"{key}.npz"
    if manifest_path.exists() and arrays_path.exists():
        try:
            manifest = parse_json_object(manifest_path.read_bytes(), str(manifest_path), "a dataset cache manifest")
            with np.load(arrays_path, allow_pickle=False) as z:
                train = ImageSet(z["train_images"], z["train_labels"])
                test = ImageSet(z["test_images"], z["test_labels"])
            return Dataset(name, tuple(manifest["classes"]), train, test, manifest["fingerprint"])
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            logger.warning("decoding %s again: its cache %s is unreadable (%s)", root, arrays_path, exc)

    splits = {}
    total = sum(len(f) for cls in listing.values() for f in cls.values())
    with tqdm(total=total, desc=f"decoding {root.name}", unit="img", disable=not progress) as bar:
        expect: tuple[int, ...] | None = None
        for split, cls in listing.items():
            images, labels = [], []
            for class_name, files in cls.items():
                label = classes.index(class_name)
                for p in files:
                    arr = _decode(p, mode, size, expect)
                    expect = arr.shape
                    images.append(arr)
                    labels.append(label)
                    bar.update()
            splits[split] = ImageSet(np.stack(images), np.asarray(labels, dtype=np.int64))
    ds = Dataset(name, classes, splits["train"], splits["test"])
    with atomic_path(arrays_path) as tmp, tmp.open("wb") as fh:
        np.savez(fh, train_images=ds.train.images, train_labels=ds.train.labels,
                 test_images=ds.test.images, test_labels=ds.test.labels)
    atomic_write_json(manifest_path, {
        "format": _FOLDER_CACHE_FORMAT, "version": _FOLDER_CACHE_VERSION, "source": str(root),
        "mode": mode, "size": size, "classes": list(classes), "fingerprint": ds.fingerprint,
        "train": len(ds.train), "test": len(ds.test), "shape": list(ds.train.images.shape[1:]),
    })
    return ds


# ---------------------------------------------------------------------------------------------
# CIFAR python pickles
class _ArrayUnpickler(pickle.Unpickler):
    """Admits only what CIFAR batch files hold: builtins, numpy arrays, and the bytes codec that
    protocol-2 pickles written by Python 3 use."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if name == "_reconstruct":
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own _reconstruct, wherever it lives
        return codecs.encode if name == "encode" else getattr(np, name)


def _read_pickle(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = _ArrayUnpickler(fh, encoding="latin1").load()
    except FileNotFoundError:
        raise ValueError(f"{path}: missing") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a CIFAR batch file ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a CIFAR batch file (holds a {type(data).__name__})")
    return data


def _cifar_batch(path: Path, label_key: str) -> ImageSet:
    d = _read_pickle(path)
    try:
        data = np.asarray(d["data"], dtype=np.uint8)
        labels = np.asarray(d[label_key], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"{path}: no {exc.args[0]!r} entry (has: {', '.join(map(str, d))})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"{path}: expected data (N, 3072) and N labels, got {data.shape} and {labels.shape}")
    return ImageSet(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels)


def load_cifar(root: str | os.PathLike[str]) -> Dataset:
    """CIFAR-10 (``data_batch_1..5``, ``test_batch``, ``batches.meta``) or CIFAR-100 (``train``,
    ``test``, ``meta``; fine labels) from the python-version folder, or a folder holding
    ``cifar-10-batches-py`` / ``cifar-100-python``."""
    root = Path(root).expanduser()
    for sub in ("cifar-10-batches-py", "cifar-100-python"):
        if (root / sub).is_dir():
            root = root / sub
            break
    if (root / "batches.meta").exists() or (root / "data_batch_1").exists():
        classes = _read_pickle(root / "batches.meta").get("label_names")
        parts = [_cifar_batch(root / f"data_batch_{i}", "labels") for i in range(1, 6)]
        train = ImageSet(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))
        test, name = _cifar_batch(root / "test_batch", "labels"), "cifar10"
    elif (root / "meta").exists():
        classes = _read_pickle(root / "meta").get("fine_label_names")
        train, test, name = _cifar_batch(root / "train", "fine_labels"), _cifar_batch(root / "test", "fine_labels"), "cifar100"
    else:
        raise ValueError(f"{root}: not a CIFAR python folder (no batches.meta or meta file)")
    if not isinstance(classes, list) or not classes:
        raise ValueError(f"{root}: the meta file lists no class names")
    return Dataset(name, tuple(str(c) for c in classes), train, test)


# ---------------------------------------------------------------------------------------------
# idx files (MNIST, Fashion-MNIST)
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """An idx file (LeCun's MNIST format: 2 zero bytes, a type code, the rank, big-endian int32
    dimensions, then the data), plain or gzipped."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{path}: missing") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: corrupt gzip ({exc})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an idx file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">i4", count=ndim, offset=4) if len(raw) >= 4 + 4 * ndim else None
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    if dims is None or len(raw) != 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize:
        raise ValueError(f"{path}: truncated or oversized idx file")
    return np.frombuffer(raw, dtype, offset=4 + 4 * ndim).reshape(tuple(int(d) for d in dims))


def _find_idx(root: Path, stem: str) -> Path:
    for name in (stem, f"{stem}.gz"):
        if (root / name).exists():
            return root / name
    raise ValueError(f"{root}: missing {stem} (or {stem}.gz)")


def load_fashion_mnist(root: str | os.PathLike[str], *, classes: Sequence[str] = FASHION_MNIST_CLASSES) -> Dataset:
    """Fashion-MNIST from ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``): 28x28
    grayscale, one channel. With other ``classes`` it reads MNIST-format data in general."""
    root = Path(root).expanduser()
    splits = []
    for prefix in ("train", "t10k"):
        ip, lp = _find_idx(root, f"{prefix}-images-idx3-ubyte"), _find_idx(root, f"{prefix}-labels-idx1-ubyte")
        images, labels = read_idx(ip), read_idx(lp)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(f"{ip}: expected (N, H, W) uint8 images, got {images.dtype} {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"{lp}: {labels.shape} labels for {len(images)} images in {ip.name}")
        splits.append(ImageSet(images[..., None].copy(), labels.astype(np.int64)))
    return Dataset("fashion_mnist", tuple(classes), splits[0], splits[1])


# ---------------------------------------------------------------------------------------------
def synthetic(*, num_classes: int = 4, train_per_class: int = 64, test_per_class: int = 32,
              resolution: int = 16, channels: int = 3, noise: float = 40.0, seed: int = 0) -> Dataset:
    """A generated dataset that small networks learn in a few steps (for tests).

    Each class is a random blocky colour template (a 4x4 pattern upsampled); an image is its
    class template, shifted by up to 2 pixels, plus Gaussian noise of std ``noise`` (0-255 units).
    """
    for name, v in (("num_classes", num_classes), ("train_per_class", train_per_class),
                    ("test_per_class", test_per_class), ("channels", channels)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 4 or resolution % 4:
        raise ValueError(f"resolution must be a positive multiple of 4, got {resolution!r}")
    rng = np.random.default_rng(seed)
    cell = resolution // 4
    templates = rng.uniform(0, 255, (num_classes, 4, 4, channels)).repeat(cell, 1).repeat(cell, 2)

    def make(per_class: int) -> ImageSet:
        labels = np.repeat(np.arange(num_classes), per_class)
        shifts = rng.integers(-2, 3, (len(labels), 2))
        base = np.stack([np.roll(templates[c], tuple(s), axis=(0, 1)) for c, s in zip(labels, shifts, strict=True)])
        images = np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
        return ImageSet(images, labels)

    train, test = make(train_per_class), make(test_per_class)
    return Dataset("synthetic", tuple(f"class{i}" for i in range(num_classes)), train, test)


# ---------------------------------------------------------------------------------------------
def extract_archive(archive: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Extract a ``.tar``/``.tar.gz`` once into ``cache_dir`` (default :func:`default_cache_dir`
    ``/extracted``) and return the extracted folder (its single top-level folder, if it has one).

    The destination is keyed by the archive's path, size and modification time; a finished
    extraction is marked complete, so an interrupted one is redone. Members that would land
    outside the destination (absolute paths, ``..``, links out) are refused.
    """
    archive = Path(archive).expanduser().resolve()
    if not archive.is_file():
        raise ValueError(f"{archive}: no such archive")
    st = archive.stat()
    digest = hashlib.sha256(f"{archive}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = archive.name.split(".")[0]
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir() / "extracted"
    dest = cache / f"{stem}-{digest}"
    if not (dest / ".complete").exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{stem}-", dir=cache))
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
            (tmp / ".complete").write_text(str(archive) + "\n", encoding="utf-8")
            shutil.rmtree(dest, ignore_errors=True)
            os.replace(tmp, dest)
        except (tarfile.TarError, OSError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if (dest / ".complete").exists():  # another process finished the same extraction first
                return _single_top(dest)
            raise ValueError(f"{archive}: cannot extract ({exc})") from None
    return _single_top(dest)


def _single_top(dest: Path) -> Path:
    entries = [p for p in dest.iterdir() if p.name != ".complete"]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def load_dataset(source: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None,
                 progress: bool = True) -> Dataset:
    """A dataset from a path, recognised by its contents: an image-folder tree, a CIFAR python
    folder, or Fashion-MNIST idx files; a ``.tar``/``.tar.gz`` is extracted first. The name
    ``synthetic`` gives :func:`synthetic` with its defaults."""
    if str(source) == "synthetic":
        return synthetic()
    path = Path(source).expanduser()
    name = None
    if path.is_file() and (path.name.endswith((".tar.gz", ".tgz", ".tar"))):
        name = path.name.split(".")[0]
        path = extract_archive(path, None if cache_dir is None else Path(cache_dir) / "extracted")
    if not path.is_dir():
        raise ValueError(f"{path}: not a dataset folder or archive")
    if (path / "train").is_dir() and (path / "test").is_dir():
        folder_cache = None if cache_dir is None else Path(cache_dir) / "datasets"
        return load_image_folder(path, cache_dir=folder_cache, name=name, progress=progress)
    names = {p.name for p in path.iterdir()}
    if names & {"cifar-10-batches-py", "cifar-100-python", "batches.meta", "meta", "data_batch_1"}:
        return load_cifar(path)
    if any(n.startswith("train-images-idx3-ubyte") for n in names):
        return load_fashion_mnist(path)
    raise ValueError(f"{path}: not a recognised dataset (expected train/ and test/ class folders, "
                     f"CIFAR python batches, or idx files)")
