"""The CIFAR-10 / CIFAR-100 "python version" folders (Krizhevsky, "Learning Multiple Layers of
Features from Tiny Images", 2009).

Those batch files are pickles, and unpickling runs whatever code a file names, so they are read
with an unpickler that only admits the numpy array types they contain: a doctored download
cannot run code, it fails with ``ValueError``.
"""

from __future__ import annotations

import codecs
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from evaluators.datasets.base import Dataset, ImageSet

__all__ = ["load_cifar"]


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

