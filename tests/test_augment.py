"""Batched, seeded augmentations (evaluators.training.augment): shapes, determinism, purity, the
crop/flip of the former ``evaluators.train.augment``, Cutout's square, each TrivialAugment operation
(against PIL where PIL defines it), argument validation, and CPU/CUDA agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from evaluators.training.augment import _OPS, _apply_op, _sample_wide, cutout, pad_crop_flip, trivial_augment


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(b: int = 8, h: int = 16, w: int = 16, c: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (b, h, w, c), generator=_gen(seed), dtype=torch.uint8)


def _normalised(b: int = 8, c: int = 3, h: int = 16, w: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, c, h, w, generator=_gen(seed)) + 5.0  # never 0, so a zero is a cut-out pixel


def _train_augment_at_head(images: torch.Tensor, generator: torch.Generator, *, padding: int,
                           flip: bool) -> torch.Tensor:
    """``evaluators.train.augment`` as it was when :func:`pad_crop_flip` replaced it (frozen copy)."""
    b, h, w, _ = images.shape
    if padding:
        padded = F.pad(images, (0, 0, padding, padding, padding, padding))
        oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(images.device)
        ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(images.device)
        rows = oy[:, None] + torch.arange(h, device=images.device)
        cols = ox[:, None] + torch.arange(w, device=images.device)
        images = padded[torch.arange(b, device=images.device)[:, None, None], rows[:, :, None], cols[:, None, :]]
    if flip:
        mask = (torch.rand(b, generator=generator) < 0.5).to(images.device)
        images = torch.where(mask[:, None, None, None], images.flip(2), images)
    return images


ALL = [
    pytest.param(lambda x, g: pad_crop_flip(x, g, padding=4, flip=True), _images, id="pad_crop_flip"),
    pytest.param(lambda x, g: cutout(x, g, size=6), _normalised, id="cutout"),
    pytest.param(lambda x, g: trivial_augment(x, g), lambda: _images(32), id="trivial_augment"),
]


# ------------------------------------------------------------------------------------- all three
@pytest.mark.parametrize(("fn", "make"), ALL)
def test_shape_dtype_determinism_and_purity(fn, make) -> None:
    x = make()
    before = x.clone()
    a, b, c = fn(x, _gen(3)), fn(x, _gen(3)), fn(x, _gen(4))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(x, before)


@pytest.mark.parametrize(("fn", "make"), ALL)
def test_generator_must_be_cpu_generator(fn, make) -> None:
    with pytest.raises(ValueError, match="generator"):
        fn(make(), None)


def test_invalid_arguments_name_the_argument() -> None:
    with pytest.raises(ValueError, match="padding"):
        pad_crop_flip(_images(), _gen(), padding=-1, flip=True)
    with pytest.raises(ValueError, match="images"):
        pad_crop_flip(_images()[0], _gen(), padding=4, flip=True)
    with pytest.raises(ValueError, match="size"):
        cutout(_normalised(), _gen(), size=-1)
    with pytest.raises(ValueError, match="images"):
        cutout(_images(), _gen(), size=4)  # uint8, not normalised
    with pytest.raises(ValueError, match="bins"):
        trivial_augment(_images(), _gen(), bins=1)
    with pytest.raises(ValueError, match="images"):
        trivial_augment(_images(c=2), _gen())
    with pytest.raises(ValueError, match="images"):
        trivial_augment(_images().float(), _gen())
    with pytest.raises(ValueError, match="op_name"):
        _apply_op(_images(), "Invert", 0.0)


# ---------------------------------------------------------------------------------- pad_crop_flip
@pytest.mark.parametrize(("padding", "flip"), [(4, True), (4, False), (0, True), (2, True), (0, False)])
def test_pad_crop_flip_matches_the_former_train_augment(padding: int, flip: bool) -> None:
    x = _images(16, 12, 10)
    for seed in range(3):
        expected = _train_augment_at_head(x, _gen(seed), padding=padding, flip=flip)
        assert torch.equal(pad_crop_flip(x, _gen(seed), padding=padding, flip=flip), expected)


def test_pad_crop_flip_matches_evaluators_train_augment() -> None:
    import evaluators.train as train_mod

    if not hasattr(train_mod, "augment"):
        pytest.skip("evaluators.train.augment is gone (now pad_crop_flip); the frozen copy test covers it")
    x = _images(16)
    for padding, flip in [(4, True), (3, False), (0, True)]:
        expected = train_mod.augment(x, _gen(5), padding=padding, flip=flip)
        assert torch.equal(pad_crop_flip(x, _gen(5), padding=padding, flip=flip), expected)


def test_flip_only_gives_the_image_or_its_mirror() -> None:
    x = _images(32)
    out = pad_crop_flip(x, _gen(), padding=0, flip=True)
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(2)).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert bool((same & ~mirrored).any()) and bool((mirrored & ~same).any())


def test_crop_only_is_a_window_of_the_padded_image() -> None:
    x = _images(8, 8, 8)
    out = pad_crop_flip(x, _gen(), padding=2, flip=False)
    padded = F.pad(x, (0, 0, 2, 2, 2, 2))
    for image, padded_image in zip(out, padded, strict=True):
        assert any(torch.equal(image, padded_image[oy:oy + 8, ox:ox + 8]) for oy in range(5) for ox in range(5))


# ----------------------------------------------------------------------------------------- cutout
@pytest.mark.parametrize("size", [1, 4, 7])
def test_cutout_zeroes_exactly_one_clipped_square(size: int) -> None:
    x = _normalised(32, h=12, w=10)
    out = cutout(x, _gen(), size=size)
    zero = out == 0
    assert torch.equal(out[~zero], x[~zero])  # the rest is left alone
    assert bool((zero == zero[:, :1]).all())  # the same square in every channel
    for mask in zero[:, 0]:
        rows = mask.any(1).nonzero().squeeze(1)
        cols = mask.any(0).nonzero().squeeze(1)
        assert rows.numel() and cols.numel()
        assert torch.equal(mask, mask.any(1)[:, None] & mask.any(0)[None, :])  # a rectangle
        for idx, extent in ((rows, 12), (cols, 10)):
            lo, hi = int(idx[0]), int(idx[-1]) + 1
            assert hi - lo == idx.numel()  # contiguous
            assert hi - lo == size or (hi - lo < size and (lo == 0 or hi == extent))  # clipped at a border


def test_cutout_large_square_covers_everything_and_zero_size_is_identity() -> None:
    x = _normalised()
    assert bool((cutout(x, _gen(), size=32) == 0).all())
    assert torch.equal(cutout(x, _gen(), size=0), x)


def test_cutout_keeps_channels_last() -> None:
    x = _normalised().contiguous(memory_format=torch.channels_last)
    out = cutout(x, _gen(), size=5)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, cutout(x.contiguous(), _gen(), size=5))


# -------------------------------------------------------------------- TrivialAugment, per operation
def test_operations_without_effect_at_their_neutral_magnitude() -> None:
    x = _images()
    for op, m in [("Identity", 0.7), ("ShearX", 0.0), ("ShearY", 0.0), ("TranslateX", 0.0), ("TranslateX", 0.9),
                  ("TranslateY", -0.9), ("Rotate", 0.0), ("Rotate", 360.0), ("Brightness", 0.0), ("Color", 0.0),
                  ("Contrast", 0.0), ("Sharpness", 0.0), ("Posterize", 8.0), ("Solarize", 256.0)]:
        assert torch.equal(_apply_op(x, op, m), x), (op, m)


def test_rotate_is_counter_clockwise_about_the_centre() -> None:
    x = _images(4, 9, 9)
    assert torch.equal(_apply_op(x, "Rotate", 90.0), torch.rot90(x, 1, (1, 2)))
    assert torch.equal(_apply_op(x, "Rotate", -90.0), torch.rot90(x, -1, (1, 2)))
    assert torch.equal(_apply_op(x[:, :8, :8], "Rotate", 180.0), x[:, :8, :8].flip(1, 2))
    rotated = _apply_op(x, "Rotate", 45.0)
    assert torch.equal(rotated[:, 4, 4], x[:, 4, 4])  # the centre stays
    assert bool((rotated[:, 0, 0] == 0).all())  # corners come from outside: fill 0


def test_translate_moves_whole_pixels_with_zero_fill() -> None:
    x = _images()
    right = _apply_op(x, "TranslateX", 3.7)  # truncated to 3 pixels
    assert torch.equal(right[:, :, 3:], x[:, :, :-3]) and bool((right[:, :, :3] == 0).all())
    up = _apply_op(x, "TranslateY", -2.0)
    assert torch.equal(up[:, :-2], x[:, 2:]) and bool((up[:, -2:] == 0).all())


@pytest.mark.parametrize("m", [0.3, -0.5])
def test_shear_x_shifts_each_row_by_its_distance_from_the_top(m: float) -> None:
    x = _images(4, 12, 16)
    out = _apply_op(x, "ShearX", m)
    for j in range(12):
        shift = round(m * (j + 0.5))  # output (i, j) copies input (i + m * y, j), y from the top edge
        expected = torch.zeros_like(x[:, j])
        if shift >= 0:
            expected[:, :16 - shift] = x[:, j, shift:]
        else:
            expected[:, -shift:] = x[:, j, :16 + shift]
        assert torch.equal(out[:, j], expected), j
    sheared_y = _apply_op(x.transpose(1, 2), "ShearY", m)
    assert torch.equal(sheared_y, out.transpose(1, 2))


def test_brightness_scales() -> None:
    x = _images()
    assert torch.equal(_apply_op(x, "Brightness", -0.5), (x.double() * 0.5).round().to(torch.uint8))
    assert bool((_apply_op(x, "Brightness", -1.0) == 0).all())


def test_color_leaves_gray_pixels_and_can_desaturate() -> None:
    gray = _images(c=1).expand(-1, -1, -1, 3).contiguous()
    for m in (-0.99, 0.5, 0.99):
        assert torch.equal(_apply_op(gray, "Color", m), gray)
    desaturated = _apply_op(_images(), "Color", -1.0)
    assert bool((desaturated == desaturated[..., :1]).all())
    single = _images(c=1)
    assert torch.equal(_apply_op(single, "Color", 0.9), single)


def test_contrast_zero_factor_gives_the_mean_luma() -> None:
    out = _apply_op(_images(), "Contrast", -1.0)
    assert bool((out == out[:, :1, :1]).all())
    constant = torch.full((2, 8, 8, 3), 77, dtype=torch.uint8)
    assert torch.equal(_apply_op(constant, "Contrast", 0.9), constant)


def test_sharpness_keeps_the_border_and_constant_images() -> None:
    x = _images()
    out = _apply_op(x, "Sharpness", 0.9)
    border = torch.ones(16, 16, dtype=torch.bool)
    border[1:-1, 1:-1] = False
    assert torch.equal(out[:, border], x[:, border])
    assert not torch.equal(out, x)
    constant = torch.full((2, 8, 8, 3), 200, dtype=torch.uint8)
    assert torch.equal(_apply_op(constant, "Sharpness", -0.9), constant)
    assert torch.equal(_apply_op(x[:, :2], "Sharpness", 0.9), x[:, :2])  # all border


def test_posterize_and_solarize() -> None:
    x = _images()
    assert bool((_apply_op(x, "Posterize", 4.0) & 0x0F == 0).all())
    assert torch.equal(_apply_op(x, "Posterize", 2.0), x & 0xC0)
    assert torch.equal(_apply_op(x, "Solarize", 0.0), 255 - x)  # threshold 0: everything inverted
    at_255 = _apply_op(x, "Solarize", 255.0)  # pixels >= threshold are inverted: only 255 -> 0
    assert torch.equal(at_255, torch.where(x == 255, 0, x))


def test_autocontrast_stretches_each_channel() -> None:
    x = (_images() // 4 + 60).contiguous()
    x[..., 2] = 9  # a constant channel is left alone
    out = _apply_op(x, "AutoContrast", 0.0)
    assert bool((out[..., :2].amin(dim=(1, 2)) == 0).all()) and bool((out[..., :2].amax(dim=(1, 2)) == 255).all())
    assert bool((out[..., 2] == 9).all())


def test_equalize_constant_image_is_unchanged() -> None:
    constant = torch.full((2, 8, 8, 3), 123, dtype=torch.uint8)
    assert torch.equal(_apply_op(constant, "Equalize", 0.0), constant)


def test_colour_operations_agree_with_pil() -> None:
    pytest.importorskip("PIL")
    from PIL import Image, ImageEnhance, ImageOps

    x = _images(4)
    x[1] = x[1] // 8 + 100  # low contrast, to exercise the stretch
    enhancers = {"Brightness": ImageEnhance.Brightness, "Color": ImageEnhance.Color,
                 "Contrast": ImageEnhance.Contrast, "Sharpness": ImageEnhance.Sharpness}

    def pil_op(im: Image.Image, op: str, m: float) -> Image.Image:
        if op in enhancers:
            return enhancers[op](im).enhance(1.0 + m)
        if op == "Posterize":
            return ImageOps.posterize(im, int(m))
        if op == "Solarize":
            return ImageOps.solarize(im, m)
        return ImageOps.autocontrast(im) if op == "AutoContrast" else ImageOps.equalize(im)

    def reference(op: str, m: float) -> torch.Tensor:
        images = [np.array(pil_op(Image.fromarray(image.numpy()), op, m)) for image in x]
        return torch.from_numpy(np.stack(images)).int()

    exact = [("Equalize", 0.0), ("Posterize", 3.0), ("Solarize", 100.5)]
    rounded = [("Brightness", 0.6), ("Color", -0.99), ("Color", 0.7), ("Contrast", -0.6), ("Contrast", 0.9),
               ("Sharpness", -0.8), ("Sharpness", 0.99), ("AutoContrast", 0.0)]
    for op, m in exact:
        assert torch.equal(_apply_op(x, op, m).int(), reference(op, m)), op
    for op, m in rounded:  # PIL truncates its float32 blend; we round the exact value
        assert int((_apply_op(x, op, m).int() - reference(op, m)).abs().max()) <= 1, (op, m)


# ---------------------------------------------------------------------------- TrivialAugment, batch
def test_trivial_augment_applies_each_image_its_drawn_operation() -> None:
    x = _images(64)
    ops, magnitudes = _sample_wide(64, 31, _gen(7))
    assert len(set(ops.tolist())) >= 12
    out = trivial_augment(x, _gen(7))
    changed = 0
    for i in range(64):
        expected = _apply_op(x[i:i + 1], _OPS[int(ops[i])], float(magnitudes[i]))
        assert torch.equal(out[i:i + 1], expected), _OPS[int(ops[i])]
        changed += not torch.equal(out[i], x[i])
    assert changed >= 40


def test_wide_magnitudes_follow_torchvision_ranges() -> None:
    draws = 4000
    ops, magnitudes = _sample_wide(draws, 31, _gen())
    ranges = {"ShearX": 0.99, "Rotate": 135.0, "TranslateY": 32.0, "Contrast": 0.99}
    for name, top in ranges.items():
        values = magnitudes[ops == _OPS.index(name)]
        assert float(values.abs().max()) == pytest.approx(top) and float(values.min()) < 0 < float(values.max())
    posterize = magnitudes[ops == _OPS.index("Posterize")]
    assert set(posterize.tolist()) == {2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0}
    solarize = magnitudes[ops == _OPS.index("Solarize")]
    assert float(solarize.min()) == 0.0 and float(solarize.max()) == 255.0
    assert bool((magnitudes[ops == _OPS.index("Equalize")] == 0).all())


def test_trivial_augment_single_channel_and_non_square() -> None:
    x = _images(32, 12, 20, 1)
    out = trivial_augment(x, _gen(), bins=2)
    assert out.shape == x.shape and out.dtype == torch.uint8


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_result() -> None:
    x = _images(64, 16, 16)
    for fn in (lambda t, g: pad_crop_flip(t, g, padding=4, flip=True), lambda t, g: trivial_augment(t, g)):
        for seed in range(4):
            assert torch.equal(fn(x.cuda(), _gen(seed)).cpu(), fn(x, _gen(seed)))
    z = _normalised(16).contiguous(memory_format=torch.channels_last)
    assert torch.equal(cutout(z.cuda(), _gen(), size=6).cpu(), cutout(z, _gen(), size=6))
