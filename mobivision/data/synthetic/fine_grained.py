"""Synthetic fine-grained classification: one "bird" in every image, classes told apart by small details.

``write_fine_grained_shapes`` is the fine-grained counterpart of the shapes set (as CUB-200-2011 birds or Stanford
Dogs): every image shows the same kind of bird, and only a spot's place and colour and a bar across the body tell
the classes apart. It writes an ImageFolder tree ``root/{train,val,test}/<species>/<species>_<n>.png``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mobivision.data.synthetic.common import (
    contrasting_color,
    desaturate,
    image_rng,
    mean_color,
    rgb,
    split_counts,
    textured_background,
    to_image,
    write_class_folders,
    write_dataset,
)
from mobivision.errors import DataError

SPOT_COLORS = {"red": (230, 40, 40), "blue": (40, 90, 235), "yellow": (235, 210, 30)}
_SPOT_OUTLINE = (20, 20, 20)


@dataclass(frozen=True)
class BirdSpecies:
    """The details of one synthetic fine-grained class; everything else is drawn the same way for all.

    Attributes:
        spot: ``front`` (head side) or ``back`` (tail side): where along the body the round spot sits.
        color: The spot's colour, a key of ``SPOT_COLORS``.
        stripe: Whether a bar of a darker (on a dark body: lighter) shade crosses the middle of the body.
    """

    spot: str
    color: str
    stripe: bool

    @property
    def name(self) -> str:
        """Folder name, e.g. ``spot_front_red`` or ``spot_back_blue_stripe``."""
        return f"spot_{self.spot}_{self.color}" + ("_stripe" if self.stripe else "")


BIRD_SPECIES = tuple(
    BirdSpecies(spot, color, stripe) for stripe in (False, True) for color in SPOT_COLORS for spot in ("front", "back")
)


def _rotated(points: list[tuple[float, float]], center: tuple[float, float], angle: float) -> list[tuple[float, float]]:
    """Body coordinates (``u`` along the body towards the head, ``v`` across it) as image pixels."""
    cos, sin = math.cos(angle), math.sin(angle)
    return [(center[0] + u * cos - v * sin, center[1] + u * sin + v * cos) for u, v in points]


def _ellipse(u: float, v: float, a: float, b: float, corners: int = 48) -> list[tuple[float, float]]:
    """A polygon of ``corners`` points on the ellipse of half-axes ``a``, ``b`` round ``(u, v)``."""
    return [
        (u + a * math.cos(2 * math.pi * k / corners), v + b * math.sin(2 * math.pi * k / corners))
        for k in range(corners)
    ]


def draw_bird(rng: np.random.Generator, species: BirdSpecies, *, size: int = 64) -> Image.Image:
    """Draw one synthetic "bird" of ``species``: the same random scene for every species, plus its details.

    The scene is ``textured_background``'s gradient, noise, stripes and blobs, desaturated, and a bird facing
    right (rotated by up to 25 degrees) in one flat, half-saturated colour that contrasts the background: an
    elliptical body (half-length 0.20-0.27 of the side, centred in the middle fifth of the image), a round head at
    the front and a triangular tail at the back. The species only adds the details: a round spot of radius
    ``max(3, 0.06 * size)`` pixels (7.7 px across at 64 px) in a saturated ``SPOT_COLORS`` colour with a 1 px dark
    rim, half-way between the body's centre and its front or back end, and optionally a bar across the middle of
    the body (darker than the body, or lighter on a dark one). All random draws come before the details, so for
    one generator state the images of two species differ only in those pixels. The spot stays within 0.3 of the
    side from the image centre, so a random-resized crop of scale 0.6-1 mostly keeps it.

    Args:
        rng: The generator (the writer seeds one per image).
        species: The class's details.
        size: Image side in pixels.

    Returns:
        The RGB image.
    """
    pixels = desaturate(textured_background(rng, size), 0.35)
    a = rng.uniform(0.2, 0.27) * size
    b = a * rng.uniform(0.5, 0.62)
    center = tuple(rng.uniform(0.4, 0.6, size=2) * size)
    angle = math.radians(rng.uniform(-25, 25))
    color = np.asarray(contrasting_color(rng, mean_color(pixels)), float)
    color = color.mean() + 0.5 * (color - color.mean())
    body = rgb(color)

    image = to_image(pixels)
    draw = ImageDraw.Draw(image)
    draw.polygon(_rotated(_ellipse(0, 0, a, b), center, angle), fill=body)
    draw.polygon(_rotated(_ellipse(1.05 * a, -0.35 * b, 0.5 * b, 0.5 * b, 24), center, angle), fill=body)
    tail = [(-0.8 * a, 0.0), (-1.45 * a, -0.45 * b), (-1.45 * a, 0.35 * b)]
    draw.polygon(_rotated(tail, center, angle), fill=body)
    if species.stripe:
        half = max(1.5, 0.08 * a)
        bar = [(-half, -0.92 * b), (half, -0.92 * b), (half, 0.92 * b), (-half, 0.92 * b)]
        shade = color * 0.35 if color.mean() > 100 else color + 0.6 * (255 - color)
        draw.polygon(_rotated(bar, center, angle), fill=rgb(shade))
    radius = max(3.0, 0.06 * size)
    ((x, y),) = _rotated([(0.5 * a if species.spot == "front" else -0.5 * a, 0.0)], center, angle)
    draw.ellipse((x - radius - 1, y - radius - 1, x + radius + 1, y + radius + 1), fill=_SPOT_OUTLINE)
    draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=SPOT_COLORS[species.color])
    return image


def write_fine_grained_shapes(
    root: str | Path, *, images_per_class: int = 60, size: int = 64, seed: int = 0, num_classes: int = 6
) -> Path:
    """Write a fine-grained ImageFolder tree ``root/{train,val,test}/<species>/<n>.png`` once; later calls reuse it.

    Every image shows the same kind of bird (``draw_bird``); the class is given only by small details: the
    spot's place (front or back) and colour, then, beyond 6 classes, the bar across the body. The classes are
    ``BIRD_SPECIES[:num_classes]`` (the first six: ``spot_{front,back}_{red,blue,yellow}``); ImageFolder readers
    index them in sorted folder order. Each class is split 70/15/15 like ``write_shapes_classification``.
    Image ``i`` of a split is drawn from ``image_rng(seed, split index, i)`` for every class, so the classes
    share their scenes (background, bird size, place, pose and colour) and differ only in the details: no global
    statistic such as the mean colour tells them apart.

    Args:
        root: Output folder.
        images_per_class: Images per class over all splits (>= 3).
        size: Image side in pixels.
        seed: Seed of every image's generator.
        num_classes: Number of classes, 2..12.

    Returns:
        ``root``.

    Raises:
        DataError: An option is out of range, or ``root`` holds a complete tree written with other options.
    """
    if images_per_class < 3 or not 2 <= num_classes <= len(BIRD_SPECIES):
        raise DataError(
            f"need images_per_class >= 3 (one per split) and 2 <= num_classes <= {len(BIRD_SPECIES)}, got "
            f"images_per_class={images_per_class} num_classes={num_classes}"
        )
    options = f"fine_grained seed={seed} images_per_class={images_per_class} size={size} num_classes={num_classes}\n"
    species = BIRD_SPECIES[:num_classes]

    def draw(class_index: int, split_index: int, i: int) -> Image.Image:
        return draw_bird(image_rng(seed, split_index, i), species[class_index], size=size)

    def write(folder: Path) -> None:
        write_class_folders(folder, [s.name for s in species], split_counts(images_per_class), draw)

    return write_dataset(root, options, write)
