"""Batched, seeded data augmentation for image-classification training.

Three augmentations, each applied to a whole batch at once on the batch's device (CPU or CUDA):

- :func:`pad_crop_flip`: random crop with zero padding and random horizontal flip, the standard
  geometric augmentation for small images (Krizhevsky et al., "ImageNet Classification with Deep
  Convolutional Neural Networks", NeurIPS 2012; He et al., "Deep Residual Learning for Image
  Recognition", CVPR 2016);
- :func:`cutout`: one zeroed square per normalised image (DeVries & Taylor, "Improved
  Regularization of Convolutional Neural Networks with Cutout", arXiv:1708.04552, 2017);
- :func:`trivial_augment`: TrivialAugment Wide, one random operation at a random strength per
  image (Müller & Hutter, "TrivialAugment: Tuning-free Yet State-of-the-Art Data Augmentation",
  ICCV 2021), with the operations of AutoAugment (Cubuk et al., "AutoAugment: Learning
  Augmentation Strategies from Data", CVPR 2019) and the "wide" magnitude ranges of torchvision's
  ``TrivialAugmentWide``.

Why not per-image transforms in a data loader: training runs on batches that already sit on the
device, so the augmentations are tensor operations over the batch (TrivialAugment groups the
images that drew the same operation and transforms each group in one call).

Reproducibility: every random number is drawn from the caller's CPU :class:`torch.Generator` and
then moved to the images' device, and the global RNG is never used, so the output is a function of
the generator state and the input alone. To make it bitwise identical on CPU and CUDA, the
arithmetic is exact where it decides an integer: colour operations blend integers in float64
(where those products and sums are exact), and geometric operations compute their source pixel in
float64, snapped to a 2**-16 grid before rounding, so that a last-bit difference between devices
(fused multiply-add, TF32) cannot move a nearest-neighbour tie. No function modifies its input.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["pad_crop_flip", "cutout", "trivial_augment"]

# The operations of TrivialAugment Wide, in the order in which an operation index is drawn.
_OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
        "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
_SNAP = 2.0 ** 16  # source coordinates are rounded to multiples of 1 / _SNAP before nearest rounding


def _check_generator(generator: torch.Generator) -> None:
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator, got {generator!r}")


def _check_batch(images: Tensor, layout: str) -> None:
    if not isinstance(images, Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a {layout} batch (4 dimensions), got {shape}")


def pad_crop_flip(images: Tensor, generator: torch.Generator, *, padding: int, flip: bool) -> Tensor:
    """Random crop with zero padding and random horizontal flip of a ``(B, H, W, C)`` batch.

    Each image is zero-padded by ``padding`` pixels on every side and cropped back to ``H x W`` at
    its own offset, uniform in ``[0, 2 * padding]`` along each axis; then, with ``flip``, each image
    is mirrored left-right with probability 0.5. Draws, in order: ``B`` row offsets and ``B``
    column offsets (only when ``padding > 0``), then ``B`` uniforms for the flips (only with
    ``flip``). With ``padding == 0`` and no ``flip`` the input itself is returned.
    """
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    _check_batch(images, "(B, H, W, C)")
    _check_generator(generator)
    b, h, w, _ = images.shape
    device = images.device
    if padding:
        padded = F.pad(images, (0, 0, padding, padding, padding, padding))
        oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(device)
        ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(device)
        rows = oy[:, None] + torch.arange(h, device=device)
        cols = ox[:, None] + torch.arange(w, device=device)
        images = padded[torch.arange(b, device=device)[:, None, None], rows[:, :, None], cols[:, None, :]]
    if flip:
        mirrored = (torch.rand(b, generator=generator) < 0.5).to(device)
        images = torch.where(mirrored[:, None, None, None], images.flip(2), images)
    return images


def cutout(images: Tensor, generator: torch.Generator, *, size: int) -> Tensor:
    """Cutout: zero one ``size x size`` square per image of a normalised ``(B, C, H, W)`` batch.

    The square's centre pixel is uniform over the whole image (rows then columns drawn, ``B`` each),
    so the square may be clipped by the border; it spans rows ``cy - size // 2`` to
    ``cy - size // 2 + size - 1`` (likewise columns) in every channel. Zero is the dataset mean once
    the images are normalised. The memory format of ``images`` is kept. ``size == 0`` returns the
    input itself and draws nothing.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    _check_batch(images, "(B, C, H, W)")
    if not images.is_floating_point():
        raise ValueError(f"images must be a normalised floating-point batch, got {images.dtype}")
    _check_generator(generator)
    if size == 0:
        return images
    b, _, h, w = images.shape
    device = images.device
    top = torch.randint(0, h, (b,), generator=generator).to(device)[:, None] - size // 2
    left = torch.randint(0, w, (b,), generator=generator).to(device)[:, None] - size // 2
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    in_rows = (rows >= top) & (rows < top + size)  # (B, H)
    in_cols = (cols >= left) & (cols < left + size)  # (B, W)
    out = images.clone()  # clone keeps the memory format, an out-of-place masked_fill would not
    return out.masked_fill_((in_rows[:, :, None] & in_cols[:, None, :])[:, None], 0.0)


