"""Unit tests of ``mobivision.data.detection_transforms``: the SSD / SSDLite presets and their two hand-written steps.

SSD (Liu et al., 2016, Sec. 2.2) and torchvision's ``RandomIoUCrop`` keep a box only when its centre lies inside the
crop; zoom-out places the image unchanged on a larger mean-coloured canvas; the final resize ignores aspect ratio
(REFERENCE.md, SSD: input 300x300). Boxes under 1 px after a step are removed and counted as lost.
"""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from PIL import Image

from mobivision.data.coco import DetectionDataset, DetectionRecord
from mobivision.data.detection_transforms import (
    MIN_BOX_SIZE,
    RandomIoUCrop,
    RandomZoomOut,
    bbox_params,
    detection_eval_transform,
    ssd_train_transform,
    ssdlite_train_transform,
)

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _random_sample(rng: np.random.Generator, *, max_boxes: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random image (sides 40..160) with 0..max_boxes valid boxes labelled 1..n."""
    h, w = (int(v) for v in rng.integers(40, 161, size=2))
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    n = int(rng.integers(0, max_boxes + 1))
    x0, y0 = rng.uniform(0, w - 2, n), rng.uniform(0, h - 2, n)
    x1, y1 = rng.uniform(x0 + 1, w), rng.uniform(y0 + 1, h)
    boxes = np.stack([x0, y0, x1, y1], axis=1).astype(np.float32).reshape(-1, 4)
    return image, boxes, np.arange(1, n + 1, dtype=np.int64)


def _check_boxes(boxes: np.ndarray, height: int, width: int) -> None:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    assert (
        (boxes[:, :2] >= -1e-4).all() and (boxes[:, 2] <= width + 1e-4).all() and (boxes[:, 3] <= height + 1e-4).all()
    )
    assert (boxes[:, 2:] - boxes[:, :2] >= MIN_BOX_SIZE - 1e-4).all(), boxes


def test_eval_transform_scales_boxes_exactly() -> None:
    image = np.zeros((100, 200, 3), dtype=np.uint8)  # h 100, w 200
    boxes = np.array([[10, 20, 50, 60], [100, 0, 200, 100]], dtype=np.float32)
    out = detection_eval_transform(resolution=100, mean=MEAN, std=STD)(image=image, bboxes=boxes, labels=[3, 1])
    assert out["image"].shape == (3, 100, 100) and out["image"].dtype == torch.float32
    np.testing.assert_allclose(out["bboxes"], [[5, 20, 25, 60], [50, 0, 100, 100]], atol=1e-4)
    assert list(out["labels"]) == [3, 1]


def test_eval_transform_normalises() -> None:
    image = np.full((8, 8, 3), 255, dtype=np.uint8)
    out = detection_eval_transform(resolution=8, mean=MEAN, std=STD)(image=image, bboxes=np.zeros((0, 4)), labels=[])
    expected = (1 - np.array(MEAN)) / np.array(STD)
    np.testing.assert_allclose(out["image"][:, 0, 0], expected, rtol=1e-5)


def test_flip_mirrors_boxes() -> None:
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    image[20:40, 10:30] = 255
    t = ssdlite_train_transform(resolution=100, mean=(0, 0, 0), std=(1, 1, 1), iou_crop=False, hflip=1.0)
    out = t(image=image, bboxes=np.array([[10, 20, 30, 40]], dtype=np.float32), labels=[1])
    np.testing.assert_allclose(out["bboxes"], [[70, 20, 90, 40]], atol=1e-4)
    flipped = out["image"][0].numpy()
    assert flipped[20:40, 70:90].min() == 1.0 and flipped.sum() == 20 * 20


def test_iou_crop_keeps_boxes_whose_centre_is_inside() -> None:
    rng = np.random.default_rng(0)
    cropped = dropped = 0
    for seed in range(150):
        image, boxes, labels = _random_sample(rng)
        h, w = image.shape[:2]
        t = A.Compose([RandomIoUCrop()], bbox_params=bbox_params(), save_applied_params=True, seed=seed)
        out = t(image=image, bboxes=boxes, labels=labels)
        ((name, params),) = out["applied_transforms"]
        assert name == "RandomIoUCrop"
        x0, y0, x1, y1 = params["crop_coords"]
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        assert out["image"].shape == (y1 - y0, x1 - x0, 3)
        np.testing.assert_array_equal(out["image"], image[y0:y1, x0:x1])
        if (x0, y0, x1, y1) == (0, 0, w, h):
            assert list(out["labels"]) == list(labels)
            continue
        cropped += 1
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        inside = (x0 < cx) & (cx < x1) & (y0 < cy) & (cy < y1)
        expected = np.clip(boxes[inside] - [x0, y0, x0, y0], 0, [x1 - x0, y1 - y0] * 2)
        big_enough = (expected[:, 2:] - expected[:, :2] >= MIN_BOX_SIZE).all(axis=1)
        assert list(out["labels"]) == list(labels[inside][big_enough])
        np.testing.assert_allclose(np.asarray(out["bboxes"]).reshape(-1, 4), expected[big_enough], atol=1e-3)
        _check_boxes(out["bboxes"], y1 - y0, x1 - x0)
        assert inside.any(), "a crop must keep the centre of some box"
        dropped += int((~inside).sum())
    assert cropped > 50 and dropped > 0  # the test saw real crops that dropped boxes


def test_iou_crop_leaves_an_image_without_boxes_whole() -> None:
    image = np.arange(30 * 40 * 3, dtype=np.uint8).reshape(30, 40, 3)
    t = A.Compose([RandomIoUCrop()], bbox_params=bbox_params(), seed=0)
    for _ in range(10):
        out = t(image=image, bboxes=np.zeros((0, 4), np.float32), labels=np.zeros(0, np.int64))
        np.testing.assert_array_equal(out["image"], image)
        assert len(out["bboxes"]) == 0


def test_iou_crop_meets_the_minimum_iou() -> None:
    # With only the 0.5 option every crop must overlap the box by IoU >= 0.5; when no crop passes in
    # max_rounds * trials draws the image is kept whole.
    image = np.zeros((100, 100, 3), dtype=np.uint8)
    box = np.array([[20, 20, 80, 80]], dtype=np.float32)
    t = A.Compose([RandomIoUCrop(options=(0.5,))], bbox_params=bbox_params(), save_applied_params=True, seed=3)
    cropped = 0
    for _ in range(30):
        out = t(image=image, bboxes=box, labels=[1])
        x0, y0, x1, y1 = out["applied_transforms"][0][1]["crop_coords"]
        if (x0, y0, x1, y1) != (0, 0, 100, 100):
            cropped += 1
            inter = max(0, min(x1, 80) - max(x0, 20)) * max(0, min(y1, 80) - max(y0, 20))
            assert inter / ((x1 - x0) * (y1 - y0) + 60 * 60 - inter) >= 0.5
    assert cropped >= 25


def test_zoom_out_keeps_box_sizes_and_content() -> None:
    image = np.zeros((30, 40, 3), dtype=np.uint8)
    image[5:15, 10:30] = 200
    box = np.array([[10, 5, 30, 15]], dtype=np.float32)
    t = A.Compose([RandomZoomOut(side_range=(2.0, 3.0), fill=(7, 7, 7), p=1.0)], bbox_params=bbox_params(), seed=0)
    for _ in range(10):
        out = t(image=image, bboxes=box, labels=[1])
        canvas = out["image"]
        assert 60 <= canvas.shape[0] <= 90 and 80 <= canvas.shape[1] <= 120
        assert canvas.shape[0] / 30 == pytest.approx(canvas.shape[1] / 40, abs=0.05)  # one ratio for both sides
        (x0, y0, x1, y1) = np.asarray(out["bboxes"])[0]
        assert (x1 - x0, y1 - y0) == pytest.approx((20, 10), abs=1e-3)
        x0, y0 = round(x0), round(y0)
        assert (canvas[y0 : y0 + 10, x0 : x0 + 20] == 200).all()
        left, top = x0 - 10, y0 - 5
        np.testing.assert_array_equal(canvas[top : top + 30, left : left + 40], image)
        assert (canvas == 7).sum() == 3 * (canvas.shape[0] * canvas.shape[1] - 30 * 40)


def test_ssd_zoom_out_fills_with_the_mean_colour() -> None:
    t = ssd_train_transform(resolution=32, mean=MEAN, std=STD)
    (zoom,) = [step for step in t.transforms if isinstance(step, RandomZoomOut)]
    assert zoom.fill == pytest.approx(tuple(255 * m for m in MEAN))
    assert zoom.side_range == (1.0, 4.0) and zoom.p == 0.5


@pytest.mark.parametrize(
    "make",
    [
        lambda: ssd_train_transform(resolution=48, mean=MEAN, std=STD),
        lambda: ssdlite_train_transform(resolution=48, mean=MEAN, std=STD),
        lambda: detection_eval_transform(resolution=48, mean=MEAN, std=STD),
    ],
    ids=["ssd", "ssdlite", "eval"],
)
def test_pipelines_give_valid_tensors_and_boxes(make) -> None:
    t = make()
    t.set_random_seed(0)
    rng = np.random.default_rng(1)
    empty_seen = 0
    for _ in range(120):
        image, boxes, labels = _random_sample(rng)
        empty_seen += not len(boxes)
        out = t(image=image, bboxes=boxes, labels=labels)
        assert out["image"].shape == (3, 48, 48) and out["image"].dtype == torch.float32
        assert torch.isfinite(out["image"]).all()
        kept = np.asarray(out["labels"], dtype=np.int64)
        assert len(kept) == len(np.asarray(out["bboxes"]).reshape(-1, 4)) <= len(labels)
        assert set(kept.tolist()) <= set(labels.tolist()) and len(set(kept.tolist())) == len(kept)
        _check_boxes(out["bboxes"], 48, 48)
    assert empty_seen > 5


def test_dataset_counts_boxes_lost(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.new("RGB", (64, 64), (90, 90, 90)).save(path)
    boxes = np.array([[10, 10, 40, 40], [50, 50, 51.5, 60]], dtype=np.float32)  # the second is 1.5 px wide
    record = DetectionRecord(
        image_id=1, path=path, width=64, height=64, boxes=boxes, labels=np.array([1, 2], dtype=np.int64)
    )
    # Resizing 64 -> 16 leaves the narrow box 0.375 px wide: removed, and counted as lost.
    dataset = DetectionDataset([record], transform=detection_eval_transform(resolution=16, mean=MEAN, std=STD))
    sample = dataset[0]
    assert sample["target"]["labels"].tolist() == [1]
    np.testing.assert_allclose(sample["target"]["boxes"], [[2.5, 2.5, 10, 10]], atol=1e-4)
    assert (dataset.boxes_seen, dataset.boxes_lost) == (2, 1)

    train = DetectionDataset([record] * 40, transform=ssd_train_transform(resolution=32, mean=MEAN, std=STD))
    train.transform.set_random_seed(0)
    kept = sum(len(train[i]["target"]["boxes"]) for i in range(len(train)))
    assert train.boxes_seen == 80 and train.boxes_lost == 80 - kept and train.boxes_lost > 40


def test_dataloader_workers_draw_different_reproducible_augmentations(tmp_path: Path) -> None:
    # Forked workers inherit one albumentations RNG state; the training loader's ResumableDataset (the one seeding
    # path) reseeds each from torch's worker seed.
    from torch.utils.data import DataLoader

    from mobivision.data.coco import detection_collate
    from mobivision.tasks.resume import ResumableDataset

    path = tmp_path / "a.png"
    Image.new("RGB", (64, 64), (90, 90, 90)).save(path)
    boxes, labels = np.array([[10, 10, 40, 40]], dtype=np.float32), np.array([1], dtype=np.int64)
    record = DetectionRecord(image_id=1, path=path, width=64, height=64, boxes=boxes, labels=labels)
    dataset = DetectionDataset([record] * 8, transform=ssd_train_transform(resolution=32, mean=MEAN, std=STD))

    def run() -> list[torch.Tensor]:
        torch.manual_seed(0)
        loader = DataLoader(ResumableDataset(dataset), batch_size=1, num_workers=2, collate_fn=detection_collate)
        return [batch["image"][0] for batch in loader]

    first = run()
    # Worker 0 loads samples 0, 2, 4, 6 and worker 1 samples 1, 3, 5, 7: their streams must differ.
    assert any(not torch.equal(first[i], first[i + 1]) for i in range(0, 8, 2))
    assert all(torch.equal(a, b) for a, b in zip(first, run(), strict=True))
