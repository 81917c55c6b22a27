"""Writers of small synthetic datasets in real on-disk formats, for the demo and the tests.

``write_shapes_classification`` draws one shape per image (the class) at a random size, position and
colour over a noisy, textured background, and writes an ImageFolder tree. ``write_shapes_detection`` draws
0..N shapes per image over a textured background with small unannotated distractors and writes COCO
``instances_{train,val}.json`` files, with each box the exact pixel extent of its drawn shape.
``write_fine_grained_shapes`` is the fine-grained counterpart (as CUB-200-2011 birds or Stanford Dogs): one
"bird" shape in every image, classes told apart only by small details, in an ImageFolder tree. A fixed seed
makes each reproducible; a ``.complete`` marker written last means an interrupted write is redone, not reused.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mobivision.errors import DataError

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")
SPLITS = {"train": 0.7, "val": 0.15, "test": 0.15}
_MARKER = ".complete"


def _already_written(marker: Path, options: str) -> bool:
    """True if a complete dataset written with ``options`` is there; other options are refused, not reused."""
    if not marker.exists():
        return False
    if marker.read_text() != options:
        raise DataError(
            f"{marker.parent} already holds synthetic data written with other options ({marker.read_text().strip()}); "
            f"requested {options.strip()}. Delete the folder or choose another data.root"
        )
    return True


def _split_counts(images_per_class: int) -> dict[str, int]:
    """Images per class in each split (``SPLITS`` fractions, at least one in val and test)."""
    val = test = max(1, round(images_per_class * SPLITS["val"]))
    return {"train": images_per_class - val - test, "val": val, "test": test}


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
    if _already_written(marker, options):
        return root
    rng = np.random.default_rng(seed)
    counts = _split_counts(images_per_class)
    for shape in classes:
        for split, count in counts.items():
            folder = root / split / shape
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                _shape_image(rng, shape, size).save(folder / f"{shape}_{i:04d}.png")
    marker.write_text(options)
    return root


DETECTION_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DrawnObject:
    """One annotated shape of a synthetic detection image.

    Attributes:
        shape: Its name in ``SHAPES``.
        category_id: COCO category id: 1 + its index in the writer's ``classes``.
        bbox: COCO ``[x, y, w, h]`` in pixels: the extent of the pixels the shape covers (pixel ``i`` spans
            ``[i, i + 1)``), so the box touches the shape on all four sides.
        area: Number of pixels the shape covers (a later shape may hide part of it).
        color: Its RGB fill.
    """

    shape: str
    category_id: int
    bbox: tuple[int, int, int, int]
    area: int
    color: tuple[int, int, int]


def detection_image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator that draws image ``index`` of ``split``: each image depends only on (seed, split, index)."""
    return np.random.default_rng([seed, DETECTION_SPLITS.index(split), index])


def _texture(rng: np.random.Generator, pixels: np.ndarray) -> None:
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


def _clutter(rng: np.random.Generator, pixels: np.ndarray, *, count: int, extent: float) -> None:
    """Draw ``count`` small unannotated distractors (1 px lines or dots) no larger than ``extent`` pixels."""
    size = pixels.shape[0]
    extent = max(extent, 1.0)
    for _ in range(count):
        mask = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(mask)
        x, y = rng.uniform(0, size, size=2)
        if rng.random() < 0.5:
            length, angle = rng.uniform(0.5, 1.0) * (extent - 1), rng.uniform(0, math.pi)
            draw.line((x, y, x + length * math.cos(angle), y + length * math.sin(angle)), fill=255, width=1)
        else:
            radius = rng.uniform(0.25, 0.5) * (extent - 1)
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
        covered = np.asarray(mask) > 0
        if covered.any():
            pixels[covered] = _contrasting_color(rng, pixels[covered].mean(axis=0))


