"""Writers of small synthetic datasets in real on-disk formats, for the demo and the tests.

``write_shapes_classification`` draws one shape per image (the class) at a random size, position and
colour over a noisy, textured background, and writes an ImageFolder tree. A fixed seed makes it
reproducible; a ``.complete`` marker written last means an interrupted write is redone, not reused.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mobivision.errors import DataError

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")
SPLITS = {"train": 0.7, "val": 0.15, "test": 0.15}
_MARKER = ".complete"


def _background(rng: np.random.Generator, size: int) -> tuple[Image.Image, np.ndarray]:
    """Smooth colour gradient plus pixel noise (structure to ignore), and its mean colour."""
    y, x = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(40, 200, size=3)
    slope = rng.uniform(-40, 40, size=(2, 3))
    image = base + x[..., None] * slope[0] + y[..., None] * slope[1] + rng.normal(0, 8, (size, size, 3))
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)), base


def _contrasting_color(rng: np.random.Generator, background: np.ndarray) -> tuple[int, int, int]:
    """A random colour whose brightness differs from the background's by at least 70 levels."""
    shift = rng.uniform(70, 140) * (1 if background.mean() < 128 else -1)
    color = background + shift + rng.uniform(-40, 40, size=3)
    return tuple(int(c) for c in np.clip(color, 0, 255))


def _polygon(center: tuple[float, float], radius: float, corners: int, rotation: float) -> list[tuple[float, float]]:
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


def _shape_image(rng: np.random.Generator, shape: str, size: int) -> Image.Image:
    image, background = _background(rng, size)
    radius = rng.uniform(0.2, 0.4) * size
    center = tuple(rng.uniform(radius, size - radius, size=2))
    color = _contrasting_color(rng, background)
    draw_shape(ImageDraw.Draw(image), shape, center=center, radius=radius, color=color)
    return image


def write_shapes_classification(
    root: str | Path, *, images_per_class: int = 120, size: int = 64, seed: int = 0, classes: tuple[str, ...] = SHAPES
) -> Path:
    """Write ``root/{train,val,test}/<shape>/<n>.png`` once; later calls reuse the complete tree."""
    root = Path(root)
    if images_per_class < 3:
        raise DataError(f"images_per_class must be >= 3 (one per split), got {images_per_class}")
    options = f"seed={seed} images_per_class={images_per_class} size={size} classes={','.join(classes)}\n"
    marker = root / _MARKER
    if marker.exists():
        if marker.read_text() != options:
            raise DataError(
                f"{root} already holds synthetic data written with other options ({marker.read_text().strip()}); "
                f"requested {options.strip()}. Delete the folder or choose another data.root"
            )
        return root
    rng = np.random.default_rng(seed)
    val = test = max(1, round(images_per_class * SPLITS["val"]))
    counts = {"train": images_per_class - val - test, "val": val, "test": test}
    for shape in classes:
        for split, count in counts.items():
            folder = root / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                _shape_image(rng, shape, size).save(folder / f"{shape}_{i:04d}.png")
    marker.write_text(options)
    return root
