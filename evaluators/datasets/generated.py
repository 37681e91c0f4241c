"""A small generated dataset that networks learn in a few steps, so that tests and examples can
train and rank networks without downloading or decoding anything.

(Named ``generated`` rather than ``synthetic`` so the module does not share the name of the
function :func:`synthetic` that the package exports.)
"""

from __future__ import annotations

import numpy as np

from evaluators.datasets.base import Dataset, ImageSet
from nas.checks import is_int

__all__ = ["synthetic"]


def synthetic(*, num_classes: int = 4, train_per_class: int = 64, test_per_class: int = 32,
              resolution: int = 16, channels: int = 3, noise: float = 40.0, seed: int = 0) -> Dataset:
    """A generated dataset that small networks learn in a few steps (for tests).

    Each class is a random blocky colour template (a 4x4 pattern upsampled); an image is its
    class template, shifted by up to 2 pixels, plus Gaussian noise of std ``noise`` (0-255 units).
    """
    for name, v in (("num_classes", num_classes), ("train_per_class", train_per_class),
                    ("test_per_class", test_per_class), ("channels", channels)):
        if not is_int(v) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if not is_int(resolution) or resolution < 4 or resolution % 4:
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

