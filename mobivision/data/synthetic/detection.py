"""Synthetic shapes detection: 0..N annotated shapes per image, written in COCO's format.

``write_shapes_detection`` draws 0..N shapes per image over a textured background with small unannotated
distractors and writes ``root/{train,val,test}/<000001>.jpg`` with COCO ``annotations/instances_<split>.json``
files, each box the exact pixel extent of its drawn shape.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mobivision.data.synthetic.common import (
    SHAPES,
    contrasting_color,
    draw_shape,
    image_file_name,
    image_rng,
    mean_color,
    textured_background,
    to_image,
    write_dataset,
)
from mobivision.errors import DataError

DETECTION_SPLITS = ("train", "val", "test")
DETECTION_JPEG_QUALITY = 95


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
    return image_rng(seed, DETECTION_SPLITS.index(split), index)


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
            pixels[covered] = contrasting_color(rng, pixels[covered].mean(axis=0))


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

    The background is ``textured_background``'s gradient, noise, stripes and blobs; ``clutter`` distractors
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
    pixels = textured_background(rng, size)
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
        color = contrasting_color(rng, mean_color(pixels[int(box[1]) : int(box[3]), int(box[0]) : int(box[2])]))
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
    return to_image(pixels), objects


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
    Image ``i`` (id ``i + 1``) of a split is ``draw_detection_image`` with ``detection_image_rng(seed, split, i)``.

    Args:
        root: Output folder.
        num_train: Training images.
        num_val: Validation images.
        num_test: Test images (0: no test split).
        size: Image side in pixels.
        seed: Seed of every image's generator.
        classes: Shape names from ``SHAPES``; category id ``k + 1`` is ``classes[k]``.
        max_objects, empty_fraction, min_size, max_size, clutter, max_overlap: As in ``draw_detection_image``.

    Returns:
        ``root``.

    Raises:
        DataError: ``root`` holds a complete dataset written with other options, or an option is out of range.
    """
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
    drawing = {
        "size": size,
        "classes": classes,
        "max_objects": max_objects,
        "empty_fraction": empty_fraction,
        "min_size": min_size,
        "max_size": max_size,
        "clutter": clutter,
        "max_overlap": max_overlap,
    }

    def write(folder: Path) -> None:
        categories = [{"id": k + 1, "name": name, "supercategory": "shape"} for k, name in enumerate(classes)]
        (folder / "annotations").mkdir(parents=True, exist_ok=True)
        for split, count in zip(DETECTION_SPLITS, (num_train, num_val, num_test), strict=True):
            if not count:
                continue
            images, annotations = _write_split(folder, split, count, seed, drawing)
            dataset = {
                "info": {"description": f"mobivision synthetic shapes, {split} split ({options.strip()})"},
                "licenses": [],
                "images": images,
                "annotations": annotations,
                "categories": categories,
            }
            (folder / "annotations" / f"instances_{split}.json").write_text(json.dumps(dataset))

    return write_dataset(root, options, write)


def _write_split(root: Path, split: str, count: int, seed: int, drawing: dict) -> tuple[list[dict], list[dict]]:
    """Write the ``count`` images of ``split``; return their COCO ``images`` and ``annotations`` entries."""
    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        image, objects = draw_detection_image(detection_image_rng(seed, split, i), **drawing)
        file_name = image_file_name(i)
        image.save(folder / file_name, quality=DETECTION_JPEG_QUALITY)
        images.append({"id": i + 1, "file_name": file_name, "width": drawing["size"], "height": drawing["size"]})
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
    return images, annotations
