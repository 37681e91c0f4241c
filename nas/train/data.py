"""The data of a training run, from a ``--data`` value: in memory when it fits, streamed when not.

- An image folder (``train/<class>/*``, ``test/<class>/*``; a ``.tar.gz`` of one is extracted
  first) whose decoded copy would take more than a quarter of the available memory, or whose
  images are not the architecture's size (an ImageNet-style tree), streams from disk through
  :class:`~evaluators.training.stream.StreamingFolder` (multi-worker decoding, random-resized crop
  at the architecture's resolution, resize + centre crop for test). ``stream`` forces either way.
- Anything else (a small image folder, CIFAR pickles, Fashion-MNIST, ``synthetic``) is decoded
  once into uint8 arrays and trained from memory (:class:`~evaluators.training.sources.InMemoryBatches`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from evaluators.datasets import Dataset, Holdout, extract_archive, load_dataset, synthetic
from evaluators.training.recipe import TrainConfig
from evaluators.training.sources import BatchSource, InMemoryBatches
from evaluators.training.stream import StreamingFolder, should_stream
from nas.arch import Arch

__all__ = ["open_data"]


def _folder_of(spec: str) -> Path | None:
    """The image-folder root ``spec`` names (extracting an archive), or ``None`` if it is not one."""
    path = Path(spec).expanduser()
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz", ".tar")):
        path = extract_archive(path)
    if path.is_dir() and (path / "train").is_dir() and (path / "test").is_dir():
        return path
    return None


def _check_fit(arch: Arch, source: BatchSource, spec: str, *, channels: int, resolution: int | None) -> None:
    if source.num_classes < 2:
        raise ValueError(f"--data {spec}: {source.num_classes} class; training a classifier needs at least 2")
    if source.num_classes != arch.num_classes:
        raise ValueError(f"--data {spec}: {source.num_classes} classes, the architecture predicts "
                         f"{arch.num_classes}; pass --num-classes {source.num_classes} to train a new classifier")
    if channels != arch.in_chans:
        raise ValueError(f"--data {spec}: {channels}-channel images, the architecture takes {arch.in_chans}")
    if resolution is not None and resolution != arch.resolution:
        raise ValueError(f"--data {spec}: {resolution}x{resolution} images, the architecture takes "
                         f"{arch.resolution}x{arch.resolution}; pick an architecture of that resolution (an "
                         "image folder of other sizes streams and is cropped to the architecture's)")


def open_data(spec: str, arch: Arch, recipe: TrainConfig, *, device: torch.device, stream: bool | None = None,
              workers: int = 2, train_per_class: int | None = None, test_per_class: int | None = None,
              holdout: Holdout | None = None, progress: bool = True) -> BatchSource:
    """The batches for training ``arch`` on ``spec`` (a path or ``synthetic``); ``ValueError``
    naming ``--data`` when the data is missing or does not fit the architecture.

    ``holdout`` splits images of each training class off as the test split first (what a search
    ranks on, :func:`evaluators.datasets.Holdout`), so that what trains here never sees them."""
    if spec == "synthetic":
        if stream:
            raise ValueError("--stream needs an image folder, not --data synthetic")
        if holdout is not None:
            raise ValueError("--data synthetic has no training split to hold images out of; give a dataset")
        data: Dataset = synthetic(num_classes=arch.num_classes, resolution=arch.resolution, channels=arch.in_chans,
                                  seed=recipe.seed)
    else:
        if not Path(spec).expanduser().exists():
            raise ValueError(f"--data {spec}: no such file or folder")
        folder = _folder_of(spec)
        if stream and folder is None:
            raise ValueError(f"--data {spec}: --stream needs an image folder (train/<class>/, test/<class>/)")
        if folder is not None and (stream or (stream is None and should_stream(folder, arch.resolution))):
            if holdout is not None:
                raise ValueError(f"--data {spec}: holding images out of the training split needs data that fits in "
                                 "memory; this folder streams")
            source = StreamingFolder(folder, resolution=arch.resolution, seed=recipe.seed, workers=workers,
                                     pin_memory=device.type == "cuda", min_scale=recipe.min_scale, flip=recipe.flip,
                                     train_per_class=train_per_class, test_per_class=test_per_class,
                                     channels=arch.in_chans, progress=progress)
            _check_fit(arch, source, spec, channels=arch.in_chans, resolution=None)
            return source
        data = load_dataset(spec, progress=progress)
        if holdout is not None:
            data = holdout.apply(data)
        if train_per_class is not None or test_per_class is not None:
            try:
                data = data.subset(train_per_class=train_per_class, test_per_class=test_per_class, seed=recipe.seed)
            except ValueError as exc:  # names the split: lower --train-per-class or --test-per-class
                raise ValueError(f"--data {spec}: {exc}; lower --train-per-class / --test-per-class") from None
    source = InMemoryBatches(data, device=device, seed=recipe.seed, crop_padding=recipe.crop_padding,
                             flip=recipe.flip)
    _check_fit(arch, source, spec, channels=data.channels, resolution=data.resolution)
    return source
