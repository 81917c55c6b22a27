"""What the synthetic-data writers share: the write-once skeleton, split sizes, seeds and drawing helpers.

Every writer checks its options, describes them in one line and hands the writing to ``write_dataset``: the
``.complete`` marker holding that line is written last, so an interrupted write is redone, a complete one with
the same options is reused and one written with other options is refused. Images are drawn from generators
seeded by ``image_rng`` and saved under ``image_file_name``; backgrounds (``background``, ``textured_background``),
colours and ``SHAPES`` come from the helpers below, so every writer draws them the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mobivision.errors import DataError

MARKER = ".complete"
"""The marker a writer leaves last in its root, holding the options the data was written with."""

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")
"""The shapes ``draw_shape`` draws."""

SPLITS = {"train": 0.7, "val": 0.15, "test": 0.15}
"""Fractions of each class's images in the splits of an ImageFolder tree (``split_counts``)."""

PARTITION = {"train": 0.8, "val": 0.1, "test": 0.1}
"""Fractions of a numbered image list in each split, as contiguous blocks (``partition_counts``)."""

JPEG_QUALITY = 90
"""Quality of the JPEG photos of the faces and geo sets."""


def write_dataset(root: str | Path, options: str, write: Callable[[Path], None]) -> Path:
    """``write(root)`` then the marker holding ``options``, unless a complete dataset with ``options`` is there.

    Args:
        root: Output folder.
        options: One line (ending in a newline) describing everything the data depends on.
        write: Writes the dataset into ``root``.

    Returns:
        ``root`` as a ``Path``.

    Raises:
        DataError: ``root`` holds a complete dataset written with other options.
    """
    root = Path(root)
    marker = root / MARKER
    if marker.exists():
        if marker.read_text() != options:
            raise DataError(
                f"{root} already holds synthetic data written with other options ({marker.read_text().strip()}); "
                f"requested {options.strip()}. Delete the folder or choose another data.root"
            )
        return root
    write(root)
    marker.write_text(options)
    return root


def split_counts(images_per_class: int) -> dict[str, int]:
    """Images per class in each split (``SPLITS`` fractions, at least one in val and test)."""
    val = test = max(1, round(images_per_class * SPLITS["val"]))
    return {"train": images_per_class - val - test, "val": val, "test": test}


def partition_counts(num_images: int) -> dict[str, int]:
    """Images in each split (``PARTITION`` fractions, at least one each): the first are train, then val, test."""
    val = max(1, round(num_images * PARTITION["val"]))
    test = max(1, round(num_images * PARTITION["test"]))
    return {"train": num_images - val - test, "val": val, "test": test}


def image_rng(seed: int, *index: int) -> np.random.Generator:
    """The generator of one image: it depends only on ``seed`` and the image's ``index`` (e.g. split, number)."""
    return np.random.default_rng([seed, *index])


def image_file_name(index: int) -> str:
    """File name of the ``index``-th image (0-based) of a numbered list: ``000001.jpg`` for 0."""
    return f"{index + 1:06d}.jpg"


def write_class_folders(
    root: Path, names: Sequence[str], counts: dict[str, int], draw: Callable[[int, int, int], Image.Image]
) -> None:
    """Write ``root/<split>/<name>/<name>_<i:04d>.png``, class by class, then split by split, then by ``i``.

    Args:
        root: Output folder.
        names: Class folder names.
        counts: Images per class in each split (``split_counts``).
        draw: ``draw(class index, split index, i)`` gives image ``i`` of that class and split.
    """
    for class_index, name in enumerate(names):
        for split_index, (split, count) in enumerate(counts.items()):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                draw(class_index, split_index, i).save(folder / f"{name}_{i:04d}.png")


def to_image(pixels: np.ndarray) -> Image.Image:
    """Float (or integer) ``H x W x 3`` pixels as an RGB image, clipped to 0..255."""
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def rgb(color) -> tuple[int, int, int]:
    """A colour as an RGB tuple of ints, each clipped to 0..255 and truncated."""
    return tuple(int(c) for c in np.clip(color, 0, 255))