def _overlap_ok(box: np.ndarray, placed: list[np.ndarray], max_overlap: float) -> bool:
    """IoU with every placed box at most ``max_overlap``, and at most half of either box covered by the other
    (IoU alone lets a small shape vanish under a large one drawn later)."""
    for other in placed:
        wh = np.clip(np.minimum(box[2:], other[2:]) - np.maximum(box[:2], other[:2]), 0, None)
        inter = wh[0] * wh[1]
        area_a, area_b = np.prod(box[2:] - box[:2]), np.prod(other[2:] - other[:2])
        if inter / (area_a + area_b - inter) > max_overlap or inter > 0.5 * min(area_a, area_b):
            return False
    return True


def draw_detection_image(
    rng: np.random.Generator,
    *,
    size: int = 128,
    classes: tuple[str, ...] = ("circle", "square", "triangle"),
    max_objects: int = 4,
    empty_fraction: float = 0.1,
    min_size: float = 0.18,
    max_size: float = 0.5,
    clutter: int = 3,
    max_overlap: float = 0.3,
    placement_tries: int = 50,
) -> tuple[Image.Image, list[DrawnObject]]:
    """Draw one synthetic detection image and return it with its annotated shapes.

    The background is ``_background``'s gradient and noise plus faint stripes and blobs; ``clutter`` distractors
    follow, then, unless the image is empty (probability ``empty_fraction``), 1..``max_objects`` shapes of random
    class with a nominal side (``2 * radius``) uniform in ``min_size..max_size`` of the image side, at most half
    the radius outside the image, and a colour contrasting the background under it. A shape whose box would
    overlap a placed one by more than ``max_overlap`` IoU (or cover half of it) is moved, up to
    ``placement_tries`` times, then left out.

    Each shape is rasterised into its own mask with ``draw_shape`` and the image takes its colour through that
    mask, so the box (the mask's pixel extent, hence clipped to the image) is exact for every shape, including
    triangles, whose extent is smaller than their nominal square.

    Args:
        rng: The generator (``detection_image_rng`` for a written dataset's image).
        size: Image side in pixels.
        classes: Shape names; category id ``k + 1`` is ``classes[k]``.
        max_objects: Most shapes in an image.
        empty_fraction: Probability of an image without shapes.
        min_size: Smallest shape side over the image side.
        max_size: Largest shape side over the image side.
        clutter: Number of small unannotated distractors (under ``min_size / 3`` of the side).
        max_overlap: Largest IoU between two shapes' boxes.
        placement_tries: Positions tried per shape.

    Returns:
        The RGB image and its shapes in drawing order.
    """
    image, _ = _background(rng, size)
    pixels = np.asarray(image).astype(np.float64)
    _texture(rng, pixels)
    _clutter(rng, pixels, count=clutter, extent=min_size / 3 * size)
    count = 0 if rng.random() < empty_fraction else int(rng.integers(1, max_objects + 1))
    objects: list[DrawnObject] = []
    placed: list[np.ndarray] = []
    for _ in range(count):
        class_index = int(rng.integers(len(classes)))
        radius = rng.uniform(min_size, max_size) * size / 2
        for _ in range(placement_tries):
            center = tuple(rng.uniform(radius / 2, size - radius / 2, size=2))
            mask_image = Image.new("L", (size, size), 0)
            draw_shape(ImageDraw.Draw(mask_image), classes[class_index], center=center, radius=radius, color=255)
            mask = np.asarray(mask_image) > 0
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            if not len(rows):
                continue
            box = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)
            if _overlap_ok(box, placed, max_overlap):
                break
        else:
            continue
        region = pixels[int(box[1]) : int(box[3]), int(box[0]) : int(box[2])]
        color = _contrasting_color(rng, np.clip(region, 0, 255).reshape(-1, 3).mean(axis=0))
        pixels[mask] = color
        placed.append(box)
        x0, y0, x1, y1 = (int(v) for v in box)
        objects.append(
            DrawnObject(
                shape=classes[class_index],
                category_id=class_index + 1,
                bbox=(x0, y0, x1 - x0, y1 - y0),
                area=int(mask.sum()),
                color=color,
            )
        )
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)), objects


