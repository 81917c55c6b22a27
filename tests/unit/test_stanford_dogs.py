"""Unit tests of ``mobivision.data.stanford_dogs``: the official ``.mat`` lists and VOC annotations.

The fixture mirrors the real files. ``lists/{train,test}_list.mat`` are MATLAB v5 files, written here with
``scipy.io.savemat`` from numpy object arrays so that ``loadmat`` returns what it returns for the originals:
``file_list`` and ``annotation_list`` as (N, 1) object arrays whose cells are 1-element ``<U`` arrays
(``array(['n02085620-Chihuahua/n02085620_10074.jpg'])``; ``annotation_list`` the same paths without ``.jpg``)
and ``labels`` as an (N, 1) float64 column of 1-based breeds. ``Images/<synset>-<breed>/<stem>.jpg`` are small
JPEGs and ``Annotation/<synset>-<breed>/<stem>`` are extension-less PASCAL VOC XML files like the originals
(``<annotation><size>...<object><name><bndbox><xmin>...``). Three breeds, three images each, two for training;
one training image holds two dogs.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat, savemat

from mobivision.data.records import ClassificationDataset
from mobivision.data.stanford_dogs import read_stanford_dogs
from mobivision.errors import ConfigError, DataError

FOLDERS = ("n02085620-Chihuahua", "n02085782-Japanese_spaniel", "n02113799-standard_poodle")
NAMES = ["Chihuahua", "Japanese_spaniel", "standard_poodle"]
WIDTH, HEIGHT = 48, 36
TWO_DOGS = "n02085782-Japanese_spaniel/n02085782_1002"  # a small dog, then a larger one


def _files(split: str) -> list[tuple[str, int]]:
    """``(stem path, 1-based label)`` of a split; images 1000, 1001 are training, 1002 test (except breed 2)."""
    picks = {"train": (1000, 1001), "test": (1002,)}[split]
    items = []
    for label, folder in enumerate(FOLDERS, start=1):
        for number in picks:
            if label == 2:  # breed 2's training images are 1001 and 1002, its test image 1000
                number = {1000: 1001, 1001: 1002, 1002: 1000}[number]
            items.append((f"{folder}/{folder.split('-')[0]}_{number}", label))
    return items


def _boxes(stem: str) -> list[tuple[int, int, int, int]]:
    if stem == TWO_DOGS:
        return [(1, 2, 11, 12), (20, 5, 45, 30)]
    offset = int(stem[-1])
    return [(3 + offset, 4, 30 + offset, 33)]


def _annotation(stem: str, boxes: list[tuple[int, int, int, int]]) -> str:
    folder, name = stem.split("/")
    objects = "".join(
        f"\t<object>\n\t\t<name>{folder.split('-', 1)[1]}</name>\n\t\t<pose>Unspecified</pose>\n"
        f"\t\t<truncated>0</truncated>\n\t\t<difficult>0</difficult>\n\t\t<bndbox>\n"
        f"\t\t\t<xmin>{x0}</xmin>\n\t\t\t<ymin>{y0}</ymin>\n\t\t\t<xmax>{x1}</xmax>\n\t\t\t<ymax>{y1}</ymax>\n"
        f"\t\t</bndbox>\n\t</object>\n"
        for x0, y0, x1, y1 in boxes
    )
    return (
        f"<annotation>\n\t<folder>{folder.split('-')[0][1:]}</folder>\n\t<filename>{name}</filename>\n"
        f"\t<source>\n\t\t<database>ImageNet database</database>\n\t</source>\n"
        f"\t<size>\n\t\t<width>{WIDTH}</width>\n\t\t<height>{HEIGHT}</height>\n\t\t<depth>3</depth>\n\t</size>\n"
        f"\t<segment>0</segment>\n{objects}</annotation>\n"
    )


def _cells(strings: list[str]) -> np.ndarray:
    cells = np.empty((len(strings), 1), dtype=object)
    for i, text in enumerate(strings):
        cells[i, 0] = text
    return cells


def write_list(file: Path, items: list[tuple[str, int]], **replace: object) -> None:
    """A ``<split>_list.mat`` of ``items``; ``replace`` overrides (or, with ``None``, drops) a key."""
    content = {
        "file_list": _cells([f"{stem}.jpg" for stem, _ in items]),
        "annotation_list": _cells([stem for stem, _ in items]),
        "labels": np.array([[label] for _, label in items], dtype=np.float64),
    }
    content.update(replace)
    file.parent.mkdir(parents=True, exist_ok=True)
    savemat(file, {key: value for key, value in content.items() if value is not None})


def write_stanford_dogs(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        items = _files(split)
        write_list(root / "lists" / f"{split}_list.mat", items)
        for stem, _ in items:
            (root / "Images" / stem).parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "Images" / f"{stem}.jpg", quality=95)
            (root / "Annotation" / stem).parent.mkdir(parents=True, exist_ok=True)
            (root / "Annotation" / stem).write_text(_annotation(stem, _boxes(stem)))
    return root


@pytest.fixture
def dogs(tmp_path: Path) -> Path:
    return write_stanford_dogs(tmp_path / "StanfordDogs")


def test_fixture_lists_look_like_the_real_ones(dogs: Path) -> None:
    mat = loadmat(dogs / "lists" / "train_list.mat")
    assert mat["file_list"].shape == (6, 1) and mat["file_list"].dtype == object
    assert (
        mat["file_list"][0, 0].shape == (1,) and mat["file_list"][0, 0][0] == "n02085620-Chihuahua/n02085620_1000.jpg"
    )
    assert mat["annotation_list"][0, 0][0] == "n02085620-Chihuahua/n02085620_1000"
    assert mat["labels"].shape == (6, 1) and mat["labels"].dtype == np.float64


def test_train_split_records_labels_and_names(dogs: Path) -> None:
    records, names = read_stanford_dogs(dogs, split="train")
    assert names == NAMES
    assert [r.image_id for r in records] == [f"{stem}.jpg" for stem, _ in _files("train")]
    assert [r.label for r in records] == [0, 0, 1, 1, 2, 2]
    assert records[0].path == dogs / "Images" / "n02085620-Chihuahua" / "n02085620_1000.jpg"
    assert all(r.path.is_file() and r.box is None for r in records)


def test_test_split(dogs: Path) -> None:
    records, names = read_stanford_dogs(dogs, split="test")
    assert names == NAMES
    assert [(r.image_id, r.label) for r in records] == [
        ("n02085620-Chihuahua/n02085620_1002.jpg", 0),
        ("n02085782-Japanese_spaniel/n02085782_1000.jpg", 1),
        ("n02113799-standard_poodle/n02113799_1002.jpg", 2),
    ]


def test_unknown_split_is_refused(dogs: Path) -> None:
    with pytest.raises(ConfigError, match="val"):
        read_stanford_dogs(dogs, split="val")


def test_boxes_from_annotations_largest_of_several(dogs: Path) -> None:
    records, _ = read_stanford_dogs(dogs, split="train", use_boxes=True)
    boxes = {r.image_id: r.box for r in records}
    assert boxes["n02085620-Chihuahua/n02085620_1001.jpg"] == (4.0, 4.0, 31.0, 33.0)
    assert boxes[f"{TWO_DOGS}.jpg"] == (20.0, 5.0, 45.0, 30.0)  # the larger of the two, listed second


def test_annotations_are_not_needed_without_use_boxes(dogs: Path) -> None:
    shutil.rmtree(dogs / "Annotation")
    write_list(dogs / "lists" / "train_list.mat", _files("train"), annotation_list=None)
    assert len(read_stanford_dogs(dogs, split="train")[0]) == 6
    with pytest.raises(DataError, match="no key 'annotation_list'"):
        read_stanford_dogs(dogs, split="train", use_boxes=True)


def test_dataset_crops_to_the_dog(dogs: Path) -> None:
    records, names = read_stanford_dogs(dogs, split="train", use_boxes=True)
    index = [r.image_id for r in records].index(f"{TWO_DOGS}.jpg")
    original = np.asarray(Image.open(records[index].path).convert("RGB"))
    sample = ClassificationDataset(records, class_names=names, transform=lambda image: {"image": image})[index]
    np.testing.assert_array_equal(sample["image"], original[5:30, 20:45])
    assert sample["meta"]["size"] == (HEIGHT, WIDTH)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "annotation file not found"),
        ("<annotation><object><bndbox><xmin>3</xmin>", "malformed annotation"),
        ("<annotation><size><width>4</width></size></annotation>", "no <object> with a <bndbox>"),
        (
            "<annotation><object><bndbox><xmin>3</xmin><ymin>1</ymin><xmax>x</xmax><ymax>9</ymax></bndbox></object>"
            "</annotation>",
            "object 1 has no numeric <bndbox>",
        ),
        (
            "<annotation><object><bndbox><xmin>3</xmin><ymin>1</ymin><xmax>3</xmax><ymax>9</ymax></bndbox></object>"
            "</annotation>",
            "object 1 has an empty box",
        ),
    ],
)
def test_bad_annotation_raises_or_is_skipped(
    dogs: Path, caplog: pytest.LogCaptureFixture, content: str | None, message: str
) -> None:
    stem = "n02113799-standard_poodle/n02113799_1001"
    annotation = dogs / "Annotation" / stem
    if content is None:
        annotation.unlink()
    else:
        annotation.write_text(content)
    with pytest.raises(DataError, match=message) as info:
        read_stanford_dogs(dogs, split="train", use_boxes=True)
    assert str(annotation) in str(info.value) and "file_list entry 6" in str(info.value)
    with caplog.at_level(logging.WARNING, logger="mobivision"):
        records, _ = read_stanford_dogs(dogs, split="train", use_boxes=True, on_error="skip")
    assert len(records) == 5 and f"{stem}.jpg" not in [r.image_id for r in records]
    assert "skipped 1 bad records" in caplog.text and str(annotation) in caplog.text


def test_missing_image_raises_or_is_skipped_and_reported(dogs: Path, caplog: pytest.LogCaptureFixture) -> None:
    missing = dogs / "Images" / "n02085782-Japanese_spaniel" / "n02085782_1001.jpg"
    missing.unlink()
    with pytest.raises(DataError, match=f"file_list entry 3: image file not found: {re.escape(str(missing))}"):
        read_stanford_dogs(dogs, split="train")
    with caplog.at_level(logging.WARNING, logger="mobivision"):
        records, _ = read_stanford_dogs(dogs, split="train", on_error="skip")
    assert len(records) == 5 and "skipped 1 bad records" in caplog.text and str(missing) in caplog.text


@pytest.mark.parametrize("key", ["file_list", "labels"])
def test_list_without_key_names_file_and_key(dogs: Path, key: str) -> None:
    file = dogs / "lists" / "test_list.mat"
    write_list(file, _files("test"), **{key: None})
    with pytest.raises(DataError, match=f"no key '{key}'") as info:
        read_stanford_dogs(dogs, split="test")
    assert str(file) in str(info.value)


def test_label_given_to_two_folders(dogs: Path) -> None:
    items = _files("train")
    items[2] = (items[2][0], 1)  # a Japanese_spaniel file labelled as breed 1 (Chihuahua)
    write_list(dogs / "lists" / "train_list.mat", items)
    with pytest.raises(DataError, match="label 1 is given to files in two folders"):
        read_stanford_dogs(dogs, split="train")


def test_folder_given_two_labels(dogs: Path) -> None:
    items = _files("train")
    items[1] = (items[1][0], 3)  # the second Chihuahua file labelled 3
    write_list(dogs / "lists" / "train_list.mat", items)
    with pytest.raises(DataError, match="folder n02085620-Chihuahua has files with labels 1 and 3"):
        read_stanford_dogs(dogs, split="train")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.array([[1], [1], [2], [2], [3], [0]], dtype=np.float64), "entry 6 is 0.0, not an integer >= 1"),
        (np.array([[1], [1], [2], [2], [3], [3.5]]), "entry 6 is 3.5"),
        (np.array([[1], [1], [2], [2], [3]], dtype=np.float64), "must hold 6 numbers"),
        (np.array([[1], [1], [3], [3], [4], [4]], dtype=np.float64), r"labels \[2\] have no file"),
    ],
)
def test_bad_labels(dogs: Path, labels: np.ndarray, message: str) -> None:
    write_list(dogs / "lists" / "train_list.mat", _files("train"), labels=labels)
    with pytest.raises(DataError, match=message):
        read_stanford_dogs(dogs, split="train")


def test_unreadable_list_is_a_data_error(dogs: Path) -> None:
    file = dogs / "lists" / "train_list.mat"
    file.write_text("not a MATLAB file")
    with pytest.raises(DataError, match=r"cannot read .*train_list\.mat"):
        read_stanford_dogs(dogs, split="train")


def test_missing_list_names_path_and_layout(dogs: Path) -> None:
    (dogs / "lists" / "test_list.mat").rename(dogs / "test_list.mat")  # lists.tar unpacked into root
    with pytest.raises(DataError, match=r"lists/train_list\.mat and lists/test_list\.mat") as info:
        read_stanford_dogs(dogs, split="test")
    assert str(dogs / "lists" / "test_list.mat") in str(info.value)
    assert f"found {dogs / 'test_list.mat'}: move the .mat files into {dogs / 'lists'}/" in str(info.value)
