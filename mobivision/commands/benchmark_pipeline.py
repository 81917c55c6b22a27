"""The SSD / SSDLite training input pipelines per worker: ours beside torchvision's detection reference (v2 API).

``write_photo_jpegs`` turns the first images of a COCO-sized split into real-size JPEGs (640x480, quality 90,
smooth noise with a textured rectangle per box, ~75 KB like a COCO photo). ``pipeline_rows`` then times, in one
process with one torch and one OpenCV thread and no DataLoader workers, a sample at a time:

- ours: ``DetectionDataset`` over ``read_coco`` records with ``ssd_train_transform`` (300 px, MobileNetV1's
  mean/std) or ``ssdlite_train_transform`` (320 px, MobileNetV3-Large's), as ``DetectionDataModule`` builds
  them for training;
- torchvision's reference: ``DetectionPresetTrain(data_augmentation="ssd"|"ssdlite", backend="pil",
  use_v2=True)`` on ``CocoDetection`` + ``wrap_dataset_for_transforms_v2``, as ``references/detection`` trains.
  torchvision's SSD models resize and normalise inside the model (``GeneralizedRCNNTransform``), so the preset
  here ends with a resize to the model's square size and the same normalisation as ours: both pipelines emit a
  normalised float CHW tensor at the model's size and its boxes.

Both include opening and decoding the JPEG. The rate of one process is the rate of one DataLoader worker; K
workers on K free cores give about K times as much.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Subset
from torchvision import tv_tensors
from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2
from torchvision.transforms import v2

from mobivision.data.coco import DetectionDataset, read_coco
from mobivision.data.detection_transforms import ssd_train_transform, ssdlite_train_transform
from mobivision.factory import default_mean_std
from mobivision.timing import time_steps

JPEG_QUALITY = 90
WARMUP_IMAGES = 5


@dataclass(frozen=True)
class Recipe:
    """A training recipe as the benchmark runs it: its name in both code bases, output size and mean/std."""

    name: str
    label: str
    resolution: int
    backbone: str

    @property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return default_mean_std(self.backbone)


RECIPES = (Recipe("ssd", "SSD", 300, "mobilenet_v1"), Recipe("ssdlite", "SSDLite", 320, "mobilenet_v3_large"))

Sampler = Callable[[int], tuple[torch.Tensor, torch.Tensor]]
"""Sample ``i`` of a pipeline as (normalised float CHW image, xyxy boxes in its pixels)."""


def _smooth_noise(rng: np.random.Generator, cells: tuple[int, int], sigma: float, size: tuple[int, int]) -> np.ndarray:
    small = rng.normal(0.0, sigma, (*cells, 3)).astype(np.float32)
    return cv2.resize(small, size, interpolation=cv2.INTER_CUBIC)


def photo_like(width: int, height: int, boxes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An RGB uint8 image that JPEG compresses like a photo: noise smooth at three scales plus fine grain (neither
    flat colour nor white noise), and each ``xyxy`` box filled with a colour under stripes of random angle."""
    size = (width, height)
    image = 128.0 + _smooth_noise(rng, (4, 5), 60.0, size) + _smooth_noise(rng, (30, 40), 20.0, size)
    image += _smooth_noise(rng, (height // 4, width // 4), 10.0, size)
    image += rng.normal(0.0, 3.0, image.shape).astype(np.float32)
    for x0, y0, x1, y1 in np.round(boxes).astype(int).clip(0, [width, height, width, height]):
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 24)
        stripes = 40.0 * np.sin(2 * np.pi * (xs * np.cos(angle) + ys * np.sin(angle)) / period)
        grain = rng.normal(0.0, 8.0, (y1 - y0, x1 - x0, 3))
        image[y0:y1, x0:x1] = rng.uniform(0, 255, 3) + stripes[..., None] + grain
    return image.clip(0, 255).astype(np.uint8)


def write_photo_jpegs(annotation_file: Path, image_dir: Path, count: int, rng: np.random.Generator) -> list[int]:
    """Overwrite the files of the first ``count`` images that have a non-crowd box with ``photo_like`` JPEGs;
    their image ids. Images without one are left out, as torchvision's reference drops them from training."""
    data = json.loads(annotation_file.read_text())
    boxes: dict[int, list[list[float]]] = defaultdict(list)
    has_target = set()
    for ann in data["annotations"]:
        x, y, w, h = ann["bbox"]
        boxes[ann["image_id"]].append([x, y, x + w, y + h])
        if not ann["iscrowd"]:
            has_target.add(ann["image_id"])
    images = [image for image in data["images"] if image["id"] in has_target][:count]
    for image in images:
        pixels = photo_like(image["width"], image["height"], np.array(boxes[image["id"]]).reshape(-1, 4), rng)
        Image.fromarray(pixels).save(image_dir / image["file_name"], quality=JPEG_QUALITY)
    return [image["id"] for image in images]


def ours_sampler(recipe: Recipe, annotation_file: Path, image_dir: Path, image_ids: list[int], seed: int) -> Sampler:
    """Our ``DetectionDataset`` with the recipe's training transform, as ``DetectionDataModule`` builds it."""
    mean, std = recipe.mean_std
    preset = ssd_train_transform if recipe.name == "ssd" else ssdlite_train_transform
    transform = preset(resolution=recipe.resolution, mean=mean, std=std)
    transform.set_random_seed(seed)
    by_id = {record.image_id: record for record in read_coco(annotation_file, image_dir).records}
    dataset = DetectionDataset([by_id[image_id] for image_id in image_ids], transform=transform)

    def sample(index: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = dataset[index]
        return item["image"], item["target"]["boxes"]

    return sample


def torchvision_reference_transform(recipe: Recipe) -> v2.Compose:
    """torchvision's ``DetectionPresetTrain(data_augmentation=recipe.name, backend="pil", use_v2=True)``, rebuilt
    from pytorch/vision ``references/detection/presets.py`` (the reference scripts are not in the wheel), then the
    model's resize and normalisation (``GeneralizedRCNNTransform``: bilinear, no antialias)."""
    mean, std = recipe.mean_std
    augment: list[v2.Transform] = []
    if recipe.name == "ssd":
        fill = defaultdict(lambda: tuple(255.0 * m for m in mean), {tv_tensors.Mask: 0})
        augment += [v2.RandomPhotometricDistort(), v2.RandomZoomOut(fill=fill)]
    augment += [v2.RandomIoUCrop(), v2.RandomHorizontalFlip(p=0.5)]
    return v2.Compose([
        *augment,
        v2.ToImage(),
        v2.ToDtype(torch.float, scale=True),
        v2.ConvertBoundingBoxFormat(tv_tensors.BoundingBoxFormat.XYXY),
        v2.SanitizeBoundingBoxes(),
        # Before ToPureTensor: after it the boxes are plain tensors and Resize would leave them unscaled.
        v2.Resize((recipe.resolution, recipe.resolution), antialias=False),
        v2.Normalize(mean=list(mean), std=list(std)),
        v2.ToPureTensor(),
    ])  # fmt: skip


def torchvision_sampler(recipe: Recipe, annotation_file: Path, image_dir: Path, image_ids: list[int]) -> Sampler:
    """``CocoDetection`` wrapped for transforms v2 with the reference's target keys (``coco_utils.get_coco``)."""
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints while it loads the file
        coco = CocoDetection(str(image_dir), str(annotation_file), transforms=torchvision_reference_transform(recipe))
    position = {image_id: index for index, image_id in enumerate(coco.ids)}
    wrapped = wrap_dataset_for_transforms_v2(coco, target_keys=["boxes", "labels", "image_id"])
    dataset = Subset(wrapped, [position[image_id] for image_id in image_ids])

    def sample(index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, target = dataset[index]
        return image, target["boxes"]

    return sample


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One torch and one OpenCV thread, as in a DataLoader worker; the previous counts restored after."""
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv2_threads)


def interleaved_seconds(samplers: dict[str, Sampler], count: int) -> dict[str, float]:
    """Seconds each sampler spends on samples ``0..count-1`` after ``WARMUP_IMAGES`` untimed ones, the samplers
    alternating image by image (``mobivision.timing.time_steps``)."""
    warmup = min(WARMUP_IMAGES, count)
    indices = [*range(warmup), *range(count)]

    def fed(sample: Sampler) -> Callable[[], object]:
        """``sample`` on the next of ``indices`` at each call."""
        feed = iter(indices)
        return lambda: sample(next(feed))

    timings = time_steps({name: fed(sample) for name, sample in samplers.items()}, warmup=warmup, repeats=count)
    return {name: sum(samples) for name, samples in timings.samples.items()}


def pipeline_rows(annotation_file: Path, image_dir: Path, image_ids: list[int], seed: int) -> list[dict[str, Any]]:
    """Per recipe, a row for torchvision's reference and one for ours with its speed over torchvision's."""
    rows = []
    with one_thread():
        for recipe in RECIPES:
            torch.manual_seed(seed)  # torchvision's transforms draw from torch's global generator
            samplers = {
                "torchvision reference v2": torchvision_sampler(recipe, annotation_file, image_dir, image_ids),
                "ours": ours_sampler(recipe, annotation_file, image_dir, image_ids, seed),
            }
            seconds = interleaved_seconds(samplers, len(image_ids))
            step = f"{recipe.label} train pipeline, {len(image_ids)} JPEGs 640x480 -> {recipe.resolution} px, 1 worker"
            for name, spent in seconds.items():
                rows.append({"step": f"{step}: {name}", "seconds": spent, "images_per_second": len(image_ids) / spent})
            rows[-1]["speedup"] = seconds["torchvision reference v2"] / seconds["ours"]
    return rows
