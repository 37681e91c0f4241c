"""Fashion-MNIST (Xiao et al., "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine
Learning Algorithms", 2017), read from its idx files, gzipped or not.

The idx format is MNIST's (LeCun et al.), so :func:`load_fashion_mnist` with other class names
and :func:`read_idx` read MNIST-format data in general.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from evaluators.datasets.base import Dataset, ImageSet

__all__ = ["FASHION_MNIST_CLASSES", "read_idx", "load_fashion_mnist"]

FASHION_MNIST_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                         "sneaker", "bag", "ankle boot")
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