def mean_color(pixels: np.ndarray) -> np.ndarray:
    """The mean RGB of ``pixels`` (any shape ending in 3), each clipped to 0..255 first."""
    return np.clip(pixels, 0, 255).reshape(-1, 3).mean(axis=0)


def desaturate(pixels: np.ndarray, keep: float) -> np.ndarray:
    """``pixels`` moved towards their grey: ``keep`` of each channel's difference from the mean stays."""
    grey = pixels.mean(axis=-1, keepdims=True)
    return grey + keep * (pixels - grey)


def background(rng: np.random.Generator, size: int) -> tuple[Image.Image, np.ndarray]:
    """Smooth colour gradient plus pixel noise (structure to ignore), and its mean colour."""
    y, x = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(40, 200, size=3)
    slope = rng.uniform(-40, 40, size=(2, 3))
    image = base + x[..., None] * slope[0] + y[..., None] * slope[1] + rng.normal(0, 8, (size, size, 3))
    return to_image(image), base


def texture(rng: np.random.Generator, pixels: np.ndarray) -> None:
    """Add a few faint stripes and blobs (brightness offsets up to 20 levels) in place, keeping the noise."""
    size = pixels.shape[0]
    for _ in range(int(rng.integers(2, 6))):
        mask = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(mask)
        if rng.random() < 0.5:
            x0, y0, x1, y1 = rng.uniform(-0.2, 1.2, size=4) * size
            draw.line((x0, y0, x1, y1), fill=255, width=int(rng.integers(2, max(3, size // 12))))
        else:
            cx, cy = rng.uniform(0, size, size=2)
            rx, ry = rng.uniform(0.05, 0.25, size=2) * size
            draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
        offset = rng.uniform(8, 20) * rng.choice([-1, 1]) + rng.uniform(-4, 4, size=3)
        pixels[np.asarray(mask) > 0] += offset


def textured_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """``background``'s gradient and noise with ``texture``'s stripes and blobs, as float pixels."""
    image, _ = background(rng, size)
    pixels = np.asarray(image).astype(np.float64)
    texture(rng, pixels)
    return pixels


def contrasting_color(rng: np.random.Generator, base: np.ndarray) -> tuple[int, int, int]:
    """A random colour whose brightness differs from ``base``'s by at least 70 levels."""
    shift = rng.uniform(70, 140) * (1 if base.mean() < 128 else -1)
    return rgb(base + shift + rng.uniform(-40, 40, size=3))


def _polygon(center: tuple[float, float], radius: float, corners: int, rotation: float) -> list[tuple[float, float]]:
    """The corners of a regular polygon inscribed in the circle of ``radius`` round ``center``."""
    cx, cy = center
    return [
        (
            cx + radius * math.cos(rotation + 2 * math.pi * k / corners),
            cy + radius * math.sin(rotation + 2 * math.pi * k / corners),
        )
        for k in range(corners)
    ]


def draw_shape(draw: ImageDraw.ImageDraw, shape: str, *, center: tuple[float, float], radius: float, color) -> None:
    """Draw one of ``SHAPES`` filled with ``color``."""
    cx, cy = center
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if shape == "circle":
        draw.ellipse(box, fill=color)
    elif shape == "square":
        draw.rectangle(box, fill=color)
    elif shape == "triangle":
        draw.polygon(_polygon(center, radius, 3, -math.pi / 2), fill=color)
    elif shape == "diamond":
        draw.polygon(_polygon(center, radius, 4, 0.0), fill=color)
    elif shape == "ring":
        draw.ellipse(box, outline=color, width=max(2, int(radius / 3)))
    elif shape == "cross":
        bar = radius / 3
        draw.rectangle((cx - radius, cy - bar, cx + radius, cy + bar), fill=color)
        draw.rectangle((cx - bar, cy - radius, cx + bar, cy + radius), fill=color)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