# ---------------------------------------------------------------------------------- TrivialAugment
def trivial_augment(images: Tensor, generator: torch.Generator, *, bins: int = 31) -> Tensor:
    """TrivialAugment Wide on a uint8 ``(B, H, W, C)`` batch (``C`` = 1 or 3).

    Each image gets one operation drawn uniformly from the 14 of TrivialAugment Wide (Identity,
    ShearX, ShearY, TranslateX, TranslateY, Rotate, Brightness, Color, Contrast, Sharpness,
    Posterize, Solarize, AutoContrast, Equalize) at a strength drawn uniformly from ``bins`` levels
    of torchvision's wide ranges, negated with probability 0.5 for the signed operations. Draws, in
    order: ``B`` operation indices, ``B`` levels, ``B`` signs (all three always, whatever was drawn).
    Returns a new uint8 ``(B, H, W, C)`` tensor.
    """
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins}")
    _check_batch(images, "(B, H, W, C)")
    if images.dtype != torch.uint8 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be uint8 (B, H, W, C) with C = 1 or 3, got {images.dtype} "
                         f"{tuple(images.shape)}")
    _check_generator(generator)
    ops, magnitudes = _sample_wide(images.shape[0], bins, generator)
    out = images.clone()
    for k, name in enumerate(_OPS):
        chosen = (ops == k).nonzero().squeeze(1)
        if name != "Identity" and chosen.numel():
            index = chosen.to(images.device)
            out[index] = _apply_op(images[index], name, magnitudes[chosen])
    return out


def _wide_magnitudes(bins: int) -> tuple[Tensor, Tensor]:
    """``(14, bins)`` float32 magnitudes of each operation of :data:`_OPS` per level, and which are
    signed: the wide ranges of torchvision's ``TrivialAugmentWide`` (zeros for the operations
    without a magnitude)."""
    unit = torch.linspace(0.0, 0.99, bins)
    posterize = 8 - (torch.arange(bins) / ((bins - 1) / 6)).round()
    table = {"ShearX": unit, "ShearY": unit, "TranslateX": torch.linspace(0.0, 32.0, bins),
             "TranslateY": torch.linspace(0.0, 32.0, bins), "Rotate": torch.linspace(0.0, 135.0, bins),
             "Brightness": unit, "Color": unit, "Contrast": unit, "Sharpness": unit,
             "Posterize": posterize.float(), "Solarize": torch.linspace(255.0, 0.0, bins)}
    magnitudes = torch.stack([table.get(name, torch.zeros(bins)) for name in _OPS])
    signed = torch.tensor([name in table and name not in ("Posterize", "Solarize") for name in _OPS])
    return magnitudes, signed


