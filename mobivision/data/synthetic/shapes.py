"""Synthetic shapes classification: one shape per image, written as an ImageFolder tree.

``write_shapes_classification`` draws one shape per image (the class) at a random size, position and colour over
a noisy gradient background, and writes ``root/{train,val,test}/<shape>/<shape>_<n>.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mobivision.data.synthetic.common import (
    SHAPES,
    background,
    contrasting_color,
    draw_shape,
    split_counts,
    write_class_folders,
    write_dataset,
)
from mobivision.errors import DataError


def _shape_image(rng: np.random.Generator, shape: str, size: int) -> Image.Image:
    """One ``shape`` of random radius (0.2..0.4 of the side), place and contrasting colour over ``background``."""
    image, base = background(rng, size)
    radius = rng.uniform(0.2, 0.4) * size
    center = tuple(rng.uniform(radius, size - radius, size=2))
    color = contrasting_color(rng, base)
    draw_shape(ImageDraw.Draw(image), shape, center=center, radius=radius, color=color)
    return image


def write_shapes_classification(
    root: str | Path, *, images_per_class: int = 120, size: int = 64, seed: int = 0, classes: tuple[str, ...] = SHAPES
) -> Path:
    """Write ``root/{train,val,test}/<shape>/<n>.png`` once; later calls reuse the complete tree.

    All images come from one generator seeded with ``seed``, class by class, then split by split (70/15/15).
    """
    if images_per_class < 3:
        raise DataError(f"images_per_class must be >= 3 (one per split), got {images_per_class}")
    options = f"seed={seed} images_per_class={images_per_class} size={size} classes={','.join(classes)}\n"

    def write(folder: Path) -> None:
        rng = np.random.default_rng(seed)
        counts = split_counts(images_per_class)
        write_class_folders(folder, classes, counts, lambda k, _split, _i: _shape_image(rng, classes[k], size))

    return write_dataset(root, options, write)
