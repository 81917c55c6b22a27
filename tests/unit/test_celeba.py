"""Unit tests of ``mobivision.data.celeba``: CelebA's official lists read into records, and its face boxes as detection
data.

The fixture writes a tiny CelebA folder in the exact official formats: ``list_attr_celeba.txt`` (count, the 40
names with the trailing space, values right-aligned as ``-1  1``), ``list_eval_partition.txt`` (no header),
``list_bbox_celeba.txt`` (count, ``image_id x_1 y_1 width height`` header) and 8 small JPEGs in both
``img_align_celeba/`` and ``img_celeba/``. The partition interleaves the splits, so order is tested too.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobivision.data.celeba import (
    CELEBA_ATTRIBUTES,
    CELEBA_SPLITS,
    read_celeba,
    read_celeba_faces,
    select_attributes,
)
from mobivision.data.records import ClassificationDataset
from mobivision.errors import ConfigError, DataError

SPLIT_OF = [0, 0, 1, 0, 2, 0, 1, 2]
"""Partition number of image i + 1 (``000001.jpg`` is index 0)."""
FILES = [f"{i:06d}.jpg" for i in range(1, len(SPLIT_OF) + 1)]


def _value(image: int, attribute: int) -> int:
    """+1 / -1 of attribute ``attribute`` (0-based) of image ``image`` (1-based), a different pattern per image."""
    return 1 if (7 * image + 3 * attribute) % 5 < 2 else -1


def _box(image: int) -> tuple[int, int, int, int]:
    return (2 + image, 1 + image // 2, 10 + image, 12)


def write_celeba(root: Path, names: tuple[str, ...] = CELEBA_ATTRIBUTES) -> Path:
    """The official files for 8 images under ``root`` (see the module docstring)."""
    rng = np.random.default_rng(0)
    for folder in ("img_align_celeba", "img_celeba"):
        (root / folder).mkdir(parents=True)
        for file in FILES:
            Image.fromarray(rng.integers(0, 256, size=(22, 18, 3), dtype=np.uint8)).save(root / folder / file)
    attr = [f"{len(FILES)}\n", " ".join(names) + " \n"]
    attr += [f"{file} " + " ".join(f"{_value(i, k):2d}" for k in range(len(names))) + "\n" for i, file in _images()]
    (root / "list_attr_celeba.txt").write_text("".join(attr))
    partition = [f"{file} {SPLIT_OF[i - 1]}\n" for i, file in _images()]
    (root / "list_eval_partition.txt").write_text("".join(partition))
    bbox = [f"{len(FILES)}\n", "image_id x_1 y_1 width height\n"]
    bbox += [f"{file}" + "".join(f"{v:>5d}" for v in _box(i)) + "\n" for i, file in _images()]
    (root / "list_bbox_celeba.txt").write_text("".join(bbox))
    return root


def _images() -> list[tuple[int, str]]:
    return list(enumerate(FILES, start=1))


def _labels(image: int, columns: list[int]) -> tuple[float, ...]:
    return tuple(1.0 if _value(image, k) == 1 else 0.0 for k in columns)


@pytest.fixture
def celeba(tmp_path: Path) -> Path:
    return write_celeba(tmp_path / "celeba")


def _replace_line(file: Path, line: int, text: str | None) -> None:
    """Replace (or with ``None`` delete) 1-based ``line`` of ``file``."""
    lines = file.read_text().splitlines()
    if text is None:
        del lines[line - 1]
    else:
        lines[line - 1] = text
    file.write_text("\n".join(lines) + "\n")


def _attr_line(image: int, values: list[int] | None = None) -> str:
    values = values if values is not None else [_value(image, k) for k in range(40)]
    return f"{image:06d}.jpg " + " ".join(f"{v:2d}" for v in values)


def test_attribute_names_and_splits() -> None:
    assert len(CELEBA_ATTRIBUTES) == 40 and len(set(CELEBA_ATTRIBUTES)) == 40
    assert CELEBA_ATTRIBUTES[:3] == ("5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive")
    assert CELEBA_ATTRIBUTES[20] == "Male" and CELEBA_ATTRIBUTES[31] == "Smiling" and CELEBA_ATTRIBUTES[-1] == "Young"
    assert CELEBA_SPLITS == {"train": 0, "val": 1, "test": 2}


@pytest.mark.parametrize(("split", "number"), list(CELEBA_SPLITS.items()))
def test_each_split_in_partition_order_with_labels(celeba: Path, split: str, number: int) -> None:
    records, names = read_celeba(celeba, split=split)
    assert names == list(CELEBA_ATTRIBUTES)
    expected = [i for i, _ in _images() if SPLIT_OF[i - 1] == number]
    assert [r.image_id for r in records] == [f"{i:06d}.jpg" for i in expected]
    assert [r.label for r in records] == [_labels(i, list(range(40))) for i in expected]
    assert all(r.path == celeba / "img_align_celeba" / r.image_id and r.box is None for r in records)
    assert all(isinstance(v, float) for r in records for v in r.label)


def test_splits_partition_the_images(celeba: Path) -> None:
    ids = [r.image_id for split in CELEBA_SPLITS for r in read_celeba(celeba, split=split)[0]]
    assert sorted(ids) == FILES


def test_attribute_subset_by_name_in_the_given_order(celeba: Path) -> None:
    wanted = ["Smiling", "Male", "5_o_Clock_Shadow"]
    records, names = read_celeba(celeba, split="train", attributes=wanted)
    assert names == wanted
    columns = [31, 20, 0]
    assert [r.label for r in records] == [_labels(i, columns) for i in (1, 2, 4, 6)]
    assert {r.label for r in records} != {_labels(1, columns)}, "the fixture's labels differ between images"


def test_unknown_attribute_names_the_file_and_suggests(celeba: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"unknown attribute 'Smilling'.*list_attr_celeba\.txt.*did you mean 'Smiling'"
    ):
        read_celeba(celeba, split="train", attributes=["Male", "Smilling"])
    with pytest.raises(ConfigError, match="did you mean 'Eyeglasses'"):
        read_celeba(celeba, split="train", attributes=["eyeglasses"])


def test_select_attributes() -> None:
    available = ["Bald", "Male", "Smiling"]
    assert select_attributes(available, None, source="x") == [0, 1, 2]
    assert select_attributes(available, ["Smiling", "Bald"], source="x") == [2, 0]
    assert select_attributes(available, "Male", source="x") == [1]
    with pytest.raises(ConfigError, match=r"'Zzz': not among the 3 in my\.csv; available: Bald, Male, Smiling"):
        select_attributes(available, ["Zzz"], source="my.csv")
    with pytest.raises(ConfigError, match=r"\['Male'\] are selected more than once"):
        select_attributes(available, ["Male", "Bald", "Male"], source="x")
    with pytest.raises(ConfigError, match="empty"):
        select_attributes(available, [], source="x")


def test_in_the_wild_records_carry_boxes(celeba: Path) -> None:
    records, _ = read_celeba(celeba, split="test", images="in_the_wild", attributes=["Young"])
    assert [r.image_id for r in records] == ["000005.jpg", "000008.jpg"]
    for record in records:
        x, y, w, h = _box(int(record.image_id[:6]))
        assert record.box == (x, y, x + w, y + h)
        assert record.path == celeba / "img_celeba" / record.image_id


def test_in_the_wild_empty_box_is_a_bad_record(celeba: Path) -> None:
    _replace_line(celeba / "list_bbox_celeba.txt", 2 + 4, "000004.jpg    5   3   0  12")
    with pytest.raises(DataError, match=r"000004\.jpg: empty box x=5 y=3 width=0 height=12"):
        read_celeba(celeba, split="train", images="in_the_wild")
    records, _ = read_celeba(celeba, split="train", images="in_the_wild", on_error="skip")
    assert [r.image_id for r in records] == ["000001.jpg", "000002.jpg", "000006.jpg"]
    assert len(read_celeba(celeba, split="train")[0]) == 4, "aligned images ignore the box list"


def test_in_the_wild_needs_the_box_list(celeba: Path) -> None:
    (celeba / "list_bbox_celeba.txt").unlink()
    assert len(read_celeba(celeba, split="val")[0]) == 2
    with pytest.raises(DataError, match=r"CelebA file not found: .*list_bbox_celeba\.txt"):
        read_celeba(celeba, split="val", images="in_the_wild")


def test_box_list_missing_an_image_is_an_error(celeba: Path) -> None:
    _replace_line(celeba / "list_bbox_celeba.txt", 2 + 7, None)
    _replace_line(celeba / "list_bbox_celeba.txt", 1, "7")
    with pytest.raises(DataError, match=r"list_bbox_celeba\.txt: no box for 000007\.jpg"):
        read_celeba(celeba, split="val", images="in_the_wild")


def test_box_list_header_is_checked(celeba: Path) -> None:
    _replace_line(celeba / "list_bbox_celeba.txt", 2, "000001.jpg 1 2 3 4")
    with pytest.raises(DataError, match=r"list_bbox_celeba\.txt:2: expected the header 'image_id x_1 y_1"):
        read_celeba(celeba, split="val", images="in_the_wild")


def test_wrong_number_of_values_names_file_and_line(celeba: Path) -> None:
    _replace_line(celeba / "list_attr_celeba.txt", 5, _attr_line(3)[:-3])  # drops the last value
    with pytest.raises(
        DataError, match=r"list_attr_celeba\.txt:5: expected 41 values: file name \+ 40 attributes, got 40"
    ):
        read_celeba(celeba, split="test", on_error="skip")


def test_partition_file_missing_from_attributes(celeba: Path) -> None:
    with open(celeba / "list_eval_partition.txt", "a") as f:
        f.write("000009.jpg 2\n")
    with pytest.raises(
        DataError, match=r"list_eval_partition\.txt:9: 000009\.jpg is not listed in .*list_attr_celeba\.txt"
    ):
        read_celeba(celeba, split="train")


def test_attribute_file_missing_from_partition(celeba: Path) -> None:
    _replace_line(celeba / "list_eval_partition.txt", 6, None)
    with pytest.raises(DataError, match=r"list_attr_celeba\.txt:8: 000006\.jpg listed here but in no split"):
        read_celeba(celeba, split="test")


@pytest.mark.parametrize("value", ["0", "2", "yes", "1.0"])
def test_bad_value_names_file_line_and_attribute(celeba: Path, value: str) -> None:
    values = [_value(2, k) for k in range(40)]
    line = _attr_line(2, values).split()
    line[3] = value  # the third attribute
    _replace_line(celeba / "list_attr_celeba.txt", 4, "  ".join(line))
    with pytest.raises(
        DataError, match=rf"list_attr_celeba\.txt:4: 000002\.jpg: attribute Attractive is '{re.escape(value)}'"
    ):
        read_celeba(celeba, split="val")


def test_count_on_line_one_must_match(celeba: Path) -> None:
    _replace_line(celeba / "list_attr_celeba.txt", 1, "9")
    with pytest.raises(DataError, match=r"list_attr_celeba\.txt:1: says 9 images but the file lists 8"):
        read_celeba(celeba, split="train")
    _replace_line(celeba / "list_attr_celeba.txt", 1, "202599 images")
    with pytest.raises(DataError, match=r"list_attr_celeba\.txt:1: expected the number of images"):
        read_celeba(celeba, split="train")


def test_names_line_must_hold_names(celeba: Path) -> None:
    _replace_line(celeba / "list_attr_celeba.txt", 2, None)  # a header-less file: line 2 is data
    with pytest.raises(DataError, match=r"list_attr_celeba\.txt:2: expected the attribute names on line 2"):
        read_celeba(celeba, split="train")


@pytest.mark.parametrize(
    ("name", "line", "text", "first"),
    [
        ("list_attr_celeba.txt", 6, _attr_line(2), 4),
        ("list_eval_partition.txt", 5, "000002.jpg 0", 2),
    ],
)
def test_duplicated_file_is_an_error(celeba: Path, name: str, line: int, text: str, first: int) -> None:
    _replace_line(celeba / name, line, text)
    with pytest.raises(DataError, match=rf"{re.escape(name)}:{line}: 000002\.jpg appears a second time .*line {first}"):
        read_celeba(celeba, split="train")


@pytest.mark.parametrize(
    ("name", "line"), [("list_eval_partition.txt", 3), ("list_attr_celeba.txt", 2), ("list_bbox_celeba.txt", 10)]
)
def test_a_list_saved_as_latin_1_names_file_line_and_column(celeba: Path, name: str, line: int) -> None:
    lines = (celeba / name).read_text().splitlines()
    lines[line - 1] = lines[line - 1][:4] + "é" + lines[line - 1][4:]
    (celeba / name).write_bytes("\n".join(lines).encode("latin-1"))
    with pytest.raises(DataError) as info:
        read_celeba(celeba, split="train", images="in_the_wild", on_error="skip")
    assert str(info.value) == f"{celeba / name}:{line}: not UTF-8 text (byte 0xe9 at column 5); save the file as UTF-8"


def test_bad_partition_number(celeba: Path) -> None:
    _replace_line(celeba / "list_eval_partition.txt", 3, "000003.jpg 3")
    with pytest.raises(DataError, match=r"list_eval_partition\.txt:3: expected '<file> <0\|1\|2>'"):
        read_celeba(celeba, split="train")


def test_missing_image_raises_or_is_skipped_and_reported(celeba: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = celeba / "img_align_celeba" / "000004.jpg"
    missing.unlink()
    with pytest.raises(DataError, match=f"000004.jpg: image file not found: {re.escape(str(missing))}"):
        read_celeba(celeba, split="train")
    with caplog.at_level(logging.WARNING, logger="mobivision"):
        records, _ = read_celeba(celeba, split="train", on_error="skip")
    assert [r.image_id for r in records] == ["000001.jpg", "000002.jpg", "000006.jpg"]
    assert "skipped 1 bad records" in caplog.text and str(missing) in caplog.text
    assert len(read_celeba(celeba, split="test")[0]) == 2, "the other splits do not need it"


def test_no_usable_image_is_an_error(celeba: Path) -> None:
    for file in ("000003.jpg", "000007.jpg"):
        (celeba / "img_align_celeba" / file).unlink()
    with pytest.raises(DataError, match="no usable images in the CelebA val split"):
        read_celeba(celeba, split="val", on_error="skip")


@pytest.mark.parametrize("name", ["list_attr_celeba.txt", "list_eval_partition.txt"])
def test_missing_metadata_file_names_path_and_layout(celeba: Path, name: str) -> None:
    (celeba / name).unlink()
    with pytest.raises(DataError, match="root must be the folder holding") as info:
        read_celeba(celeba, split="train")
    assert str(celeba / name) in str(info.value)


def test_parent_folder_as_root_points_to_the_right_one(celeba: Path) -> None:
    with pytest.raises(DataError, match=f"use {re.escape(str(celeba))} as root"):
        read_celeba(celeba.parent, split="train")


def test_missing_image_folder_and_kaggle_nesting(celeba: Path) -> None:
    (celeba / "img_align_celeba").rename(celeba / "inner")
    with pytest.raises(DataError, match=r"image folder not found: .*img_align_celeba \(unpack img_align_celeba\.zip"):
        read_celeba(celeba, split="train")
    (celeba / "img_align_celeba").mkdir()
    (celeba / "inner").rename(celeba / "img_align_celeba" / "img_align_celeba")
    with pytest.raises(DataError, match="one folder too deep"):
        read_celeba(celeba, split="train")


def test_unknown_split_or_images_value(celeba: Path) -> None:
    with pytest.raises(ConfigError, match=r"got 'valid'; did you mean 'val'\?"):
        read_celeba(celeba, split="valid")
    with pytest.raises(ConfigError, match="images must be one of"):
        read_celeba(celeba, split="val", images="wild")
    with pytest.raises(DataError, match="on_error"):
        read_celeba(celeba, split="val", on_error="ignore")


def test_synthetic_set_with_fewer_attributes_and_loose_spacing(tmp_path: Path) -> None:
    root = write_celeba(tmp_path / "mini", names=("Bald", "Male", "Smiling"))
    attr = root / "list_attr_celeba.txt"
    _replace_line(attr, 3, "000001.jpg\t1     -1  1   ")  # tabs and runs of spaces separate values
    attr.write_bytes(attr.read_bytes().replace(b"\n", b"\r\n"))
    records, names = read_celeba(root, split="train")
    assert names == ["Bald", "Male", "Smiling"]
    assert records[0].label == (1.0, 0.0, 1.0)
    assert records[1].label == _labels(2, [0, 1, 2])
    _replace_line(attr, 4, "000002.jpg 1 -1")
    with pytest.raises(DataError, match=r":4: expected 4 values: file name \+ 3 attributes, got 3"):
        read_celeba(root, split="train")


def test_dataset_gives_float_attribute_targets(celeba: Path) -> None:
    records, names = read_celeba(celeba, split="val", attributes=["Smiling", "Young"])
    sample = ClassificationDataset(records, class_names=names, transform=lambda image: {"image": image})[0]
    assert sample["target"].dtype == torch.float32
    assert sample["target"].tolist() == list(_labels(3, [31, 39]))
    assert sample["image"].shape == (22, 18, 3) and sample["meta"]["image_id"] == "000003.jpg"


def test_face_boxes_are_read_back_as_detection_records_with_the_attributes_beside(celeba: Path, tmp_path: Path) -> None:
    json_file = tmp_path / "converted" / "celeba_faces_train.json"
    faces = read_celeba_faces(celeba, split="train", annotation_file=json_file, attributes=["Smiling", "Young"])
    train = [(i, file) for i, file in _images() if SPLIT_OF[i - 1] == 0]
    assert json_file.is_file() and (json_file.parent / ".celeba_faces_train.json.lock").exists()
    assert faces.detection.annotation_file == json_file
    assert faces.detection.class_names == ["face"] and faces.detection.category_ids == [1]
    assert [r.path for r in faces.detection.records] == [celeba / "img_celeba" / file for _, file in train]
    for record, (i, _) in zip(faces.detection.records, train, strict=True):
        x, y, w, h = _box(i)
        expected = [x, y, min(x + w, record.width), min(y + h, record.height)]  # the COCO reader clips to the image
        assert record.boxes.tolist() == [expected] and record.labels.tolist() == [1]
    assert faces.attribute_names == ["Smiling", "Young"]
    assert {name: label.tolist() for name, label in faces.attributes.items()} == {
        file: list(_labels(i, [31, 39])) for i, file in train
    }
    assert all(label.dtype == torch.float32 for label in faces.attributes.values())
