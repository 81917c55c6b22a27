"""A synthetic geo-localization dataset written in the geo CSV format, for the demo and the tests.

Each photo is taken in one of ``GEO_REGIONS``, sixteen real-world areas with a few cities each (Western Europe,
US East Coast, Japan, Fiji and Tonga...), drawn with unequal weights as photo collections are (Europe and North
America heavy). The place is scattered round a city of the region with a heavy tail: three in four within a few
km (Gaussian, 3 km per axis), the others tens of km (30 km). The South Pacific region straddles the antimeridian
(Waiyevo on Taveuni sits 400 m east of 180°, Nuku'alofa at -175°), so code that handles the longitude wrap is
exercised; every longitude is wrapped into [-180, 180].

The picture depends on where it was taken, so a small CNN can learn the place: each region has its own "look",
a sky colour over a ground colour at a characteristic horizon height, and a ground texture (stripes of some
orientation and frequency, dots, checker, grid or waves, in an accent colour); each city of a region adds a
small colour tint and a landmark silhouette of its own shape on the horizon. Per image, the palette, horizon,
texture phase, frequency and angle are jittered, 1..4 small clutter shapes of random colour are scattered, and a
random brightness and pixel noise are applied, so the regions are easy to tell apart by eye but not by one pixel.

``write_synthetic_geo`` writes:

- ``images/000001.jpg``...: ``size`` x ``size`` JPEGs;
- ``train.csv``, ``val.csv``, ``test.csv``: header ``path,latitude,longitude``, then one line per image with the
  path relative to the root and the coordinates in degrees with 6 decimals; contiguous blocks of 80/10/10
  percent of the images.

Image ``i`` (file ``i + 1``) and its place depend only on ``(seed, i)``; the ``.complete`` marker
(``write_dataset``) is written last, so an interrupted write is redone, and a complete one written with other
options is refused rather than reused.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mobivision.data.synthetic.common import (
    JPEG_QUALITY,
    SHAPES,
    draw_shape,
    image_file_name,
    image_rng,
    partition_counts,
    rgb,
    to_image,
    write_dataset,
)
from mobivision.errors import DataError

KM_PER_DEGREE = 6371.0 * math.pi / 180
"""Kilometres per degree of latitude (and of longitude at the equator) on a sphere of radius 6371 km."""

NEAR_SIGMA_KM, FAR_SIGMA_KM, FAR_FRACTION = 3.0, 30.0, 0.25
"""The scatter round a city: Gaussian per axis, ``FAR_SIGMA_KM`` for a ``FAR_FRACTION`` of the photos."""

PATTERNS = ("stripes", "dots", "checker", "grid", "waves")
"""Ground textures a region can have."""

IMAGE_DIR = "images"
SPLIT_FILES = {"train": "train.csv", "val": "val.csv", "test": "test.csv"}
CSV_HEADER = "path,latitude,longitude"


@dataclass(frozen=True)
class GeoCity:
    """A city photos are taken round: its name and its centre in degrees (longitude in [-180, 180])."""

    name: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class GeoRegion:
    """One area of the world and how its photos look.

    Attributes:
        name: The area, e.g. ``Western Europe``.
        weight: Probability that a photo is taken there (the weights of ``GEO_REGIONS`` sum to 1).
        cities: Its cities; a photo's city is uniform among them.
        sky: RGB of the sky (lighter towards the horizon).
        ground: RGB of the ground.
        accent: RGB of the ground texture.
        pattern: The ground texture, one of ``PATTERNS``.
        frequency: Texture cycles per image side.
        angle: Texture orientation in degrees (0: the pattern varies from left to right).
        horizon: Height of the horizon below the top, as a fraction of the image side.
    """

    name: str
    weight: float
    cities: tuple[GeoCity, ...]
    sky: tuple[int, int, int]
    ground: tuple[int, int, int]
    accent: tuple[int, int, int]
    pattern: str
    frequency: float
    angle: float
    horizon: float


REGIONS_FILE = "geo_regions.json"  # beside this module, shipped as package data: one region per line


def _load_regions() -> tuple[GeoRegion, ...]:
    """``GEO_REGIONS`` from ``geo_regions.json``: each region's fields, its cities as ``[name, latitude,
    longitude]``."""
    rows = json.loads(resources.files(__package__).joinpath(REGIONS_FILE).read_text(encoding="utf-8"))
    colours = ("sky", "ground", "accent")
    return tuple(
        GeoRegion(
            **{key: value for key, value in row.items() if key not in ("cities", *colours)},
            cities=tuple(GeoCity(*city) for city in row["cities"]),
            **{key: tuple(row[key]) for key in colours},
        )
        for row in rows
    )


GEO_REGIONS: tuple[GeoRegion, ...] = _load_regions()
"""The regions, their weights (summing to 1), cities and looks; the last straddles the antimeridian."""


def wrap_longitude(longitude: float) -> float:
    """``longitude`` in degrees wrapped into [-180, 180)."""
    return (longitude + 180.0) % 360.0 - 180.0


def scatter_location(rng: np.random.Generator, city: GeoCity) -> tuple[float, float]:
    """A place round ``city``: Gaussian offsets in km, ``NEAR_SIGMA_KM`` per axis or, for a ``FAR_FRACTION`` of
    the draws, ``FAR_SIGMA_KM``; converted to degrees (longitude scaled by ``1 / cos(latitude)``) and wrapped."""
    sigma = FAR_SIGMA_KM if rng.random() < FAR_FRACTION else NEAR_SIGMA_KM
    north, east = rng.normal(0.0, sigma, size=2)
    latitude = city.latitude + north / KM_PER_DEGREE
    longitude = city.longitude + east / (KM_PER_DEGREE * math.cos(math.radians(city.latitude)))
    return float(np.clip(latitude, -90.0, 90.0)), wrap_longitude(longitude)


def sample_place(rng: np.random.Generator) -> tuple[int, int, float, float]:
    """A photo's region (by ``GeoRegion.weight``), city (uniform in it) and place (``scatter_location``).

    Returns:
        ``(region index, city index, latitude, longitude)``: indices into ``GEO_REGIONS`` and its ``cities``.
    """
    weights = np.array([region.weight for region in GEO_REGIONS])
    region = int(rng.choice(len(GEO_REGIONS), p=weights / weights.sum()))
    city = int(rng.integers(len(GEO_REGIONS[region].cities)))
    latitude, longitude = scatter_location(rng, GEO_REGIONS[region].cities[city])
    return region, city, latitude, longitude


def _pattern(kind: str, size: int, frequency: float, angle: float, phase: np.ndarray) -> np.ndarray:
    """A ``size x size`` texture in [0, 1]: ``frequency`` cycles per side along the direction ``angle``."""
    y, x = np.mgrid[0:size, 0:size] / size
    t = math.radians(angle)
    u = 2 * math.pi * frequency * (x * math.cos(t) + y * math.sin(t)) + phase[0]
    v = 2 * math.pi * frequency * (-x * math.sin(t) + y * math.cos(t)) + phase[1]
    if kind == "stripes":
        return (np.sin(u) > 0).astype(np.float64)
    if kind == "dots":
        return (np.cos(u) + np.cos(v) > 1.1).astype(np.float64)
    if kind == "checker":
        return (np.sin(u) * np.sin(v) > 0).astype(np.float64)
    if kind == "grid":
        return ((np.cos(u) > 0.6) | (np.cos(v) > 0.6)).astype(np.float64)
    if kind == "waves":
        return 0.5 + 0.5 * np.sin(u + 1.2 * np.sin(v / 2))
    raise ValueError(f"unknown pattern {kind!r}; expected one of {PATTERNS}")


def _city_tint(region: GeoRegion, city: int) -> np.ndarray:
    """A small RGB offset (12 levels) at an angle on the colour wheel given by the city's index."""
    turn = 2 * math.pi * city / len(region.cities)
    return 12.0 * np.cos(turn + np.array([0.0, 2 * math.pi / 3, 4 * math.pi / 3]))


