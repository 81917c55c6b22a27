"""Image files as 8-bit RGB arrays: ``load_rgb``, ``rgb8``, the pixel limit and ``UnreadableImageError``.

Every path that opens an image (training and evaluation data, ``mobivision.load``'s predictor, ``tools/predict.py``,
``tools/serve.py``, ``tools/check.py --scan-images``) checks its size against one limit, ``max_image_mpx``
(default ``DEFAULT_MAX_IMAGE_MPX``), from the file's header before any pixel is decoded: a tiny PNG can declare
144 Mpx and take gigabytes to decode. numpy and Pillow only (no torch): the inference API's ONNX path reads images
with it too.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from mobivision.errors import ConfigError, DataError


class UnreadableImageError(DataError):
    """An image file that is missing, truncated or not an image; the message names it (``path`` and ``reason``
    hold its two parts when ``load_rgb`` raised it; a copy torch re-raises from a DataLoader worker has only the
    message)."""

    def __init__(self, message: str, *, path: Path | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


# A 48-Mpx phone photo (8064 x 6048 = 48.8 Mpx) fits; decoding one takes about 0.5 GB (the RGB array and
# Pillow's copies). Under Pillow's own warning threshold (Image.MAX_IMAGE_PIXELS, 89.5 Mpx), which then never fires
# for an image that is accepted.
DEFAULT_MAX_IMAGE_MPX = 50.0


class ImageTooLargeError(UnreadableImageError):
    """An image with more pixels than the limit (``max_image_mpx``), found from its header, before decoding."""


def check_max_image_mpx(value: float, option: str = "max_image_mpx") -> float:
    """``value`` if it is a finite number > 0, else ``ConfigError`` naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{option}: {value!r} is not valid (expected a finite number of megapixels > 0)")
    return float(value)


def check_pixels(size: tuple[int, int], name: str | Path, max_image_mpx: float, option: str = "max_image_mpx") -> None:
    """``ImageTooLargeError`` naming ``name`` if an image of ``size`` (width, height) has more than
    ``max_image_mpx`` million pixels; the message names the ``option`` that sets the limit."""
    width, height = size
    if width * height > max_image_mpx * 1e6:
        mpx = width * height / 1e6
        reason = f"{width} x {height} pixels ({mpx:.1f} Mpx) is over the {max_image_mpx:g} Mpx limit ({option})"
        raise ImageTooLargeError(f"image {name}: {reason}", path=Path(name), reason=reason)


@contextmanager
def open_image(file: Path | IO[bytes]) -> Iterator[Image.Image]:
    """``Image.open(file)`` (the header only) without Pillow's DecompressionBombWarning: ``check_pixels`` is the
    limit here, and refuses such an image with an error naming it. (``catch_warnings`` is process-wide: at worst
    another thread's Pillow warning of that instant is dropped too.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(file)
    with image:
        yield image


def open_rgb(
    file: Path | IO[bytes],
    name: str | Path,
    *,
    max_image_mpx: float = DEFAULT_MAX_IMAGE_MPX,
    option: str = "max_image_mpx",
) -> np.ndarray:
    """An image file (a path or a binary file object) as an ``H x W x 3`` uint8 array, as ``rgb8`` makes it;
    its size is checked (``check_pixels``) before decoding. Raises ``UnreadableImageError`` naming ``name``
    (``ImageTooLargeError`` over the limit)."""
    try:
        with open_image(file) as image:
            check_pixels(image.size, name, max_image_mpx, option)
            return rgb8(image)
    except ImageTooLargeError:  # a ValueError too: not to be wrapped below
        raise
    except Image.DecompressionBombError as exc:  # a limit above Pillow's: Pillow's check refuses it first
        raise ImageTooLargeError(f"image {name}: {exc}", path=Path(name), reason=str(exc)) from exc
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:  # Pillow's decoders raise all four
        raise UnreadableImageError(f"cannot read image {name}: {exc}", path=Path(name), reason=str(exc)) from exc


def load_rgb(path: Path, *, max_image_mpx: float = DEFAULT_MAX_IMAGE_MPX, option: str = "max_image_mpx") -> np.ndarray:
    """An image file as an ``H x W x 3`` uint8 array (``open_rgb``); an unreadable file, or one over
    ``max_image_mpx`` million pixels (set by ``option``), raises ``UnreadableImageError`` naming it."""
    return open_rgb(path, path, max_image_mpx=max_image_mpx, option=option)


_SIXTEEN_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def rgb8(image: Image.Image) -> np.ndarray:
    """Any image Pillow opens as the 8-bit RGB picture a viewer shows: turned upright by its EXIF orientation;
    16-bit grey scaled to 8 bits (``convert("RGB")`` would clip everything above 255 to white); transparency
    (alpha, or a palette's transparent colour) composited over white; CMYK, palette and grey converted."""
    if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:  # exif_transpose would copy an upright image too
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
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))  # convert() would copy RGB
