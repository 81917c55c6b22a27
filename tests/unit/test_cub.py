"""Unit tests of ``mobivision.data.cub``: CUB-200-2011's official lists read into records.

The fixture writes a tiny ``CUB_200_2011/`` tree in the official format: ``images.txt``,
``image_class_labels.txt``, ``train_test_split.txt``, ``classes.txt`` (``001.Black_footed_Albatross`` style names)
and ``bounding_boxes.txt`` (float ``x y width height``), with 3 classes of 3 JPEG images each under
``images/<class folder>/``; the first two images of each class are training images.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobivision.data.cub import read_cub
from mobivision.data.records import ClassificationDataset
from mobivision.errors import ConfigError, DataError

FOLDERS = ("001.Black_footed_Albatross", "002.Laysan_Albatross", "003.Sooty_Albatross")
NAMES = ["Black_footed_Albatross", "Laysan_Albatross", "Sooty_Albatross"]
WIDTH, HEIGHT = 40, 30


def _box(image_id: int) -> tuple[float, float, float, float]:
    """``x y width height`` of image ``image_id``'s bird, different for every image."""
    return (2.0 + image_id, 3.0 + image_id / 2, 20.0 - image_id, 12.5)


def write_cub(root: Path) -> Path:
    """A 9-image CUB_200_2011 tree; image ``i`` (1-based) has class ``(i - 1) // 3 + 1``, test if ``i % 3 == 0``."""
    rng = np.random.default_rng(0)
    images, labels, split, boxes = [], [], [], []
    for image_id in range(1, 10):
        folder = FOLDERS[(image_id - 1) // 3]
        relative = f"{folder}/{folder[4:]}_{image_id:04d}_{100 + image_id}.jpg"
        (root / "images" / folder).mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / relative, quality=95)
        images.append(f"{image_id} {relative}")
        labels.append(f"{image_id} {(image_id - 1) // 3 + 1}")
        split.append(f"{image_id} {0 if image_id % 3 == 0 else 1}")
        boxes.append(f"{image_id} " + " ".join(f"{v:.1f}" for v in _box(image_id)))
    (root / "classes.txt").write_text("".join(f"{k + 1} {name}\n" for k, name in enumerate(FOLDERS)))
    for name, lines in (
        ("images.txt", images),
        ("image_class_labels.txt", labels),
        ("train_test_split.txt", split),
        ("bounding_boxes.txt", boxes),
    ):
        (root / name).write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def cub(tmp_path: Path) -> Path:
    return write_cub(tmp_path / "CUB_200_2011")


def _replace_line(file: Path, line: int, text: str | None) -> None:
    """Replace (or with ``None`` delete) 1-based ``line`` of ``file``."""
    lines = file.read_text().splitlines()
    if text is None:
        del lines[line - 1]
    else:
        lines[line - 1] = text
    file.write_text("\n".join(lines) + "\n")


def test_train_split_records_labels_and_names(cub: Path) -> None:
    records, names = read_cub(cub, split="train")
    assert names == NAMES
    assert [r.image_id for r in records] == ["1", "2", "4", "5", "7", "8"]
    assert [r.label for r in records] == [0, 0, 1, 1, 2, 2]
    assert records[2].path == cub / "images" / "002.Laysan_Albatross" / "Laysan_Albatross_0004_104.jpg"
    assert all(r.path.is_file() and r.box is None for r in records)


def test_test_split_is_the_rest(cub: Path) -> None:
    records, names = read_cub(cub, split="test")
    assert names == NAMES
    assert [(r.image_id, r.label) for r in records] == [("3", 0), ("6", 1), ("9", 2)]
    train_ids = {r.image_id for r in read_cub(cub, split="train")[0]}
    assert train_ids.isdisjoint(r.image_id for r in records)


def test_unknown_split_is_refused(cub: Path) -> None:
    with pytest.raises(ConfigError, match="val"):
        read_cub(cub, split="val")


def test_boxes_become_xyxy(cub: Path) -> None:
    records, _ = read_cub(cub, split="train", use_boxes=True)
    for record in records:
        x, y, w, h = _box(int(record.image_id))
        assert record.box == pytest.approx((x, y, x + w, y + h))


def test_boxes_are_not_needed_without_use_boxes(cub: Path) -> None:
    (cub / "bounding_boxes.txt").unlink()
    assert len(read_cub(cub, split="train")[0]) == 6
    with pytest.raises(DataError, match=r"bounding_boxes\.txt"):
        read_cub(cub, split="train", use_boxes=True)


def _identity(image: np.ndarray) -> dict[str, np.ndarray]:
    return {"image": image}


def test_dataset_crops_to_the_box(cub: Path) -> None:
    records, names = read_cub(cub, split="test", use_boxes=True)
    record = records[1]  # image 6: box x 8, y 6, w 14, h 12.5 -> x 8..22, y 6..18.5
    original = np.asarray(Image.open(record.path).convert("RGB"))
    sample = ClassificationDataset(records, class_names=names, transform=_identity)[1]
    assert sample["image"].shape == (13, 14, 3)  # rows 6..18 (18.5 widened to 19), columns 8..21
    np.testing.assert_array_equal(sample["image"], original[6:19, 8:22])
    assert sample["meta"]["size"] == (HEIGHT, WIDTH)
    assert int(sample["target"]) == 1

    wide = ClassificationDataset(records, class_names=names, transform=_identity, crop_margin=0.5)[1]
    # 0.5 of the box on each side: x 1..29, y -0.25..24.75 -> clipped to rows 0..25, columns 1..29
    np.testing.assert_array_equal(wide["image"], original[0:25, 1:29])

    plain, _ = read_cub(cub, split="test")
    assert ClassificationDataset(plain, class_names=names, transform=_identity)[1]["image"].shape == (HEIGHT, WIDTH, 3)


