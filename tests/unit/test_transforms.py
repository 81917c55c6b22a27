"""Unit tests of the classification presets in ``mobivision.data.transforms``.

The paper (Sec. 4) trains with Inception-style random-size crops and flips; evaluation resizes the short
side to ``resolution / crop_pct`` and takes the central ``resolution`` crop (crop_pct 0.875: 224 from 256).
Images are tiny and built with known patterns so every pixel of the output can be predicted.
"""

from __future__ import annotations

import itertools

import albumentations as A
import numpy as np
import pytest
import torch

from mobivision.data.transforms import classification_eval_transform, classification_train_transform

HALF = (0.5, 0.5, 0.5)


def to_uint8_levels(tensor: torch.Tensor) -> np.ndarray:
    """Undo mean = std = 0.5 normalisation: a CHW tensor back to HWC levels 0..255 (float)."""
    return ((tensor.permute(1, 2, 0).numpy() * 0.5 + 0.5) * 255).astype(np.float64)


@pytest.fixture
def noise_image() -> np.ndarray:
    """A 32 x 48 image of uniform noise that uses the full 0..255 range."""
    image = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    image[0, 0] = 0
    image[0, 1] = 255
    return image


@pytest.fixture
def gradient_image() -> np.ndarray:
    """40 x 80 image: red = 2 * column, green = 3 * row, blue = 50 (linear, so bilinear resizing is exact)."""
    rows, cols = np.mgrid[0:40, 0:80]
    return np.stack([2 * cols, 3 * rows, np.full_like(rows, 50)], axis=-1).astype(np.uint8)


def test_train_transform_shape_and_range(noise_image: np.ndarray) -> None:
    transform = classification_train_transform(resolution=16, mean=HALF, std=HALF)
    outputs = []
    for seed in range(5):  # five random crops, reproducible
        transform.set_random_seed(seed)
        out = transform(image=noise_image)["image"]
        assert isinstance(out, torch.Tensor)
        assert out.dtype == torch.float32
        assert out.shape == (3, 16, 16)
        assert out.min() >= -1.0
        assert out.max() <= 1.0
        # Normalised to [-1, 1], not left in [0, 1] or 0..255: noise keeps values near both ends.
        assert out.min() < -0.6
        assert out.max() > 0.6
        outputs.append(out)
    assert not any(torch.equal(a, b) for a, b in itertools.combinations(outputs, 2))  # the crops are random


def test_train_transform_full_scale_flip() -> None:
    # With scale (1, 1) on a square image the crop is the whole image; hflip=1 mirrors it.
    image = np.random.default_rng(1).integers(0, 256, (12, 12, 3), dtype=np.uint8)
    flipped = classification_train_transform(resolution=12, mean=HALF, std=HALF, scale=(1.0, 1.0), hflip=1.0)
    kept = classification_train_transform(resolution=12, mean=HALF, std=HALF, scale=(1.0, 1.0), hflip=0.0)
    np.testing.assert_allclose(to_uint8_levels(flipped(image=image)["image"]), image[:, ::-1], atol=1e-3)
    np.testing.assert_allclose(to_uint8_levels(kept(image=image)["image"]), image, atol=1e-3)


def test_train_transform_color_jitter_optional() -> None:
    def jitters(transform: A.Compose) -> list[A.ColorJitter]:
        return [t for t in transform.transforms if isinstance(t, A.ColorJitter)]

    assert not jitters(classification_train_transform(resolution=8, mean=HALF, std=HALF))
    assert len(jitters(classification_train_transform(resolution=8, mean=HALF, std=HALF, color_jitter=0.4))) == 1


def test_train_transform_uses_mean_and_std() -> None:
    image = np.full((8, 8, 3), 255, dtype=np.uint8)
    transform = classification_train_transform(resolution=8, mean=(0.0, 0.5, 1.0), std=(1.0, 0.5, 0.25))
    out = transform(image=image)["image"]
    torch.testing.assert_close(out[:, 0, 0], torch.tensor([1.0, 1.0, 0.0]))


def test_eval_transform_resizes_short_side_then_centre_crops(gradient_image: np.ndarray) -> None:
    # Short side 40 -> round(16 / 0.5) = 32 (scale 0.8, image 32 x 64), then the central 16 x 16:
    # output pixel (i, j) samples the resized image at (8 + i, 24 + j), i.e. the original at
    # ((8 + i + 0.5) / 0.8 - 0.5, (24 + j + 0.5) / 0.8 - 0.5) (half-pixel centres).
    transform = classification_eval_transform(resolution=16, mean=HALF, std=HALF, crop_pct=0.5)
    out = transform(image=gradient_image)["image"]
    assert out.shape == (3, 16, 16)
    levels = to_uint8_levels(out)
    index = np.arange(16)
    source_col = (24 + index + 0.5) / 0.8 - 0.5
    source_row = (8 + index + 0.5) / 0.8 - 0.5
    np.testing.assert_allclose(levels[..., 0], np.broadcast_to(2 * source_col, (16, 16)), atol=1.5)
    np.testing.assert_allclose(levels[..., 1], np.broadcast_to(3 * source_row[:, None], (16, 16)), atol=1.5)
    np.testing.assert_allclose(levels[..., 2], 50, atol=1e-3)


def test_eval_transform_default_crop_pct_is_exact_centre_crop() -> None:
    # resolution 14 / 0.875 = 16: a 16 x 24 image is not resized, and the crop drops one row / 5 columns per side.
    image = np.random.default_rng(2).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    out = classification_eval_transform(resolution=14, mean=HALF, std=HALF)(image=image)["image"]
    np.testing.assert_allclose(to_uint8_levels(out), image[1:15, 5:19], atol=1e-3)


def test_eval_transform_keeps_the_centre_at_the_centre() -> None:
    # A red 8 x 8 block at the centre of a 40 x 80 grey image lands, symmetric, in the output's centre.
    image = np.full((40, 80, 3), 128, dtype=np.uint8)
    image[16:24, 36:44] = (255, 0, 0)
    transform = classification_eval_transform(resolution=16, mean=HALF, std=HALF, crop_pct=0.5)
    levels = to_uint8_levels(transform(image=image)["image"])
    red = (levels[..., 0] > 200) & (levels[..., 1] < 60)
    assert red[7:9, 7:9].all()  # the four central pixels
    assert not red[:4].any() and not red[-4:].any() and not red[:, :4].any() and not red[:, -4:].any()
    np.testing.assert_array_equal(red, red[::-1, ::-1])
    np.testing.assert_allclose(levels[0, 0], (128, 128, 128), atol=1e-3)


def test_eval_transform_is_deterministic(noise_image: np.ndarray) -> None:
    transform = classification_eval_transform(resolution=16, mean=HALF, std=HALF)
    first = transform(image=noise_image)["image"]
    for _ in range(3):
        torch.testing.assert_close(transform(image=noise_image)["image"], first, rtol=0, atol=0)
    assert first.shape == (3, 16, 16)
    assert first.min() >= -1.0
    assert first.max() <= 1.0
