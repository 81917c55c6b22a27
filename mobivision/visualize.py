"""Pictures of predictions: COCO-style detections or lines of text (attributes) drawn on images, and grids.

The drawing functions use numpy and Pillow only (the inference API's ONNX path draws with them). What they allocate
is bounded by the picture they return, and that by the image: a small image is enlarged for legible text up to
``MAX_ENLARGED_SIDE``, and an image more elongated than ``MAX_DRAWN_ASPECT`` : 1 is not drawn at all
(``drawing_problem``; its result has no picture), so no input can make a drawing take gigabytes or exceed the
65,500 pixels a JPEG side can hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

YELLOW = (255, 255, 0)
MAX_DRAWN_ASPECT = 32  # panoramas reach about 10:1; a 1 x 10000 strip is no photo worth a picture
MAX_ENLARGED_SIDE = 2048  # a small image is enlarged for its text at most to this long side


def drawing_problem(width: int, height: int) -> str | None:
    """Why an image of ``width`` x ``height`` pixels gets no picture, or None if it gets one."""
    if max(width, height) > MAX_DRAWN_ASPECT * min(width, height):
        return f"{width} x {height} pixels is too elongated to draw (over {MAX_DRAWN_ASPECT}:1)"
    return None


def draw_detections(image: np.ndarray, results: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> np.ndarray:
    """``image`` (H x W x 3 uint8) with each result's box, class name and score drawn on it.

    ``results`` are COCO-style dicts (``bbox`` as ``[x, y, w, h]`` in the image's pixels, ``score``) with
    a ``label`` index into ``class_names`` or a ``category_name``. Draws what torchvision's
    ``draw_bounding_boxes(..., colors="yellow")`` draws, pixel for pixel (``tests/unit/test_visualize.py``), with
    Pillow alone: the inference API draws the same pictures without torch.
    """
    picture = Image.fromarray(np.asarray(image, dtype=np.uint8))  # a copy
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
    """``image`` enlarged towards ``min_size`` pixels on its shorter side (its longer side at most
    ``MAX_ENLARGED_SIDE``, or its own if larger), ``lines`` written top-left on a translucent dark band (face
    attributes with their probabilities). The text is sized from the picture's shorter side, and only the band is
    composited, so the memory taken is a small multiple of the picture returned."""
    picture = Image.fromarray(np.asarray(image, dtype=np.uint8))  # a copy
    short, long = min(picture.size), max(picture.size)
    scale = max(1.0, min(min_size / short, MAX_ENLARGED_SIDE / long))
    if scale > 1.0:
        picture = picture.resize((round(picture.width * scale), round(picture.height * scale)))
    if not lines:
        return np.asarray(picture)
    font = ImageFont.load_default(size=max(10, min(picture.size) // 22))
    line_height = font.getbbox("Ag")[3] + 4
    measure = ImageDraw.Draw(picture)
    band_right = max(measure.textlength(line, font=font) for line in lines) + 8
    band_bottom = line_height * len(lines) + 4
    # The band is the rectangle (0, 0, right, bottom), both edges included, clipped to the picture.
    size = (min(picture.width, int(band_right) + 1), min(picture.height, band_bottom + 1))
    overlay = Image.new("RGBA", size)
    draw = ImageDraw.Draw(overlay)
    draw.rectangle((0, 0, band_right, band_bottom), fill=(0, 0, 0, 150))
    for row, line in enumerate(lines):
        draw.text((4, 2 + row * line_height), line, font=font, fill=(255, 255, 0, 255))
    band = Image.alpha_composite(picture.crop((0, 0, *size)).convert("RGBA"), overlay).convert("RGB")
    picture.paste(band, (0, 0))
    return np.asarray(picture)


def image_grid(images: Sequence[np.ndarray], *, columns: int = 4, size: int = 256) -> Image.Image:
    """Images resized to ``size`` x ``size`` and tiled ``columns`` per row."""
    import torch  # only here: the drawing functions above need no torch
    from torchvision.utils import make_grid

    tiles = [torch.from_numpy(np.array(Image.fromarray(i).resize((size, size)))).permute(2, 0, 1) for i in images]
    grid = make_grid(tiles, nrow=columns, padding=4, pad_value=255)
    return Image.fromarray(grid.permute(1, 2, 0).numpy())