@pytest.mark.parametrize(
    ("name", "line", "text"),
    [
        ("images.txt", 4, "four 002.Laysan_Albatross/x.jpg"),
        ("images.txt", 5, "5"),
        ("image_class_labels.txt", 2, "2 one"),
        ("train_test_split.txt", 7, "7 2"),
        ("classes.txt", 2, "2 Laysan Albatross"),
        ("bounding_boxes.txt", 3, "3 1.0 2.0 3.0"),
    ],
)
def test_malformed_line_names_file_and_line(cub: Path, name: str, line: int, text: str) -> None:
    _replace_line(cub / name, line, text)
    with pytest.raises(DataError, match=f"{re.escape(name)}:{line}: expected"):
        read_cub(cub, split="train", use_boxes=True, on_error="skip")


def test_duplicated_id_is_an_error(cub: Path) -> None:
    _replace_line(cub / "image_class_labels.txt", 5, "4 2")
    with pytest.raises(DataError, match=r"image_class_labels\.txt:5: id 4 appears a second time"):
        read_cub(cub, split="train")


@pytest.mark.parametrize("name", ["image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt"])
def test_id_missing_from_one_list(cub: Path, name: str) -> None:
    _replace_line(cub / name, 4, None)
    with pytest.raises(DataError, match=rf"image id 4 listed in images\.txt but missing from {re.escape(name)}"):
        read_cub(cub, split="test", use_boxes=True)


def test_id_missing_from_images_list(cub: Path) -> None:
    with open(cub / "train_test_split.txt", "a") as f:
        f.write("10 1\n")
    with pytest.raises(DataError, match=r"image id 10 listed in train_test_split\.txt but missing from images\.txt"):
        read_cub(cub, split="train", on_error="skip")


def test_class_outside_classes_txt(cub: Path, caplog: pytest.LogCaptureFixture) -> None:
    _replace_line(cub / "image_class_labels.txt", 2, "2 7")
    with pytest.raises(DataError, match=r"image 2: class 7 .* outside classes\.txt 1\.\.3"):
        read_cub(cub, split="train")
    with caplog.at_level(logging.WARNING, logger="mobivision"):
        records, _ = read_cub(cub, split="train", on_error="skip")
    assert [r.image_id for r in records] == ["1", "4", "5", "7", "8"]
    assert "skipped 1 bad records" in caplog.text and "class 7" in caplog.text


def test_missing_image_raises_or_is_skipped_and_reported(cub: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = cub / "images" / "002.Laysan_Albatross" / "Laysan_Albatross_0005_105.jpg"
    missing.unlink()
    with pytest.raises(DataError, match=f"image 5: image file not found: {re.escape(str(missing))}"):
        read_cub(cub, split="train")
    with caplog.at_level(logging.WARNING, logger="mobivision"):
        records, _ = read_cub(cub, split="train", on_error="skip")
    assert [r.image_id for r in records] == ["1", "2", "4", "7", "8"]
    assert "skipped 1 bad records" in caplog.text and str(missing) in caplog.text
    assert len(read_cub(cub, split="test")[0]) == 3  # the other split does not need it


def test_empty_box_is_a_bad_record(cub: Path) -> None:
    _replace_line(cub / "bounding_boxes.txt", 7, "7 3.0 4.0 0.0 5.0")
    with pytest.raises(DataError, match="image 7: empty box"):
        read_cub(cub, split="train", use_boxes=True)
    records, _ = read_cub(cub, split="train", use_boxes=True, on_error="skip")
    assert "7" not in [r.image_id for r in records] and len(records) == 5


@pytest.mark.parametrize(
    ("name", "line"),
    [
        ("classes.txt", 2),
        ("images.txt", 1),
        ("image_class_labels.txt", 9),
        ("train_test_split.txt", 4),
        ("bounding_boxes.txt", 5),
    ],
)
def test_a_list_saved_as_latin_1_names_file_line_and_column(cub: Path, name: str, line: int) -> None:
    lines = (cub / name).read_text().splitlines()
    lines[line - 1] = lines[line - 1][:2] + "é" + lines[line - 1][2:]
    (cub / name).write_bytes("\n".join(lines).encode("latin-1"))
    with pytest.raises(DataError) as info:
        read_cub(cub, split="train", use_boxes=True, on_error="skip")
    assert str(info.value) == f"{cub / name}:{line}: not UTF-8 text (byte 0xe9 at column 3); save the file as UTF-8"


@pytest.mark.parametrize("name", ["images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt"])
def test_missing_metadata_file_names_path_and_layout(cub: Path, name: str) -> None:
    (cub / name).unlink()
    with pytest.raises(DataError, match="CUB_200_2011/ folder") as info:
        read_cub(cub, split="train")
    assert str(cub / name) in str(info.value)


def test_parent_folder_as_root_points_to_the_right_one(cub: Path) -> None:
    with pytest.raises(DataError, match=f"found {re.escape(str(cub))}, use that as root"):
        read_cub(cub.parent, split="train")


def test_bad_on_error_is_refused(cub: Path) -> None:
    with pytest.raises(DataError, match="on_error"):
        read_cub(cub, split="train", on_error="ignore")


def test_no_image_left_is_an_error(cub: Path) -> None:
    for path in (cub / "images").rglob("*.jpg"):
        path.unlink()
    with pytest.raises(DataError, match="no usable images"):
        read_cub(cub, split="test", on_error="skip")
