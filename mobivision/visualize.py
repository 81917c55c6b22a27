"""Pictures of predictions: COCO-style detections or lines of text (attributes) drawn on images, and grids."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
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


def draw_text_lines(image: np.ndarray, lines: Sequence[str], *, min_size: int = 256) -> np.ndarray:
    """``image`` enlarged to at least ``min_size`` pixels on its shorter side, ``lines`` written top-left on a
    translucent dark band (face attributes with their probabilities)."""
    picture = Image.fromarray(np.array(image, dtype=np.uint8))
    scale = max(1.0, min_size / min(picture.size))
    picture = picture.resize((round(picture.width * scale), round(picture.height * scale)))
    font = ImageFont.load_default(size=max(10, picture.height // 22))
    line_height = font.getbbox("Ag")[3] + 4
    overlay = Image.new("RGBA", picture.size)
    draw = ImageDraw.Draw(overlay)
    if lines:
        width = max(draw.textlength(line, font=font) for line in lines) + 8
        draw.rectangle((0, 0, width, line_height * len(lines) + 4), fill=(0, 0, 0, 150))
    for row, line in enumerate(lines):
        draw.text((4, 2 + row * line_height), line, font=font, fill=(255, 255, 0, 255))
    return np.asarray(Image.alpha_composite(picture.convert("RGBA"), overlay).convert("RGB"))


def image_grid(images: Sequence[np.ndarray], *, columns: int = 4, size: int = 256) -> Image.Image:
    """Images resized to ``size`` x ``size`` and tiled ``columns`` per row."""
    tiles = [torch.from_numpy(np.array(Image.fromarray(i).resize((size, size)))).permute(2, 0, 1) for i in images]
    grid = make_grid(tiles, nrow=columns, padding=4, pad_value=255)
    return Image.fromarray(grid.permute(1, 2, 0).numpy())