def write_shapes_detection(
    root: str | Path,
    *,
    num_train: int = 600,
    num_val: int = 150,
    num_test: int = 0,
    size: int = 128,
    seed: int = 0,
    classes: tuple[str, ...] = ("circle", "square", "triangle"),
    max_objects: int = 4,
    empty_fraction: float = 0.1,
    min_size: float = 0.18,
    max_size: float = 0.5,
    clutter: int = 3,
    max_overlap: float = 0.3,
) -> Path:
    """Write a COCO-format shapes detection dataset once; later calls with the same options reuse it.

    Layout: ``root/{train,val}/<000001>.jpg`` (JPEG quality 95) and ``root/annotations/instances_{train,val}.json``
    (plus a ``test`` split when ``num_test > 0``) with images (id, file_name, width, height), categories (ids 1..C,
    names from ``classes``) and annotations (id, image_id, category_id, bbox ``[x, y, w, h]``, area, iscrowd 0).
    Image ``i`` (id ``i + 1``) of a split is ``draw_detection_image`` with ``detection_image_rng(seed, split, i)``;
    see it for the remaining options.

    Args:
        root: Output folder.
        num_train: Training images.
        num_val: Validation images.
        num_test: Test images (0: no test split).
        size: Image side in pixels.
        seed: Seed of every image's generator.
        classes: Shape names from ``SHAPES``; category id ``k + 1`` is ``classes[k]``.
        max_objects: Most shapes per image.
        empty_fraction: Probability of an image without shapes.
        min_size: Smallest shape side over the image side.
        max_size: Largest shape side over the image side.
        clutter: Small unannotated distractors per image.
        max_overlap: Largest IoU between two shapes' boxes.

    Returns:
        ``root``.

    Raises:
        DataError: ``root`` holds a complete dataset written with other options, or an option is out of range.
    """
    root = Path(root)
    unknown = [c for c in classes if c not in SHAPES]
    if unknown or not classes:
        raise DataError(f"classes must be a non-empty subset of {SHAPES}, got {list(classes)}")
    if not 0 < min_size <= max_size <= 1 or min(num_train, num_val, max_objects) < 1 or num_test < 0:
        raise DataError(
            f"need 0 < min_size <= max_size <= 1, num_train, num_val, max_objects >= 1 and num_test >= 0; got "
            f"min_size={min_size} max_size={max_size} num_train={num_train} num_val={num_val} num_test={num_test} "
            f"max_objects={max_objects}"
        )
    options = (
        f"detection seed={seed} num_train={num_train} num_val={num_val} num_test={num_test} size={size} "
        f"classes={','.join(classes)} max_objects={max_objects} empty_fraction={empty_fraction} "
        f"min_size={min_size} max_size={max_size} clutter={clutter} max_overlap={max_overlap}\n"
    )
    marker = root / _MARKER
    if _already_written(marker, options):
        return root
    categories = [{"id": k + 1, "name": name, "supercategory": "shape"} for k, name in enumerate(classes)]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for split, count in zip(DETECTION_SPLITS, (num_train, num_val, num_test), strict=True):
        if not count:
            continue
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            image, objects = draw_detection_image(
                detection_image_rng(seed, split, i),
                size=size,
                classes=classes,
                max_objects=max_objects,
                empty_fraction=empty_fraction,
                min_size=min_size,
                max_size=max_size,
                clutter=clutter,
                max_overlap=max_overlap,
            )
            file_name = f"{i + 1:06d}.jpg"
            image.save(folder / file_name, quality=95)
            images.append({"id": i + 1, "file_name": file_name, "width": size, "height": size})
            annotations += [
                {
                    "id": len(annotations) + k + 1,
                    "image_id": i + 1,
                    "category_id": obj.category_id,
                    "bbox": list(obj.bbox),
                    "area": obj.area,
                    "iscrowd": 0,
                }
                for k, obj in enumerate(objects)
            ]
        dataset = {
            "info": {"description": f"mobivision synthetic shapes, {split} split ({options.strip()})"},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(dataset))
    marker.write_text(options)
    return root


# --- write_fine_grained_shapes: one "bird" everywhere, classes told apart by small details ----------------------

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
    return [
        (u + a * math.cos(2 * math.pi * k / corners), v + b * math.sin(2 * math.pi * k / corners))
        for k in range(corners)
    ]


