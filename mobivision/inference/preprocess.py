"""Evaluation pre-processing without torch: the model's input from an RGB image, with numpy and OpenCV only.

Hand-written rather than calling ``mobivision.data.transforms``: albumentations 2.x imports torch, and the
inference API must run on ONNX Runtime alone. Each step copies the albumentations 2.0 / albucore computation it
stands for (sizes, rounding, interpolation, float32 arithmetic), so the result equals ``TaskModule.preprocess``
bit for bit; ``tests/unit/test_inference_preprocess.py`` checks that against the training-side pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Preprocessing:
    """What the evaluation transform of a task's data does.

    ``crop_pct`` set: resize the short side to ``round(resolution / crop_pct)`` and take the central
    ``resolution`` square (classification); None: resize to a ``resolution`` square, aspect ratio not kept
    (detection). ``mean`` and ``std`` normalise 0..1 pixels, per channel.
    """

    resolution: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float | None = None


@dataclass(frozen=True)
class Placement:
    """Where the model's input lies in the original image: ``original = (input + offset) * scale`` per axis.

    ``offset_x`` and ``offset_y`` are the crop's corner in the resized image, ``scale_x`` and ``scale_y`` the
    original pixels per resized pixel, ``original_size`` the original ``(height, width)``.
    """

    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float
    original_size: tuple[int, int]

    def to_original(self, boxes_xyxy: np.ndarray) -> np.ndarray:
        """``(N, 4)`` ``xyxy`` boxes in input pixels as float32 boxes in original pixels, clipped to the image
        (float32 as ``to_coco_results`` scales them, so predictions files are the same to the byte)."""
        boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
        height, width = self.original_size
        out = np.empty_like(boxes)
        for axis, offset, scale, size in (
            (0, self.offset_x, self.scale_x, width),
            (1, self.offset_y, self.scale_y, height),
        ):
            out[:, axis::2] = np.clip((boxes[:, axis::2] + np.float32(offset)) * np.float32(scale), 0, size)
        return out


def prepare(image: np.ndarray, spec: Preprocessing) -> tuple[np.ndarray, Placement]:
    """An HWC uint8 RGB image as the model's CHW float32 input (contiguous), and its ``Placement``."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != len(spec.mean):
        raise ValueError(f"expected an HWC uint8 image with {len(spec.mean)} channels, got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    if height < 1 or width < 1:
        raise ValueError(f"empty image: {image.shape}")
    resolution = int(spec.resolution)
    if spec.crop_pct is None:
        # A.Resize(resolution, resolution, INTER_LINEAR)
        resized = _resize(image, resolution, resolution)
        placement = Placement(width / resolution, height / resolution, 0.0, 0.0, (height, width))
        return _normalize_chw(resized, spec), placement
    # A.SmallestMaxSize(max_size=round(resolution / crop_pct)): Python float scale, each side round()ed (half to
    # even), at least 1 pixel.
    scale = round(resolution / spec.crop_pct) / min(height, width)
    new_height, new_width = max(1, round(height * scale)), max(1, round(width * scale))
    resized = _resize(image, new_height, new_width)
    if resolution > new_height or resolution > new_width:  # A.CenterCrop raises CropSizeError (no padding)
        raise ValueError(f"crop {resolution} exceeds the resized image {new_height}x{new_width} (crop_pct > 1?)")
    # A.CenterCrop(resolution, resolution): corner at floor((side - crop) / 2).
    top, left = (new_height - resolution) // 2, (new_width - resolution) // 2
    cropped = resized[top : top + resolution, left : left + resolution]
    placement = Placement(width / new_width, height / new_height, float(left), float(top), (height, width))
    return _normalize_chw(cropped, spec), placement


def prepare_batch(images: list[np.ndarray], spec: Preprocessing) -> tuple[np.ndarray, list[Placement]]:
    """``prepare`` for each image, stacked to an ``(N, C, resolution, resolution)`` float32 batch."""
    prepared = [prepare(image, spec) for image in images]
    channels, side = len(spec.mean), int(spec.resolution)
    batch = np.empty((len(prepared), channels, side, side), dtype=np.float32)
    for index, (array, _) in enumerate(prepared):
        batch[index] = array
    return batch, [placement for _, placement in prepared]


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    # albumentations' fgeometric.resize: unchanged when already that size, else cv2.resize bilinear (its default).
    if (height, width) == image.shape[:2]:
        return image
    resized = cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=cv2.INTER_LINEAR)
    return resized.reshape(height, width, image.shape[2])  # cv2 drops a single channel's axis


def _normalize_chw(image: np.ndarray, spec: Preprocessing) -> np.ndarray:
    # A.Normalize(max_pixel_value=255) on uint8 is albucore's normalize_lut: a float32 table per channel,
    # (value - float32(mean) * 255) * (1 / (float32(std) * 255)), all in float32; looked up here straight into CHW.
    mean = np.array(spec.mean, dtype=np.float32) * 255.0
    denominator = np.reciprocal(np.array(spec.std, dtype=np.float32) * 255.0)
    table = (np.arange(256, dtype=np.float32) - mean.reshape(-1, 1)) * denominator.reshape(-1, 1)
    channels = np.arange(table.shape[0]).reshape(-1, 1, 1)
    return np.ascontiguousarray(table[channels, image.transpose(2, 0, 1)], dtype=np.float32)
