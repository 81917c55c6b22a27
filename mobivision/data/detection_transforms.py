"""Albumentations presets for SSD detection: the SSD and SSDLite training recipes and plain evaluation resize.

SSD (Liu et al., "SSD: Single Shot MultiBox Detector", 2016, Sec. 2.2 "Data augmentation" and Sec. 3.6) trains
with photometric distortion, a zoom-out ("expansion") onto a canvas up to 4x larger filled with the mean colour,
a random crop whose IoU with some object is at least one of {0.1, 0.3, 0.5, 0.7, 0.9} (or any crop, or the whole
image), keeping the boxes whose centre lies in the crop, a horizontal flip, and a resize to a square input
(300x300, aspect ratio ignored). The presets follow torchvision's detection references (``presets.py``: ``ssd``
and ``ssdlite``; SSDLite drops the photometric distortion and the zoom-out, see REFERENCE.md).

Boxes are absolute ``xyxy`` (albumentations ``pascal_voc``) with a ``labels`` field; albumentations clips them
to the image after each step and removes boxes under 1 px wide or high (``MIN_BOX_SIZE``), so a box becomes
"lost" when a crop leaves its centre out or a resize shrinks it below a pixel. Outputs are normalised float CHW
tensors (training presets with ``normalize=False``: uint8 CHW, normalised on the device, see
``mobivision.data.transforms``).
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.augmentations.crops.transforms import BaseCrop
from albumentations.core.bbox_utils import denormalize_bboxes

from mobivision.data.transforms import to_tensor

MIN_BOX_SIZE = 1.0
"""Boxes narrower or lower than this many pixels after any step are removed (and count as lost)."""

IOU_CROP_OPTIONS: tuple[float | None, ...] = (None, 0.0, 0.1, 0.3, 0.5, 0.7, 0.9)
"""SSD's sampling options: ``None`` keeps the whole image; a number is the minimum IoU of some kept box with the
crop (0.0: any crop). Same as torchvision's ``RandomIoUCrop`` (which encodes ``None`` as 2.0)."""


