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

The package holds one module a job: :mod:`.base` (the types, :class:`ImageSet`,
:class:`Dataset`, :class:`Holdout`, :func:`normalise`), :mod:`.folder`, :mod:`.cifar`,
:mod:`.fashion_mnist`, :mod:`.generated` (:func:`synthetic`) and :mod:`.archive`; the loaders
import only :mod:`.base`, and this module, the dispatcher, imports them all.
"""

from __future__ import annotations

import os
from pathlib import Path

from evaluators.datasets.archive import extract_archive
from evaluators.datasets.base import Dataset, Holdout, ImageSet, default_cache_dir, normalise
from evaluators.datasets.cifar import load_cifar
from evaluators.datasets.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist, read_idx
from evaluators.datasets.folder import IMAGE_EXTENSIONS, load_image_folder
from evaluators.datasets.generated import synthetic

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
