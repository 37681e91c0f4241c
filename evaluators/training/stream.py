"""Image-folder datasets streamed from disk, for trees too large to hold in memory.

:func:`evaluators.datasets.load_image_folder` decodes a whole ``<root>/train/<class>/*`` and
``<root>/test/<class>/*`` tree into one uint8 array, which is right for small data at its native
size but not for ImageNet-style trees (a million photographs of varying size, trained at 224 px:
about 190 GB as uint8). :class:`StreamingFolder` reads the same layout and decodes each image
when it is needed, in ``torch.utils.data.DataLoader`` worker processes, with the usual ImageNet
transforms:

- training: the random-resized crop of Szegedy et al., "Going deeper with convolutions" (CVPR
  2015) -- a crop covering a uniform ``[min_scale, 1]`` fraction of the image area, with an aspect
  ratio log-uniform in ``[3/4, 4/3]``, resized to ``resolution x resolution`` -- and a horizontal
  flip with probability 1/2;
- test: the shorter side resized to ``round(resolution / 0.875)`` and a centre crop.

Batches are uint8 ``(B, R, R, C)`` tensors and int64 labels, like the in-memory datasets, so the
same normalisation (:func:`evaluators.datasets.normalise`) applies. The augmentation of every
image is a function of ``(seed, epoch, index)`` alone, so a run gives the same batches with any
number of workers. :func:`should_stream` tells whether a folder needs this path: its uint8 copy
would not fit a memory budget, or its images are not already at the network's resolution.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset
from tqdm.auto import tqdm

from evaluators.datasets.folder import list_split
from nas.checks import is_int, is_real

__all__ = ["StreamingFolder", "folder_bytes_estimate", "should_stream"]

_TEST_CROP_FRACTION = 0.875  # shorter side resized to resolution / 0.875, then a centre crop
_LOG_RATIO = (math.log(3 / 4), math.log(4 / 3))
_CROP_ATTEMPTS = 10
_MEAN_STD_IMAGES = 500
_FALLBACK_MEMORY = 4 << 30
# First word of every random stream's seed, so that no two uses of ``seed`` share a stream.
_SHUFFLE, _AUGMENT, _MEAN_STD, _TRAIN_SUBSET, _TEST_SUBSET = range(5)

Box = tuple[float, float, float, float]  # left, top, width, height in source pixels


def _check_int(name: str, value: Any, minimum: int) -> int:
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_channels(channels: Any) -> str:
    if isinstance(channels, bool) or channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    return "RGB" if channels == 3 else "L"


def _listing(root: Path) -> dict[str, dict[str, list[Path]]]:
    listing = {split: list_split(root, split) for split in ("train", "test")}
    unknown = sorted(set(listing["test"]) - set(listing["train"]))
    if unknown:
        raise ValueError(f"{root / 'test' / unknown[0]}: class {unknown[0]!r} is not in {root / 'train'}")
    return listing


def folder_bytes_estimate(root: str | os.PathLike[str], resolution: int, channels: int = 3) -> int:
    """Bytes an in-memory uint8 copy of the folder's train and test images would take at
    ``resolution x resolution`` with ``channels`` channels (the files are listed, not decoded)."""
    return _bytes_estimate(_listing(Path(root).expanduser()), resolution, channels)


def _bytes_estimate(listing: dict[str, dict[str, list[Path]]], resolution: int, channels: int) -> int:
    _check_int("resolution", resolution, 1)
    _check_channels(channels)
    count = sum(len(files) for classes in listing.values() for files in classes.values())
    return count * resolution * resolution * channels


def _default_memory_budget() -> int:
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return _FALLBACK_MEMORY
    return available // 4 if available > 0 else _FALLBACK_MEMORY


def should_stream(root: str | os.PathLike[str], resolution: int, *, memory_budget: int | None = None) -> bool:
    """Whether ``root`` should be trained from with :class:`StreamingFolder` rather than loaded
    into memory: its uint8 RGB copy (:func:`folder_bytes_estimate`) exceeds ``memory_budget``
    bytes (default: a quarter of the available memory, or 4 GiB when that is unknown), or its
    first training image is not ``resolution x resolution`` (only its header is read)."""
    from PIL import Image, UnidentifiedImageError

    if memory_budget is not None:
        _check_int("memory_budget", memory_budget, 1)
    budget = _default_memory_budget() if memory_budget is None else memory_budget
    listing = _listing(Path(root).expanduser())
    if _bytes_estimate(listing, resolution, 3) > budget:
        return True
    first = next(iter(listing["train"].values()))[0]
    try:
        with Image.open(first) as im:
            size = im.size
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"{first}: cannot read image header ({exc})") from None
    return size != (resolution, resolution)


def _per_class(root: Path, split: str, classes: dict[str, list[Path]], per_class: int | None,
               rng: np.random.Generator) -> dict[str, list[Path]]:
    if per_class is None:
        return classes
    _check_int(f"{split}_per_class", per_class, 1)
    out = {}
    for name, files in classes.items():
        if len(files) < per_class:
            raise ValueError(f"{root / split / name}: {len(files)} images, fewer than the "
                             f"{split}_per_class={per_class} asked for")
        out[name] = [files[i] for i in np.sort(rng.choice(len(files), per_class, replace=False))]
    return out


# ---------------------------------------------------------------------------------------------
# Transforms (run in the DataLoader workers)
def _random_resized_box(width: int, height: int, min_scale: float, rng: np.random.Generator) -> Box:
    """Szegedy et al. (2015)'s crop: ``_CROP_ATTEMPTS`` draws of an area fraction and an aspect
    ratio, the first that fits wins; otherwise the centre crop of the largest box whose aspect
    ratio is within bounds."""
    area = width * height
    for _ in range(_CROP_ATTEMPTS):
        target = area * rng.uniform(min_scale, 1.0)
        ratio = math.exp(rng.uniform(*_LOG_RATIO))
        w, h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            return float(rng.integers(0, width - w + 1)), float(rng.integers(0, height - h + 1)), float(w), float(h)
    low, high = (math.exp(r) for r in _LOG_RATIO)
    if width / height < low:
        w, h = width, round(width / low)
    elif width / height > high:
        w, h = round(height * high), height
    else:
        w, h = width, height
    return float((width - w) // 2), float((height - h) // 2), float(w), float(h)


def _centre_box(width: int, height: int, resolution: int) -> Box:
    """The source box that resizing the shorter side to ``resolution / 0.875`` and centre-cropping
    ``resolution x resolution`` (with the rounding of the two-step version) would keep."""
    short = round(resolution / _TEST_CROP_FRACTION)
    if width <= height:
        new_w, new_h = short, int(short * height / width)
    else:
        new_w, new_h = int(short * width / height), short
    left, top = round((new_w - resolution) / 2), round((new_h - resolution) / 2)
    sx, sy = width / new_w, height / new_h
    return left * sx, top * sy, resolution * sx, resolution * sy


def _load(path: str, mode: str, resolution: int, choose_box: Callable[[int, int], Box]) -> np.ndarray:
    """Decode ``path``, resize the box ``choose_box(width, height)`` to ``resolution`` square
    (bilinear, antialiased), as an ``(R, R, C)`` uint8 array. JPEGs are decoded at the smallest
    power-of-two reduction that still leaves the box at least ``resolution`` pixels across."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            width, height = im.size
            left, top, w, h = choose_box(width, height)
            im.draft(mode, (math.ceil(width * resolution / w), math.ceil(height * resolution / h)))
            sx, sy = im.size[0] / width, im.size[1] / height
            out = im.convert(mode).resize((resolution, resolution), Image.BILINEAR,
                                          box=(left * sx, top * sy, (left + w) * sx, (top + h) * sy))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ValueError(f"{path}: cannot decode image ({exc})") from None
    arr = np.asarray(out, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


class _Unreadable(NamedTuple):
    """A file that failed to decode, sent back from a worker in place of its image or batch."""

    message: str


class _Images(TorchDataset):
    """Files and labels of one split; items are ``(index, epoch)``. With ``augment`` set, the crop
    and flip of an item come from a generator seeded by ``(seed, epoch, index)``; otherwise the
    test transform is applied and the epoch is ignored.

    The file names (relative to ``root``) are kept in one bytes object with an offset array rather
    than as a list of strings: forked workers would otherwise copy every string they touch (by
    updating its reference count), a few hundred MB per worker on an ImageNet-sized list."""

    def __init__(self, root: Path, files: list[Path], labels: list[int], *, mode: str, resolution: int,
                 seed: int, augment: bool, min_scale: float, flip: bool) -> None:
        cut = len(os.path.join(root, ""))  # the listing's paths all start with root and a separator
        names = [os.fsencode(str(p)[cut:]) for p in files]
        self.root, self.names = str(root), b"".join(names)
        self.offsets = np.cumsum([0] + [len(n) for n in names], dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.mode, self.resolution, self.seed = mode, resolution, seed
        self.augment, self.min_scale, self.flip = augment, min_scale, flip

    def __len__(self) -> int:
        return len(self.labels)

    def name(self, index: int) -> str:
        """File ``index``'s path relative to the root."""
        return os.fsdecode(self.names[self.offsets[index]:self.offsets[index + 1]])

    def path(self, index: int) -> str:
        return os.path.join(self.root, self.name(index))

    def plain(self) -> _Images:
        """The same files under the test transform."""
        out = copy.copy(self)
        out.augment = False
        return out

    def __getitem__(self, item: tuple[int, int]) -> tuple[np.ndarray | _Unreadable, int]:
        index, epoch = item
        label = int(self.labels[index])
        try:
            if not self.augment:
                return _load(self.path(index), self.mode, self.resolution,
                             lambda w, h: _centre_box(w, h, self.resolution)), label
            rng = np.random.default_rng([_AUGMENT, self.seed, epoch, index])
            image = _load(self.path(index), self.mode, self.resolution,
                          lambda w, h: _random_resized_box(w, h, self.min_scale, rng))
        except ValueError as exc:
            return _Unreadable(str(exc)), label
        if self.flip and rng.random() < 0.5:
            image = image[:, ::-1]
        return image, label


class _Order(Sampler[tuple[int, int]]):
    """Yields ``(index, epoch)`` for each index of ``order``: the epoch travels with every item to
    the workers, so they need no state of their own."""

    def __init__(self, order: np.ndarray, epoch: int) -> None:
        self.order, self.epoch = order, epoch

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((int(i), self.epoch) for i in self.order)


def _collate(batch: list[tuple[np.ndarray | _Unreadable, int]]) -> tuple[torch.Tensor, torch.Tensor] | _Unreadable:
    for image, _ in batch:
        if isinstance(image, _Unreadable):
            return image
    images = torch.from_numpy(np.stack([image for image, _ in batch]))
    return images, torch.tensor([label for _, label in batch], dtype=torch.int64)


def _batches(loader: DataLoader) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's batches; an unreadable file raises ``ValueError`` here, in the main process.

    Decode errors travel back as values, not as worker exceptions: DataLoader re-raises those from
    a frame caught in a reference cycle with its iterator, which only the garbage collector then
    frees, and shutting the workers down from there waits out a 5 s join timeout per worker."""
    for batch in loader:
        if isinstance(batch, _Unreadable):
            raise ValueError(batch.message)
        yield batch


# ---------------------------------------------------------------------------------------------
class StreamingFolder:
    """Batches of an image-folder dataset decoded on the fly by DataLoader workers.

    ``root`` holds ``train/<class>/*`` and ``test/<class>/*`` (the test split uses a subset of the
    train class names). Training batches are random-resized crops (area fraction in
    ``[min_scale, 1]``) flipped at random when ``flip``; test batches are centre crops. Images are
    converted to RGB (``channels=3``) or grayscale (``channels=1``). ``train_per_class`` /
    ``test_per_class`` keep a class-balanced random subset of each split, chosen by ``seed``.
    ``workers`` processes decode images (0: in this process); ``pin_memory`` is passed to the
    DataLoader. ``progress`` shows bars for the one-off passes (fingerprint, mean/std estimate).
    """

    def __init__(self, root: str | os.PathLike[str], *, resolution: int, seed: int = 0, workers: int = 2,
                 pin_memory: bool = False, min_scale: float = 0.08, flip: bool = True,
                 train_per_class: int | None = None, test_per_class: int | None = None,
                 channels: int = 3, progress: bool = False) -> None:
        self.resolution = _check_int("resolution", resolution, 8)
        self.seed = _check_int("seed", seed, 0)
        self.workers = _check_int("workers", workers, 0)
        self._mode = _check_channels(channels)
        self.channels = channels
        if not is_real(min_scale) or not 0 < min_scale <= 1:
            raise ValueError(f"min_scale must be a number in (0, 1], got {min_scale!r}")
        for name, flag in (("pin_memory", pin_memory), ("flip", flip), ("progress", progress)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be True or False, got {flag!r}")
        self.pin_memory, self.min_scale, self.flip, self.progress = pin_memory, float(min_scale), flip, progress
        self.root = Path(root).expanduser().resolve()
        self.name = self.root.name
        listing = _listing(self.root)
        self.classes = tuple(listing["train"])
        self.num_classes = len(self.classes)
        splits = {
            "train": _per_class(self.root, "train", listing["train"], train_per_class,
                                np.random.default_rng([_TRAIN_SUBSET, seed])),
            "test": _per_class(self.root, "test", listing["test"], test_per_class,
                               np.random.default_rng([_TEST_SUBSET, seed])),
        }
        label = {name: i for i, name in enumerate(self.classes)}
        self._train, self._test = (
            _Images(self.root, [p for paths in splits[split].values() for p in paths],
                    [label[name] for name, paths in splits[split].items() for _ in paths],
                    mode=self._mode, resolution=self.resolution, seed=self.seed, augment=split == "train",
                    min_scale=self.min_scale, flip=self.flip)
            for split in ("train", "test"))
        self.num_train, self.num_test = len(self._train), len(self._test)

    def _loader(self, data: _Images, order: np.ndarray, epoch: int, batch_size: int,
                drop_last: bool) -> DataLoader:
        # A private generator: DataLoader draws its worker base seed from it at every iteration,
        # which would otherwise advance torch's global generator (and change model initialisation).
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(data, batch_size=batch_size, sampler=_Order(order, epoch), num_workers=self.workers,
                          collate_fn=_collate, pin_memory=self.pin_memory, drop_last=drop_last,
                          generator=generator)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full batches per training epoch (the last partial batch is dropped)."""
        _check_int("batch_size", batch_size, 1)
        steps = self.num_train // batch_size
        if steps == 0:
            raise ValueError(f"batch_size {batch_size} exceeds the {self.num_train} training images of {self.root}")
        return steps

    def train_batches(self, epoch: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of augmented ``(B, R, R, C)`` uint8 images and int64 labels in an order
        shuffled by ``(seed, epoch)``; the last partial batch is dropped."""
        _check_int("epoch", epoch, 0)
        self.steps_per_epoch(batch_size)
        order = np.random.default_rng([_SHUFFLE, self.seed, epoch]).permutation(self.num_train)
        return _batches(self._loader(self._train, order, epoch, batch_size, drop_last=True))

    def test_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The test split in listing order, centre-cropped, the last batch possibly partial."""
        _check_int("batch_size", batch_size, 1)
        return _batches(self._loader(self._test, np.arange(self.num_test), 0, batch_size, drop_last=False))

    @cached_property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and standard deviation in [0, 1] units, estimated once on up to 500
        training images (chosen by ``seed``) under the test transform."""
        count = min(self.num_train, _MEAN_STD_IMAGES)
        chosen = np.sort(np.random.default_rng([_MEAN_STD, self.seed]).choice(self.num_train, count, replace=False))
        loader = self._loader(self._train.plain(), chosen, 0, 50, drop_last=False)
        total = np.zeros(self.channels)
        squares = np.zeros(self.channels)
        with tqdm(total=count, desc=f"mean/std {self.name}", unit="img", disable=not self.progress) as bar:
            for images, _ in _batches(loader):
                x = images.numpy().reshape(-1, self.channels).astype(np.float64) / 255.0
                total += x.sum(axis=0)
                squares += np.square(x).sum(axis=0)
                bar.update(len(images))
        pixels = count * self.resolution * self.resolution
        mean = total / pixels
        std = np.sqrt(np.maximum(squares / pixels - mean**2, 1e-12))
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)

    @cached_property
    def _fingerprint(self) -> str:
        h = hashlib.sha256(json.dumps({"classes": list(self.classes), "channels": self.channels}).encode())
        total = self.num_train + self.num_test
        with tqdm(total=total, desc=f"listing {self.name}", unit="file", disable=not self.progress) as bar:
            for split, data in (("train", self._train), ("test", self._test)):
                h.update(f"{split}\n".encode())
                for i in range(len(data)):
                    h.update(f"{data.name(i).replace(os.sep, '/')}\0{os.stat(data.path(i)).st_size}\n".encode())
                    bar.update()
        return h.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """JSON-ready identity for cache keys: a fingerprint of the selected files (relative paths
        and sizes, not modification times), the class names and the channel count, plus sizes."""
        return {"kind": "stream", "fingerprint": self._fingerprint, "classes": self.num_classes,
                "train": self.num_train, "test": self.num_test, "resolution": self.resolution}