class RandomIoUCrop(BaseCrop):
    """SSD's minimum-IoU random crop (Liu et al., 2016, Sec. 2.2), as torchvision ``v2.RandomIoUCrop``.

    Written by hand because albumentations has no equivalent: its bbox-aware crops (``RandomSizedBBoxSafeCrop``,
    ``AtLeastOneBboxRandomCrop``, ``BBoxSafeRandomCrop``) keep all or one box whole and never test a crop's IoU
    with the boxes, and none keeps boxes by their centre. Subclassing ``BaseCrop`` reuses albumentations' image
    and box cropping, so only the sampling and the centre rule live here.

    Each call draws an option from ``options``; ``None`` returns the image unchanged. Otherwise up to ``trials``
    crops are drawn with width and height ``scale`` times the image's (independently), aspect ratio in
    ``aspect_ratio``; the first crop that contains the centre of some box and has IoU >= the option's minimum
    with one of those boxes is taken, and only boxes whose centre lies strictly inside it are kept (then cropped
    and clipped). If all trials fail, another option is drawn, as in torchvision; an image without boxes is
    never cropped (no crop can pass), and after ``max_rounds`` failed options the image is left unchanged.

    Args:
        options: Minimum IoUs to choose from, ``None`` meaning "keep the whole image".
        trials: Crops tried per option (SSD's Caffe recipe: 50; torchvision: 40).
        scale: Range of the crop's width and height as a fraction of the image's.
        aspect_ratio: Range of the crop's width / height.
        max_rounds: Options drawn at most before giving up and keeping the image.
        p: Probability of applying the transform.
    """

    def __init__(
        self,
        *,
        options: tuple[float | None, ...] = IOU_CROP_OPTIONS,
        trials: int = 50,
        scale: tuple[float, float] = (0.3, 1.0),
        aspect_ratio: tuple[float, float] = (0.5, 2.0),
        max_rounds: int = 100,
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        self.options = tuple(options)
        self.trials = trials
        self.scale = tuple(scale)
        self.aspect_ratio = tuple(aspect_ratio)
        self.max_rounds = max_rounds

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("options", "trials", "scale", "aspect_ratio", "max_rounds")

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width = params["shape"][:2]
        whole = {"crop_coords": (0, 0, width, height)}
        bboxes = np.asarray(data.get("bboxes", np.zeros((0, 4))))
        if not len(bboxes):
            return whole
        boxes = denormalize_bboxes(bboxes[:, :4].astype(np.float64), (height, width))
        centers = (boxes[:, :2] + boxes[:, 2:]) / 2
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        rng = self.py_random
        for _ in range(self.max_rounds):
            min_iou = rng.choice(self.options)
            if min_iou is None:
                return whole
            for _ in range(self.trials):
                new_w = int(width * rng.uniform(*self.scale))
                new_h = int(height * rng.uniform(*self.scale))
                if new_w == 0 or new_h == 0 or not self.aspect_ratio[0] <= new_w / new_h <= self.aspect_ratio[1]:
                    continue
                left = int((width - new_w) * rng.random())
                top = int((height - new_h) * rng.random())
                crop = np.array([left, top, left + new_w, top + new_h], dtype=np.float64)
                inside = _centers_inside(centers, crop)
                if not inside.any():
                    continue
                ious = _iou_with(boxes[inside], areas[inside], crop)
                if ious.max() < min_iou:
                    continue
                return {"crop_coords": (left, top, left + new_w, top + new_h)}
        return whole

    def apply_to_bboxes(self, bboxes: np.ndarray, crop_coords: tuple[int, int, int, int], **params: Any) -> np.ndarray:
        height, width = params["shape"][:2]
        if len(bboxes) and crop_coords != (0, 0, width, height):
            boxes = denormalize_bboxes(bboxes[:, :4].astype(np.float64), (height, width))
            inside = _centers_inside((boxes[:, :2] + boxes[:, 2:]) / 2, np.asarray(crop_coords, dtype=np.float64))
            bboxes = bboxes[inside]
        return super().apply_to_bboxes(bboxes, crop_coords, **params)


def _centers_inside(centers: np.ndarray, crop: np.ndarray) -> np.ndarray:
    return (crop[0] < centers[:, 0]) & (centers[:, 0] < crop[2]) & (crop[1] < centers[:, 1]) & (centers[:, 1] < crop[3])


def _iou_with(boxes: np.ndarray, areas: np.ndarray, crop: np.ndarray) -> np.ndarray:
    # A few boxes against one rectangle in numpy: torchvision.ops.box_iou would need tensors for a 1xN product.
    wh = np.clip(np.minimum(boxes[:, 2:], crop[2:]) - np.maximum(boxes[:, :2], crop[:2]), 0, None)
    inter = wh[:, 0] * wh[:, 1]
    crop_area = (crop[2] - crop[0]) * (crop[3] - crop[1])
    return inter / (areas + crop_area - inter)


class RandomZoomOut(A.Pad):
    """SSD's zoom-out ("expansion"): the image at a random position on a canvas ``r`` times larger, ``r`` uniform
    in ``side_range``, filled with ``fill`` (the mean colour), as torchvision ``v2.RandomZoomOut``.

    A subclass because albumentations' padding transforms take absolute sizes (``PadIfNeeded``) or fixed
    amounts (``Pad``), and ``Affine(scale<1)`` shrinks the content on a same-size canvas (losing resolution
    before the IoU crop); only the random padding is drawn here, ``Pad`` pads the image and shifts the boxes.

    Args:
        side_range: Range of the canvas side over the image side (both sides use the same ratio).
        fill: Canvas colour in pixel values (0..255 for uint8 images).
        p: Probability of applying the transform (SSD: 0.5).
    """

    def __init__(
        self, *, side_range: tuple[float, float] = (1.0, 4.0), fill: tuple[float, ...] | float = 0, p: float = 0.5
    ) -> None:
        super().__init__(padding=0, fill=fill, border_mode=cv2.BORDER_CONSTANT, p=p)
        self.side_range = tuple(side_range)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("side_range", "fill")

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width = params["shape"][:2]
        ratio = self.py_random.uniform(*self.side_range)
        canvas_w, canvas_h = int(width * ratio), int(height * ratio)
        left = int((canvas_w - width) * self.py_random.random())
        top = int((canvas_h - height) * self.py_random.random())
        return {
            "pad_top": top,
            "pad_bottom": canvas_h - height - top,
            "pad_left": left,
            "pad_right": canvas_w - width - left,
        }


def photometric_distort(*, p: float = 0.5) -> A.RandomOrder:
    """SSD's photometric distortion as torchvision ``v2.RandomPhotometricDistort``: brightness 0.875..1.125,
    contrast 0.5..1.5, saturation 0.5..1.5, hue -0.05..0.05, each applied with probability ``p``, in random order.
    """
    steps = [
        A.ColorJitter(brightness=(0.875, 1.125), contrast=0, saturation=0, hue=0, p=p),
        A.ColorJitter(brightness=0, contrast=(0.5, 1.5), saturation=0, hue=0, p=p),
        A.ColorJitter(brightness=0, contrast=0, saturation=(0.5, 1.5), hue=0, p=p),
        A.ColorJitter(brightness=0, contrast=0, saturation=0, hue=(-0.05, 0.05), p=p),
    ]
    return A.RandomOrder(steps, n=len(steps), p=1.0)


def bbox_params() -> A.BboxParams:
    """``pascal_voc`` boxes with a ``labels`` field, clipped to the image, at least ``MIN_BOX_SIZE`` px."""
    return A.BboxParams(
        format="pascal_voc",
        label_fields=["labels"],
        min_width=MIN_BOX_SIZE,
        min_height=MIN_BOX_SIZE,
        clip=True,
        filter_invalid_bboxes=True,
    )


def _finish(
    resolution: int, mean: tuple[float, ...], std: tuple[float, ...], *, normalize: bool = True
) -> list[A.BasicTransform]:
    # SSD resizes to a square input whatever the aspect ratio (Liu et al., Sec. 3: 300x300).
    resize = A.Resize(height=resolution, width=resolution, interpolation=cv2.INTER_LINEAR)
    return [resize, *to_tensor(mean, std, normalize=normalize)]


def ssd_train_transform(
    *,
    resolution: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    photometric: bool = True,
    zoom_out: bool = True,
    max_zoom_out: float = 4.0,
    iou_crop: bool = True,
    hflip: float = 0.5,
    normalize: bool = True,
) -> A.Compose:
    """The SSD training recipe: photometric distortion, zoom-out, IoU crop, flip, square resize, normalise.

    Args:
        resolution: Output side in pixels.
        mean: Normalisation mean on 0..1 pixels; also the zoom-out canvas colour.
        std: Normalisation standard deviation on 0..1 pixels.
        photometric: Apply ``photometric_distort`` (each part with probability 0.5).
        zoom_out: Apply ``RandomZoomOut`` with probability 0.5.
        max_zoom_out: Largest canvas side over image side.
        iou_crop: Apply ``RandomIoUCrop``.
        hflip: Probability of a horizontal flip.
        normalize: Normalise here (float output); False: uint8 output for ``normalize_uint8`` on the device.

    Returns:
        A bbox-aware compose: call it as ``t(image=hwc_uint8, bboxes=xyxy, labels=labels)``.
    """
    steps: list[A.BasicTransform | A.BaseCompose] = []
    if photometric:
        steps.append(photometric_distort(p=0.5))
    if zoom_out:
        fill = tuple(255.0 * m for m in mean)
        steps.append(RandomZoomOut(side_range=(1.0, max_zoom_out), fill=fill, p=0.5))
    if iou_crop:
        steps.append(RandomIoUCrop())
    steps.append(A.HorizontalFlip(p=hflip))
    return A.Compose(steps + _finish(resolution, mean, std, normalize=normalize), bbox_params=bbox_params())


def ssdlite_train_transform(
    *,
    resolution: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    iou_crop: bool = True,
    hflip: float = 0.5,
    normalize: bool = True,
) -> A.Compose:
    """torchvision's SSDLite recipe: IoU crop, flip, square resize, normalise (no photometric, no zoom-out);
    ``normalize`` as in ``ssd_train_transform``."""
    steps: list[A.BasicTransform] = [RandomIoUCrop()] if iou_crop else []
    steps.append(A.HorizontalFlip(p=hflip))
    return A.Compose(steps + _finish(resolution, mean, std, normalize=normalize), bbox_params=bbox_params())


def detection_eval_transform(*, resolution: int, mean: tuple[float, ...], std: tuple[float, ...]) -> A.Compose:
    """Square resize to ``resolution`` and normalise; boxes scale with the image (x by ``resolution / width``)."""
    return A.Compose(_finish(resolution, mean, std), bbox_params=bbox_params())