def draw_geo_image(rng: np.random.Generator, region: int, city: int, *, size: int = 64) -> Image.Image:
    """Draw one photo taken in ``GEO_REGIONS[region]`` near its city ``city``.

    The sky (lighter towards the horizon) and the ground take the region's colours, each jittered by up to 18
    levels per channel; the horizon lies at the region's height plus up to 0.07 of the side either way; the
    ground carries the region's texture in its accent colour (frequency x 0.85..1.15, angle +-8 degrees, random
    phase). The city adds its tint (``_city_tint``) and a dark landmark standing on the horizon: shape
    ``SHAPES[city]``, radius 0.09..0.15 of the side, anywhere along it. Then 1..4 small shapes of random colour
    and place (clutter), a brightness factor 0.8..1.2 and Gaussian pixel noise (sigma 6).

    Args:
        rng: The generator (the writer seeds one per image).
        region: Index into ``GEO_REGIONS``.
        city: Index into the region's ``cities``.
        size: Image side in pixels.

    Returns:
        The RGB image.
    """
    look = GEO_REGIONS[region]
    sky = np.asarray(look.sky, np.float64) + rng.uniform(-18, 18, 3)
    ground = np.asarray(look.ground, np.float64) + rng.uniform(-18, 18, 3)
    accent = np.asarray(look.accent, np.float64) + rng.uniform(-18, 18, 3)
    horizon = round(size * float(np.clip(look.horizon + rng.uniform(-0.07, 0.07), 0.1, 0.9)))
    texture = _pattern(
        look.pattern,
        size,
        look.frequency * rng.uniform(0.85, 1.15),
        look.angle + rng.uniform(-8, 8),
        rng.uniform(0, 2 * math.pi, 2),
    )
    rows = np.arange(size, dtype=np.float64)[:, None, None]
    sky_pixels = sky + (255 - sky) * 0.35 * (rows / max(horizon, 1))  # haze towards the horizon
    ground_pixels = ground + texture[..., None] * (accent - ground)
    pixels = np.where(rows < horizon, np.broadcast_to(sky_pixels, (size, size, 3)), ground_pixels)
    pixels = pixels + _city_tint(look, city)

    image = to_image(pixels)
    draw = ImageDraw.Draw(image)
    radius = rng.uniform(0.09, 0.15) * size
    landmark = rgb(rng.uniform(25, 70) + rng.uniform(-10, 10, 3))
    center = (rng.uniform(0.15, 0.85) * size, horizon - 0.6 * radius)
    draw_shape(draw, SHAPES[city % len(SHAPES)], center=center, radius=radius, color=landmark)
    for _ in range(int(rng.integers(1, 5))):
        clutter = SHAPES[int(rng.integers(len(SHAPES)))]
        small = rng.uniform(0.03, 0.07) * size
        color = rgb(rng.integers(0, 256, 3))
        draw_shape(draw, clutter, center=tuple(rng.uniform(0, size, 2)), radius=small, color=color)

    pixels = np.asarray(image, dtype=np.float64) * rng.uniform(0.8, 1.2) + rng.normal(0, 6, (size, size, 3))
    return to_image(pixels)


