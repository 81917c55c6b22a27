"""Unit tests of ``mobivision.data.records``: boxes on records and cropping to them in ``ClassificationDataset``.

Records without a box (every reader but CUB / Stanford Dogs with ``use_boxes``) must give the whole image, as
before boxes existed; a boxed record is cropped to its box enlarged by ``crop_margin`` and clipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobivision.data.records import ClassificationDataset, ImageRecord, crop_to_box, load_rgb
from mobivision.data.transforms import classification_eval_transform, classification_train_transform
from mobivision.errors import ConfigError, DataError

IMAGE = np.arange(10 * 8 * 3, dtype=np.uint8).reshape(10, 8, 3)  # 10 rows, 8 columns


def _identity(image: np.ndarray) -> dict[str, np.ndarray]:
    return {"image": image}


@pytest.fixture
def image_file(tmp_path: Path) -> Path:
    path = tmp_path / "image.png"
    Image.fromarray(IMAGE).save(path)
    return path


@pytest.mark.parametrize(
    ("box", "margin", "rows", "columns"),
    [
        ((2, 3, 6, 7), 0.0, (3, 7), (2, 6)),  # whole pixels: exactly the box
        ((2.5, 3.2, 5.5, 6.9), 0.0, (3, 7), (2, 6)),  # fractions widen to whole pixels
        ((2, 3, 6, 7), 0.25, (2, 8), (1, 7)),  # 1 px (0.25 of 4) more on every side
        ((2, 3, 6, 7), 1.0, (0, 10), (0, 8)),  # clipped to the image
        ((-5, 8, 3, 20), 0.0, (8, 10), (0, 3)),  # a box partly outside
    ],
)
def test_crop_to_box(box: tuple, margin: float, rows: tuple[int, int], columns: tuple[int, int]) -> None:
    crop = crop_to_box(IMAGE, box, margin=margin)
    np.testing.assert_array_equal(crop, IMAGE[rows[0] : rows[1], columns[0] : columns[1]])


def test_box_outside_the_image_is_an_error() -> None:
    with pytest.raises(DataError, match=r"photo.jpg: box \(9.0, 1.0, 12.0, 4.0\) does not overlap the 8x10 image"):
        crop_to_box(IMAGE, (9.0, 1.0, 12.0, 4.0), source="photo.jpg")


def test_records_without_box_give_the_whole_image(image_file: Path) -> None:
    record = ImageRecord(image_id="a", path=image_file, label=1)
    assert record.box is None
    dataset = ClassificationDataset([record], class_names=["x", "y"], transform=_identity)
    sample = dataset[0]
    np.testing.assert_array_equal(sample["image"], IMAGE)
    assert sample["meta"] == {"image_id": "a", "path": str(image_file), "size": (10, 8)}
    assert sample["target"] == torch.tensor(1)


def test_boxed_record_is_cropped_before_the_transform(image_file: Path) -> None:
    record = ImageRecord(image_id="a", path=image_file, label=0, box=(2.0, 3.0, 6.0, 7.0))
    seen = []

    def transform(image: np.ndarray) -> dict[str, np.ndarray]:
        seen.append(image.shape)
        return {"image": image}

    sample = ClassificationDataset([record], class_names=["x"], transform=transform, crop_margin=0.25)[0]
    assert seen == [(6, 6, 3)]
    np.testing.assert_array_equal(sample["image"], IMAGE[2:8, 1:7])
    assert sample["meta"]["size"] == (10, 8)  # the original image's


@pytest.mark.parametrize("train", [True, False])
def test_crop_feeds_the_albumentations_presets(image_file: Path, train: bool) -> None:
    preset = classification_train_transform if train else classification_eval_transform
    transform = preset(resolution=16, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    record = ImageRecord(image_id="a", path=image_file, label=0, box=(1.5, 2.0, 6.0, 9.0))
    sample = ClassificationDataset([record], class_names=["x"], transform=transform, crop_margin=0.1)[0]
    assert sample["image"].shape == (3, 16, 16) and sample["image"].dtype == torch.float32


def test_negative_crop_margin_is_refused() -> None:
    with pytest.raises(ConfigError, match="crop_margin"):
        ClassificationDataset([], class_names=[], transform=_identity, crop_margin=-0.1)


def test_attribute_records_give_float_targets_and_keep_unknowns(image_file: Path) -> None:
    """Multi-label records (face attributes) carry one float per attribute; NaN (unknown) survives."""
    records = [ImageRecord("a", image_file, (1.0, 0.0, float("nan"))), ImageRecord("b", image_file, 2)]
    dataset = ClassificationDataset(records, class_names=["x", "y", "z"], transform=_identity)
    attributes, label = dataset[0]["target"], dataset[1]["target"]
    assert attributes.dtype == torch.float32 and attributes[:2].tolist() == [1.0, 0.0]
    assert torch.isnan(attributes[2])
    assert label.dtype == torch.long and label.item() == 2


def _saved(image: Image.Image, path: Path, **options) -> Path:
    image.save(path, **options)
    return path


def test_sixteen_bit_grey_is_scaled_to_eight_bits_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 30000], [60000, 65535, 128]], dtype=np.uint16)
    rgb = load_rgb(_saved(Image.fromarray(values), tmp_path / "depth.png"))
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    np.testing.assert_array_equal(rgb[..., 0], [[0, 1, 117], [233, 255, 0]])
    assert (rgb[..., 0] == rgb[..., 2]).all()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (40, 20), (200, 0, 0))
    image.paste((0, 0, 200), (0, 0, 10, 20))  # blue left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: rotate 90 degrees clockwise to view
    rgb = load_rgb(_saved(image, tmp_path / "turned.jpg", exif=exif, quality=95))
    assert rgb.shape == (40, 20, 3)  # upright: 20 wide, 40 high
    assert rgb[2, 10, 2] > 150 and rgb[-3, 10, 0] > 150  # the blue edge is now at the top


def test_transparency_is_composited_over_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (4, 2), (0, 0, 0, 0))  # fully transparent black
    rgba.putpixel((0, 0), (10, 20, 30, 255))
    out = load_rgb(_saved(rgba, tmp_path / "alpha.png"))
    assert tuple(out[0, 0]) == (10, 20, 30) and tuple(out[1, 3]) == (255, 255, 255)
    palette = Image.new("P", (3, 1), 0)
    palette.putpalette([0, 0, 0, 50, 100, 150] + [0] * 762)
    palette.putpixel((1, 0), 1)
    out = load_rgb(_saved(palette, tmp_path / "palette.png", transparency=0))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (50, 100, 150)
    grey_alpha = Image.new("LA", (2, 1), (0, 0))
    grey_alpha.putpixel((1, 0), (80, 255))
    out = load_rgb(_saved(grey_alpha, tmp_path / "la.png"))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[0, 1]) == (80, 80, 80)


def test_cmyk_and_a_truncated_file(tmp_path: Path) -> None:
    cmyk = load_rgb(_saved(Image.new("CMYK", (3, 3), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95))
    assert cmyk.shape == (3, 3, 3) and cmyk[1, 1, 0] > 200 and cmyk[1, 1, 1] < 60  # red
    whole = _saved(Image.new("RGB", (64, 64), (1, 2, 3)), tmp_path / "whole.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(whole[: len(whole) // 3])
    with pytest.raises(DataError, match=r"cannot read image .*cut\.jpg"):
        load_rgb(tmp_path / "cut.jpg")


def test_unreadable_training_images_are_named_and_replaced_with_skip_and_stop_the_run_with_raise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    records = []
    for index in range(4):
        path = tmp_path / f"{index}.png"
        Image.new("RGB", (8, 8), (index * 60, 0, 0)).save(path)
        records.append(ImageRecord(image_id=str(index), path=path, label=index % 2))
    (tmp_path / "1.png").write_bytes(b"\x89PNG broken")
    transform = classification_eval_transform(resolution=8, mean=(0, 0, 0), std=(1, 1, 1), crop_pct=1.0)
    skipping = ClassificationDataset(records, class_names=["a", "b"], transform=transform, on_error="skip")
    with caplog.at_level("WARNING", logger="mobivision"):
        samples = [skipping[i] for i in range(4)] + [skipping[1]]
    assert [s["meta"]["image_id"] for s in samples] == ["0", "2", "2", "3", "2"]  # 1 replaced by the next one
    assert [r.message for r in caplog.records if "1.png" in r.message] and len(caplog.records) == 1  # named once
    raising = ClassificationDataset(records, class_names=["a", "b"], transform=transform)
    with pytest.raises(DataError, match=r"cannot read image .*1\.png"):
        raising[1]
    for record in records:
        record.path.write_bytes(b"nothing")
    with pytest.raises(DataError, match="none of the 4 images of this split can be read"):
        skipping[0]
    with pytest.raises(DataError, match="on_error must be one of"):
        ClassificationDataset(records, class_names=["a"], transform=transform, on_error="ignore")
