"""Where training batches come from: the protocol the training loop reads, its in-memory
implementation, and the per-epoch seeds that make every epoch reproducible on its own.

A :class:`BatchSource` yields ``(images, labels)``: uint8 ``(B, H, W, C)`` images, already
geometrically augmented (crop, flip) for training, and int64 labels. Two implementations:

- :class:`InMemoryBatches`: a :class:`~evaluators.datasets.Dataset` held as uint8 arrays (moved to
  the device once), random crop with zero padding and flip on the device: the fast path for
  CIFAR-size data.
- :class:`~evaluators.training.stream.StreamingFolder`: an image folder too large for memory,
  decoded by ``DataLoader`` workers with a random-resized crop.

Every epoch draws from generators seeded by :func:`epoch_seed` ``(seed, epoch, stream)``, not from a
generator carried across epochs, so a run resumed at an epoch boundary sees exactly the batches an
uninterrupted run would, with no random state to save.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import torch

from evaluators.datasets import Dataset
from evaluators.training.augment import pad_crop_flip

__all__ = ["BatchSource", "InMemoryBatches", "epoch_seed", "epoch_generator"]


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A 63-bit seed for random stream ``stream`` of epoch ``epoch`` of a run seeded ``seed``
    (numpy's ``SeedSequence`` mixing, so nearby seeds give unrelated streams)."""
    return int(np.random.SeedSequence([seed, epoch, stream]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def epoch_generator(seed: int, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator seeded by :func:`epoch_seed`."""
    return torch.Generator().manual_seed(epoch_seed(seed, epoch, stream))


class BatchSource(Protocol):
    """What the training loop needs from a dataset."""

    name: str
    classes: tuple[str, ...]
    num_train: int
    num_test: int

    @property
    def num_classes(self) -> int: ...

    @property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]: ...

    def describe(self) -> dict[str, Any]: ...

    def steps_per_epoch(self, batch_size: int) -> int: ...

    def train_batches(self, epoch: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def test_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


class InMemoryBatches:
    """A :class:`Dataset` as batches on ``device``: per epoch a seeded permutation (whole batches
    only), random crop with ``crop_padding`` zero padding and random flip, all on the device."""

    def __init__(self, data: Dataset, *, device: torch.device | str = "cpu", seed: int = 0, crop_padding: int = 4,
                 flip: bool = True):
        if not isinstance(data, Dataset):
            raise ValueError(f"data must be a Dataset, got {type(data).__name__}")
        self.data = data
        self.name = data.name
        self.classes = data.classes
        self.num_train, self.num_test = len(data.train), len(data.test)
        self.device = torch.device(device)
        self.seed, self.crop_padding, self.flip = seed, crop_padding, flip
        self._train: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    @property
    def resolution(self) -> int:
        return self.data.resolution

    @property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.data.mean_std

    def describe(self) -> dict[str, Any]:
        return {"kind": "memory", **self.data.describe()}

    def steps_per_epoch(self, batch_size: int) -> int:
        return self.num_train // min(batch_size, self.num_train)

    def _train_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._train is None:
            self._train = (torch.from_numpy(self.data.train.images).to(self.device),
                           torch.from_numpy(self.data.train.labels).to(self.device))
        return self._train

    def train_batches(self, epoch: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images, labels = self._train_tensors()
        batch = min(batch_size, self.num_train)
        gen = epoch_generator(self.seed, epoch)
        order = torch.randperm(self.num_train, generator=gen).to(self.device)
        for step in range(self.num_train // batch):
            idx = order[step * batch:(step + 1) * batch]
            yield pad_crop_flip(images[idx], gen, padding=self.crop_padding, flip=self.flip), labels[idx]

    def test_batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images = torch.from_numpy(self.data.test.images)
        labels = torch.from_numpy(self.data.test.labels)
        for i in range(0, self.num_test, batch_size):
            yield images[i:i + batch_size].to(self.device), labels[i:i + batch_size].to(self.device)
