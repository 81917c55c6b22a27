"""Pictures of predictions: COCO-style detections drawn on images, and grids of such pictures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.utils import draw_bounding_boxes, make_grid


def draw_detections(image: np.ndarray, results: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> np.ndarray:
    """``image`` (H x W x 3 uint8) with each result's box, class name and score drawn on it.

    ``results`` are COCO-style dicts (``bbox`` as ``[x, y, w, h]`` in the image's pixels, ``score``) with
    a ``label`` index into ``class_names`` or a ``category_name``.
    """
    if not results:  # draw_bounding_boxes warns on an empty box list
        return np.array(image, dtype=np.uint8)
    boxes = torch.tensor([r["bbox"] for r in results], dtype=torch.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]
    names = [r.get("category_name") or class_names[r["label"]] for r in results]
    labels = [f"{name} {r['score']:.2f}" for name, r in zip(names, results, strict=True)]
    pixels = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)  # a writable copy
    picture = draw_bounding_boxes(pixels, boxes, labels=labels, colors="yellow")
    return picture.permute(1, 2, 0).numpy()


def image_grid(images: Sequence[np.ndarray], *, columns: int = 4, size: int = 256) -> Image.Image:
    """Images resized to ``size`` x ``size`` and tiled ``columns`` per row."""
    tiles = [torch.from_numpy(np.array(Image.fromarray(i).resize((size, size)))).permute(2, 0, 1) for i in images]
    grid = make_grid(tiles, nrow=columns, padding=4, pad_value=255)
    return Image.fromarray(grid.permute(1, 2, 0).numpy())
