"""The dataset types every loader in :mod:`evaluators.datasets` returns, and what code that
trains or ranks networks needs of them.

- :class:`ImageSet`: one split, ``(N, H, W, C)`` uint8 images and int64 labels, held in memory
  so that training epochs are fast.
- :class:`Dataset`: class names, a train and a test split, and a content fingerprint that
  identifies the data in evaluator cache keys whatever file or archive it came from.
- :class:`Holdout`: which training images a search ranks candidates on, so that a ranking never
  scores on images the networks learned.
- :func:`normalise` (uint8 batches to standardised float tensors) and :func:`default_cache_dir`.

The loaders build on this module; it imports none of them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.checks import is_int

__all__ = ["ImageSet", "Dataset", "Holdout", "default_cache_dir", "normalise"]


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
    if not is_int(per_class) or per_class < 1:
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