def _sample_wide(batch: int, bins: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Draw each image's operation (an index into :data:`_OPS`) and signed float32 magnitude (CPU)."""
    ops = torch.randint(len(_OPS), (batch,), generator=generator)
    levels = torch.randint(bins, (batch,), generator=generator)
    negate = torch.randint(2, (batch,), generator=generator).bool()
    table, signed = _wide_magnitudes(bins)
    magnitudes = table[ops, levels]
    return ops, torch.where(signed[ops] & negate, -magnitudes, magnitudes)


def _apply_op(images: Tensor, op_name: str, magnitude: float | Tensor) -> Tensor:
    """Apply the TrivialAugment operation ``op_name`` to a uint8 ``(B, H, W, C)`` batch.

    ``magnitude`` is one value for every image or one per image, in the operation's own unit (shear
    factor, pixels, degrees counter-clockwise, enhancement offset ``factor - 1``, bits, threshold);
    it is rounded to float32 first, like torchvision's magnitude tables. Returns a new tensor.
    """
    if op_name not in _OPS:
        raise ValueError(f"op_name must be one of {_OPS}, got {op_name!r}")
    m = torch.as_tensor(magnitude, dtype=torch.float32).cpu().double().expand(images.shape[0])
    return _OP_FUNCTIONS[op_name](images, m)


# Geometric operations: an inverse map per image, from an output pixel to the input pixel it copies,
# as ``source = matrix @ target + offset`` in pixel units about the image centre (y pointing down).
def _warp(images: Tensor, matrix: Tensor, offset: Tensor) -> Tensor:
    """Nearest-neighbour resampling of ``(B, H, W, C)`` images by per-image inverse affine maps
    (``matrix`` ``(B, 2, 2)``, ``offset`` ``(B, 2)``, float64 on CPU); outside pixels become 0."""
    b, h, w, c = images.shape
    device = images.device
    xs = torch.arange(w, dtype=torch.float64, device=device) - (w - 1) / 2
    ys = torch.arange(h, dtype=torch.float64, device=device) - (h - 1) / 2
    a = matrix.to(device)[:, :, :, None, None]
    t = offset.to(device)[:, :, None, None]
    source_x = a[:, 0, 0] * xs + a[:, 0, 1] * ys[:, None] + t[:, 0] + (w - 1) / 2
    source_y = a[:, 1, 0] * xs + a[:, 1, 1] * ys[:, None] + t[:, 1] + (h - 1) / 2
    col = (torch.round(source_x * _SNAP) / _SNAP).round().long()
    row = (torch.round(source_y * _SNAP) / _SNAP).round().long()
    inside = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    flat = (row.clamp(0, h - 1) * w + col.clamp(0, w - 1)).reshape(b, h * w, 1).expand(b, h * w, c)
    picked = images.reshape(b, h * w, c).gather(1, flat).reshape(b, h, w, c)
    return picked.masked_fill(~inside[..., None], 0)


def _shear_x(images: Tensor, m: Tensor) -> Tensor:
    # x_source = x + m * y about the top-left corner, as PIL and torchvision (centre=[0, 0]) do.
    zeros, ones = torch.zeros_like(m), torch.ones_like(m)
    matrix = torch.stack([torch.stack([ones, m], 1), torch.stack([zeros, ones], 1)], 1)
    offset = torch.stack([m * images.shape[1] / 2, zeros], 1)
    return _warp(images, matrix, offset)


def _shear_y(images: Tensor, m: Tensor) -> Tensor:
    zeros, ones = torch.zeros_like(m), torch.ones_like(m)
    matrix = torch.stack([torch.stack([ones, zeros], 1), torch.stack([m, ones], 1)], 1)
    offset = torch.stack([zeros, m * images.shape[2] / 2], 1)
    return _warp(images, matrix, offset)


def _translate(images: Tensor, m: Tensor, axis: int) -> Tensor:
    # Whole pixels, truncated toward zero as torchvision's int(magnitude); positive moves right / down.
    offset = torch.zeros(m.shape[0], 2, dtype=torch.float64)
    offset[:, axis] = -torch.trunc(m)
    return _warp(images, torch.eye(2, dtype=torch.float64).expand(m.shape[0], 2, 2), offset)


def _rotate(images: Tensor, m: Tensor) -> Tensor:
    # Counter-clockwise by m degrees about the centre; the inverse map rotates the other way.
    cos, sin = torch.cos(torch.deg2rad(m)), torch.sin(torch.deg2rad(m))
    matrix = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    return _warp(images, matrix, torch.zeros(m.shape[0], 2, dtype=torch.float64))


# Colour operations (PIL's ImageEnhance / ImageOps semantics) in float64, rounded back to uint8.
def _blend(images: Tensor, degenerate: Tensor, m: Tensor) -> Tensor:
    """``degenerate + (1 + m) * (images - degenerate)``, rounded and clamped to uint8."""
    factor = (1.0 + m).to(images.device)[:, None, None, None]
    x = images.double()
    return (degenerate + factor * (x - degenerate)).round().clamp(0, 255).to(torch.uint8)


def _gray(images: Tensor) -> Tensor:
    """Integer luma ``(B, H, W, 1)`` in float64, exactly PIL's ``convert("L")``: ITU-R 601-2 weights
    0.299, 0.587, 0.114 in 16-bit fixed point, rounded."""
    if images.shape[-1] == 1:
        return images.double()
    weights = torch.tensor([19595.0, 38470.0, 7471.0], dtype=torch.float64, device=images.device)
    return torch.floor(((images.double() * weights).sum(-1, keepdim=True) + 32768) / 65536)


def _brightness(images: Tensor, m: Tensor) -> Tensor:
    return _blend(images, torch.zeros((), dtype=torch.float64, device=images.device), m)


def _color(images: Tensor, m: Tensor) -> Tensor:
    return _blend(images, _gray(images), m) if images.shape[-1] == 3 else images.clone()


def _contrast(images: Tensor, m: Tensor) -> Tensor:
    mean = _gray(images).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(images, torch.floor(mean + 0.5), m)  # PIL rounds the mean luma to an integer


def _sharpness(images: Tensor, m: Tensor) -> Tensor:
    h, w = images.shape[1:3]
    if h < 3 or w < 3:  # every pixel is a border pixel: the smoothed image is the image
        return images.clone()
    x = images.double()
    total = 4 * x[:, 1:-1, 1:-1]  # kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            total = total + x[:, dy:h - 2 + dy, dx:w - 2 + dx]
    smooth = x.clone()
    smooth[:, 1:-1, 1:-1] = (total / 13).round()
    return _blend(images, smooth, m)


def _posterize(images: Tensor, m: Tensor) -> Tensor:
    drop = (8 - m.long()).clamp(0, 8)
    keep = ((255 >> drop) << drop).to(torch.uint8).to(images.device)
    return images & keep[:, None, None, None]


def _solarize(images: Tensor, m: Tensor) -> Tensor:
    threshold = m.to(images.device)[:, None, None, None]
    return torch.where(images >= threshold, 255 - images, images)


def _autocontrast(images: Tensor, m: Tensor) -> Tensor:
    x = images.double()
    low = x.amin(dim=(1, 2), keepdim=True)
    span = x.amax(dim=(1, 2), keepdim=True) - low
    stretched = ((x - low) * 255 / span.clamp(min=1)).round()
    return torch.where(span > 0, stretched, x).to(torch.uint8)


def _equalize(images: Tensor, m: Tensor) -> Tensor:
    # PIL's ImageOps.equalize per channel: step = (pixels - pixels at the top value) // 255,
    # lut[v] = (step // 2 + #pixels below v) // step; a channel with step 0 is left alone.
    b, h, w, c = images.shape
    values = images.permute(0, 3, 1, 2).reshape(b * c, h * w).long()
    shifted = values + 256 * torch.arange(b * c, device=images.device)[:, None]
    hist = torch.bincount(shifted.flatten(), minlength=256 * b * c).view(b * c, 256)
    top = hist.gather(1, values.amax(1, keepdim=True))
    step = (h * w - top) // 255
    below = F.pad(hist.cumsum(1)[:, :-1], (1, 0))
    lut = ((below + step // 2) // step.clamp(min=1)).clamp(max=255)
    equalised = torch.where(step > 0, lut.gather(1, values), values)
    return equalised.view(b, c, h, w).permute(0, 2, 3, 1).to(torch.uint8).contiguous()


_OP_FUNCTIONS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "Identity": lambda images, m: images.clone(),
    "ShearX": _shear_x,
    "ShearY": _shear_y,
    "TranslateX": lambda images, m: _translate(images, m, 0),
    "TranslateY": lambda images, m: _translate(images, m, 1),
    "Rotate": _rotate,
    "Brightness": _brightness,
    "Color": _color,
    "Contrast": _contrast,
    "Sharpness": _sharpness,
    "Posterize": _posterize,
    "Solarize": _solarize,
    "AutoContrast": _autocontrast,
    "Equalize": _equalize,
}