def write_synthetic_geo(root: str | Path, *, num_images: int = 2400, size: int = 64, seed: int = 0) -> Path:
    """Write a synthetic geo-localization set (images and ``train/val/test.csv``) once; later calls reuse it.

    Image ``i`` is named ``images/{i + 1:06d}.jpg``; its place comes from ``sample_place`` and its picture from
    ``draw_geo_image``, both with ``image_rng(seed, i)``, so the same seed gives identical files.
    See the module docstring for the layout and the design. Later calls with the same options reuse the complete
    dataset.

    Args:
        root: Output folder (the one holding the CSV files; their paths are relative to it).
        num_images: Number of images (>= 3: at least one per split).
        size: Image side in pixels (>= 32, so the textures stay visible).
        seed: Seed of every image's generator.

    Returns:
        ``root``.

    Raises:
        DataError: An option is out of range, or ``root`` holds a complete dataset written with other options.
    """
    if num_images < 3 or size < 32:
        raise DataError(f"need num_images >= 3 (one per split) and size >= 32, got num_images={num_images} size={size}")
    options = f"geo seed={seed} num_images={num_images} size={size}\n"

    def write(folder: Path) -> None:
        (folder / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(num_images):
            path = f"{IMAGE_DIR}/{image_file_name(i)}"
            rng = image_rng(seed, i)
            region, city, latitude, longitude = sample_place(rng)
            draw_geo_image(rng, region, city, size=size).save(folder / path, quality=JPEG_QUALITY)
            lines.append(f"{path},{latitude:.6f},{longitude:.6f}")
        start = 0
        for split, count in partition_counts(num_images).items():
            (folder / SPLIT_FILES[split]).write_text("\n".join([CSV_HEADER, *lines[start : start + count]]) + "\n")
            start += count

    return write_dataset(root, options, write)