def draw_bird(rng: np.random.Generator, species: BirdSpecies, *, size: int = 64) -> Image.Image:
    """Draw one synthetic "bird" of ``species``: the same random scene for every species, plus its details.

    The scene is ``_background``'s gradient and noise with faint stripes and blobs, desaturated, and a bird
    facing right (rotated by up to 25 degrees) in one flat, half-saturated colour that contrasts the background:
    an elliptical body (half-length 0.20-0.27 of the side, centred in the middle fifth of the image), a round
    head at the front and a triangular tail at the back. The species only adds the details: a round spot of
    radius ``max(3, 0.06 * size)`` pixels (7.7 px across at 64 px) in a saturated ``SPOT_COLORS`` colour with a
    1 px dark rim, half-way between the body's centre and its front or back end, and optionally a bar across the
    middle of the body (darker than the body, or lighter on a dark one). All random draws come before the
    details, so for one generator state the images of two species differ only in those pixels. The spot stays
    within 0.3 of the side from the image centre, so a random-resized crop of scale 0.6-1 mostly keeps it.

    Args:
        rng: The generator (the writer seeds one per image).
        species: The class's details.
        size: Image side in pixels.

    Returns:
        The RGB image.
    """
    image, _ = _background(rng, size)
    pixels = np.asarray(image).astype(np.float64)
    _texture(rng, pixels)
    grey = pixels.mean(axis=-1, keepdims=True)
    pixels = grey + 0.35 * (pixels - grey)
    a = rng.uniform(0.2, 0.27) * size
    b = a * rng.uniform(0.5, 0.62)
    center = tuple(rng.uniform(0.4, 0.6, size=2) * size)
    angle = math.radians(rng.uniform(-25, 25))
    color = np.asarray(_contrasting_color(rng, np.clip(pixels, 0, 255).reshape(-1, 3).mean(axis=0)), float)
    color = color.mean() + 0.5 * (color - color.mean())
    body = tuple(int(c) for c in np.clip(color, 0, 255))

    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.polygon(_rotated(_ellipse(0, 0, a, b), center, angle), fill=body)
    draw.polygon(_rotated(_ellipse(1.05 * a, -0.35 * b, 0.5 * b, 0.5 * b, 24), center, angle), fill=body)
    tail = [(-0.8 * a, 0.0), (-1.45 * a, -0.45 * b), (-1.45 * a, 0.35 * b)]
    draw.polygon(_rotated(tail, center, angle), fill=body)
    if species.stripe:
        half = max(1.5, 0.08 * a)
        bar = [(-half, -0.92 * b), (half, -0.92 * b), (half, 0.92 * b), (-half, 0.92 * b)]
        shade = color * 0.35 if color.mean() > 100 else color + 0.6 * (255 - color)
        draw.polygon(_rotated(bar, center, angle), fill=tuple(int(c) for c in np.clip(shade, 0, 255)))
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
    Image ``i`` of a split is drawn from ``np.random.default_rng([seed, split, i])`` for every class, so the
    classes share their scenes (background, bird size, place, pose and colour) and differ only in the details:
    no global statistic such as the mean colour tells them apart.

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
    root = Path(root)
    if images_per_class < 3 or not 2 <= num_classes <= len(BIRD_SPECIES):
        raise DataError(
            f"need images_per_class >= 3 (one per split) and 2 <= num_classes <= {len(BIRD_SPECIES)}, got "
            f"images_per_class={images_per_class} num_classes={num_classes}"
        )
    options = f"fine_grained seed={seed} images_per_class={images_per_class} size={size} num_classes={num_classes}\n"
    marker = root / _MARKER
    if _already_written(marker, options):
        return root
    counts = _split_counts(images_per_class)
    for species in BIRD_SPECIES[:num_classes]:
        for split_index, (split, count) in enumerate(counts.items()):
            folder = root / split / species.name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                rng = np.random.default_rng([seed, split_index, i])
                draw_bird(rng, species, size=size).save(folder / f"{species.name}_{i:04d}.png")
    marker.write_text(options)
    return root
