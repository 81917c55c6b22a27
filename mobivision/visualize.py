"""Pictures of predictions: COCO-style detections or lines of text (attributes) drawn on images, and grids.

The drawing functions use numpy and Pillow only (the inference API's ONNX path draws with them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

YELLOW = (255, 255, 0)


def draw_detections(image: np.ndarray, results: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> np.ndarray:
    """``image`` (H x W x 3 uint8) with each result's box, class name and score drawn on it.

    ``results`` are COCO-style dicts (``bbox`` as ``[x, y, w, h]`` in the image's pixels, ``score``) with
    a ``label`` index into ``class_names`` or a ``category_name``. Draws what torchvision's
    ``draw_bounding_boxes(..., colors="yellow")`` draws, pixel for pixel (``tests/unit/test_visualize.py``), with
    Pillow alone: the inference API draws the same pictures without torch.
    """
    picture = Image.fromarray(np.array(image, dtype=np.uint8))
    if results:
        boxes = np.array([r["bbox"] for r in results], dtype=np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        draw = ImageDraw.Draw(picture)
        font = ImageFont.load_default()
        for box, result in zip(boxes.astype(np.int64).tolist(), results, strict=True):  # truncated, as torch's
            name = result.get("category_name") or class_names[result["label"]]
            draw.rectangle(box, width=1, outline=YELLOW)
            draw.text((box[0] + 2, box[1] + 2), f"{name} {result['score']:.2f}", fill=YELLOW, font=font)
    return np.asarray(picture)


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
    import torch  # only here: the drawing functions above need no torch
    from torchvision.utils import make_grid

    tiles = [torch.from_numpy(np.array(Image.fromarray(i).resize((size, size)))).permute(2, 0, 1) for i in images]
    grid = make_grid(tiles, nrow=columns, padding=4, pad_value=255)
    return Image.fromarray(grid.permute(1, 2, 0).numpy())
