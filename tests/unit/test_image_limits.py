"""The one pixel limit (``mobivision.data.images``, ``max_image_mpx``): every path that opens an image checks it
from the file's header, before a pixel is decoded: files, PIL images, arrays and tensors given to a predictor,
training data (``data.on_error``) and ``tools/check.py --scan-images``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from image_files import header_only_png
from PIL import Image

from mobivision.data.images import ImageTooLargeError, check_max_image_mpx, load_rgb
from mobivision.data.records import ClassificationDataset, ImageRecord, unreadable_images
from mobivision.data.transforms import classification_eval_transform
from mobivision.errors import ConfigError, DataError
from mobivision.inference.predictor import as_rgb


def test_a_tiny_file_declaring_144_mpx_is_refused_from_its_header(tmp_path: Path) -> None:
    bomb = header_only_png(tmp_path / "bomb.png", 12000, 12000)
    assert bomb.stat().st_size < 100
    with pytest.raises(ImageTooLargeError) as caught:
        load_rgb(bomb)
    assert str(caught.value) == (
        f"image {bomb}: 12000 x 12000 pixels (144.0 Mpx) is over the 50 Mpx limit (max_image_mpx)"
    )
    assert caught.value.path == bomb
    # Under the limit the same kind of file gets as far as decoding, which fails for its missing pixel data.
    with pytest.raises(DataError, match="cannot read image"):
        load_rgb(header_only_png(tmp_path / "small.png", 100, 100))


def test_the_limit_is_configurable_and_exact(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.new("RGB", (2000, 1500), (10, 20, 30)).save(path)  # 3.0 Mpx
    with pytest.raises(ImageTooLargeError, match=r"2000 x 1500 pixels \(3\.0 Mpx\) is over the 2\.999 Mpx limit"):
        load_rgb(path, max_image_mpx=2.999)
    assert load_rgb(path, max_image_mpx=3.0).shape == (1500, 2000, 3)  # the limit itself is allowed


def test_a_limit_above_pillows_own_still_names_the_file(tmp_path: Path) -> None:
    # Pillow refuses more than 2 x Image.MAX_IMAGE_PIXELS (179 Mpx) itself, with its DecompressionBombError.
    bomb = header_only_png(tmp_path / "huge.png", 20000, 10000)
    with pytest.raises(ImageTooLargeError, match=r"image .*huge\.png: .*decompression bomb"):
        load_rgb(bomb, max_image_mpx=500)


@pytest.mark.parametrize("value", [math.nan, math.inf, 0, -1.0, "50", True, None])
def test_a_limit_that_is_not_a_finite_positive_number_is_a_config_error(value: object) -> None:
    with pytest.raises(ConfigError, match=r"data\.max_image_mpx: .* is not valid \(expected a finite number"):
        check_max_image_mpx(value, "data.max_image_mpx")  # type: ignore[arg-type]
    assert check_max_image_mpx(0.5) == 0.5


def test_predictor_inputs_of_every_type_are_bounded_before_they_are_copied(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.new("RGB", (300, 200), (10, 20, 30)).save(path)  # 0.06 Mpx
    with Image.open(path) as opened:
        inputs = {
            "a path": path,
            "a PIL image": opened,
            "an array": np.zeros((200, 300, 3), np.uint8),
            "a grey array": np.zeros((200, 300), np.uint8),
            "a float tensor": torch.zeros(3, 200, 300),
        }
        for kind, image in inputs.items():
            with pytest.raises(ImageTooLargeError, match=r"300 x 200 pixels \(0\.1 Mpx\) is over the 0\.05 Mpx"):
                as_rgb(image, "upload", max_image_mpx=0.05)
            assert as_rgb(image, "upload", max_image_mpx=0.06).shape == (200, 300, 3), kind


def test_scan_images_finds_images_over_the_limit(tmp_path: Path) -> None:
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    Image.new("RGB", (100, 100)).save(small)
    Image.new("RGB", (1000, 1000)).save(large)
    assert unreadable_images([small, large], max_image_mpx=0.5, workers=1) == [
        (large, "1000 x 1000 pixels (1.0 Mpx) is over the 0.5 Mpx limit (data.max_image_mpx)")
    ]
    assert unreadable_images([small, large], max_image_mpx=1.0, workers=2) == []


def test_training_images_over_the_limit_follow_on_error(tmp_path: Path) -> None:
    records = []
    for index, side in enumerate((16, 2000, 16)):
        path = tmp_path / f"{index}.png"
        Image.new("RGB", (side, side), (index * 60, 0, 0)).save(path)
        records.append(ImageRecord(image_id=str(index), path=path, label=0))
    transform = classification_eval_transform(resolution=8, mean=(0, 0, 0), std=(1, 1, 1), crop_pct=1.0)
    options = {"class_names": ["a"], "transform": transform, "max_image_mpx": 1.0}
    skipping = ClassificationDataset(records, on_error="skip", **options)
    assert [skipping[i]["meta"]["image_id"] for i in range(3)] == ["0", "2", "2"]  # 1 replaced by the next one
    with pytest.raises(ImageTooLargeError, match=r"1\.png: 2000 x 2000 pixels .* 1 Mpx limit \(data\.max_image_mpx\)"):
        ClassificationDataset(records, on_error="raise", **options)[1]
    with pytest.raises(ConfigError, match=r"data\.max_image_mpx: nan"):
        ClassificationDataset(records, **{**options, "max_image_mpx": math.nan})
