"""Image files as 8-bit RGB arrays: ``load_rgb``, ``rgb8`` and ``UnreadableImageError``.

numpy and Pillow only (no torch): the inference API's ONNX path reads images with it too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mobivision.errors import DataError


class UnreadableImageError(DataError):
    """An image file that is missing, truncated or not an image; the message names it (``path`` and ``reason``
    hold its two parts when ``load_rgb`` raised it; a copy torch re-raises from a DataLoader worker has only the
    message)."""

    def __init__(self, message: str, *, path: Path | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


def load_rgb(path: Path) -> np.ndarray:
    """An image file as an ``H x W x 3`` uint8 array, as ``rgb8`` makes it; an unreadable file raises
    ``UnreadableImageError`` naming it."""
    try:
        with Image.open(path) as image:
            return rgb8(image)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:  # Pillow's decoders raise all four
        raise UnreadableImageError(f"cannot read image {path}: {exc}", path=Path(path), reason=str(exc)) from exc


_SIXTEEN_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def rgb8(image: Image.Image) -> np.ndarray:
    """Any image Pillow opens as the 8-bit RGB picture a viewer shows: turned upright by its EXIF orientation;
    16-bit grey scaled to 8 bits (``convert("RGB")`` would clip everything above 255 to white); transparency
    (alpha, or a palette's transparent colour) composited over white; CMYK, palette and grey converted."""
    image = ImageOps.exif_transpose(image)
    if image.mode in _SIXTEEN_BIT_GREY:
        grey = np.asarray(image).astype(np.float64)  # "I" holds a 16-bit PNG's values too
        eight_bit = np.clip(np.rint(grey / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(eight_bit[..., None], 3, axis=2)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(canvas, rgba).convert("RGB"))
    return np.asarray(image.convert("RGB"))
