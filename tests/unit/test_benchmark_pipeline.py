"""The benchmark's two training input pipelines (ours, torchvision's reference rebuilt with transforms v2) emit the
same kind of sample from the photo-like JPEGs it writes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from mobivision.commands.benchmark_coco import write_split
from mobivision.commands.benchmark_pipeline import (
    RECIPES,
    one_thread,
    ours_sampler,
    torchvision_sampler,
    write_photo_jpegs,
)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[int]]:
    folder = tmp_path_factory.mktemp("coco")
    rng = np.random.default_rng(0)
    annotation_file = write_split(folder, "val", 5, 7.3, rng)
    return annotation_file, folder / "val", write_photo_jpegs(annotation_file, folder / "val", 3, rng)


def test_photo_jpegs_are_real_size_and_compress_like_a_photo(photos: tuple[Path, Path, list[int]]) -> None:
    _, image_dir, image_ids = photos
    assert len(image_ids) == 3
    for image_id in image_ids:
        path = image_dir / f"{image_id:012d}.jpg"
        # flat colour compresses to a few KB, white noise to over 300 KB; COCO's photos are ~50-200 KB
        assert 40_000 < path.stat().st_size < 250_000
        with Image.open(path) as image:
            assert (image.format, image.size) == ("JPEG", (640, 480))


@pytest.mark.parametrize("recipe", RECIPES, ids=[recipe.name for recipe in RECIPES])
def test_ours_and_torchvision_give_the_same_kind_of_sample(recipe, photos: tuple[Path, Path, list[int]]) -> None:
    annotation_file, image_dir, image_ids = photos
    side = recipe.resolution
    torch.manual_seed(0)
    for sampler in (
        ours_sampler(recipe, annotation_file, image_dir, image_ids, seed=0),
        torchvision_sampler(recipe, annotation_file, image_dir, image_ids),
    ):
        for index in range(len(image_ids)):
            image, boxes = sampler(index)
            assert type(image) is torch.Tensor and type(boxes) is torch.Tensor  # no tv_tensors left
            assert image.shape == (3, side, side) and image.dtype == torch.float32
            assert -3.0 < image.min() < 0.0 < image.max() < 3.0  # normalised, not 0..1 or 0..255
            assert boxes.dtype == torch.float32 and boxes.shape[1:] == (4,)
            assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= side).all()
            assert (boxes[:, 2:] > boxes[:, :2]).all()


def test_one_thread_restores_the_thread_counts() -> None:
    before = torch.get_num_threads(), cv2.getNumThreads()
    with one_thread():
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (1, 1)
    assert (torch.get_num_threads(), cv2.getNumThreads()) == before
