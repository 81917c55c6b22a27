"""Unit tests of the classification readers (``mobivision.data.image_folder``) and ``ClassificationDataset``.

ARCHITECTURE.md (Data flow): readers validate as they load; a bad record is reported with its id and file and either
raised or, with an explicit option, skipped and counted in one warning. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobivision.data.image_folder import list_images, read_csv_list, read_image_folder
from mobivision.data.records import ClassificationDataset, ImageRecord
from mobivision.data.transforms import classification_eval_transform
from mobivision.errors import DataError

WriteImage = Callable[..., Path]


@pytest.fixture
def write_image() -> WriteImage:
    """Write a small RGB PNG (``height x width``, one colour) at ``path``, creating its folders."""

    def write(path: Path, *, height: int = 6, width: int = 8, value: int = 100) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((height, width, 3), value, dtype=np.uint8)).save(path)
        return path

    return write


@pytest.fixture
def folder_tree(tmp_path: Path, write_image: WriteImage) -> Path:
    """``train/{dog,cat,bird}`` with 2/1/1 PNGs (created out of order) plus files that are not images."""
    root = tmp_path / "train"
    write_image(root / "dog" / "b.png")
    write_image(root / "dog" / "a.PNG")
    write_image(root / "cat" / "x.png")
    write_image(root / "bird" / "y.png")
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "cat" / "labels.csv").write_text("path,label\n")
    (root / "README").write_text("a file at the class level")
    (root / ".cache").mkdir()  # hidden folders are not classes
    return root


def test_image_folder_sorted_classes_and_records(folder_tree: Path) -> None:
    records, names = read_image_folder(folder_tree)
    assert names == ["bird", "cat", "dog"]
    assert [(r.image_id, r.path, r.label) for r in records] == [
        ("bird/y.png", folder_tree / "bird" / "y.png", 0),
        ("cat/x.png", folder_tree / "cat" / "x.png", 1),
        ("dog/a.PNG", folder_tree / "dog" / "a.PNG", 2),
        ("dog/b.png", folder_tree / "dog" / "b.png", 2),
    ]


def test_image_folder_uses_given_class_names(tmp_path: Path, write_image: WriteImage) -> None:
    # A val split lacking a class keeps the training indices (not re-numbered from its own folders).
    write_image(tmp_path / "val" / "dog" / "v.png")
    records, names = read_image_folder(tmp_path / "val", class_names=["bird", "cat", "dog"])
    assert names == ["bird", "cat", "dog"]
    assert [(r.image_id, r.label) for r in records] == [("dog/v.png", 2)]


def test_image_folder_extra_class_is_named(tmp_path: Path, write_image: WriteImage) -> None:
    write_image(tmp_path / "val" / "cat" / "v.png")
    write_image(tmp_path / "val" / "zebra" / "z.png")
    with pytest.raises(DataError, match="zebra"):
        read_image_folder(tmp_path / "val", class_names=["bird", "cat", "dog"])


def test_image_folder_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match="not found") as info:
        read_image_folder(missing)
    assert str(missing) in str(info.value)


@pytest.mark.parametrize("with_class_folder", [False, True])
def test_image_folder_without_images(tmp_path: Path, with_class_folder: bool) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    if with_class_folder:
        (root / "cat").mkdir()
        (root / "cat" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="no images") as info:
        read_image_folder(root)
    assert str(root) in str(info.value)


# --- CSV lists -------------------------------------------------------------------------------------------


@pytest.fixture
def image_dir(tmp_path: Path, write_image: WriteImage) -> Path:
    """``images/`` with ``a.png``, ``b.png`` and ``sub/c.png``."""
    root = tmp_path / "images"
    for name in ("a.png", "b.png", "sub/c.png"):
        write_image(root / name)
    return root


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write ``lines`` (joined with newlines) to ``tmp_path / name``."""

    def write(*lines: str, name: str = "list.csv") -> Path:
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


def test_csv_list_class_names(image_dir: Path, write_csv: Callable[..., Path]) -> None:
    csv = write_csv("path,label", "a.png,dog", "sub/c.png,cat", "b.png,dog")
    records, names = read_csv_list(csv, image_root=image_dir)
    assert names == ["cat", "dog"]
    assert [(r.image_id, r.path, r.label) for r in records] == [
        ("list.csv:2", image_dir / "a.png", 1),
        ("list.csv:3", image_dir / "sub" / "c.png", 0),
        ("list.csv:4", image_dir / "b.png", 1),
    ]


def test_csv_list_integer_labels(image_dir: Path, write_csv: Callable[..., Path]) -> None:
    csv = write_csv("path,label", "a.png,2", "b.png,0")
    records, names = read_csv_list(csv, image_root=image_dir)
    assert names == ["0", "1", "2"]
    assert [r.label for r in records] == [2, 0]
    # Integer labels also index given class names.
    records, names = read_csv_list(csv, image_root=image_dir, class_names=["x", "y", "z"])
    assert names == ["x", "y", "z"]
    assert [r.label for r in records] == [2, 0]


def test_csv_list_paths_default_to_csv_folder(image_dir: Path, write_csv: Callable[..., Path]) -> None:
    csv = write_csv("path,label", "images/a.png,cat")
    records, _ = read_csv_list(csv)
    assert records[0].path == image_dir / "a.png"


def test_csv_list_absolute_path_kept(tmp_path: Path, image_dir: Path, write_csv: Callable[..., Path]) -> None:
    csv = write_csv("path,label", f"{image_dir / 'b.png'},cat")
    records, _ = read_csv_list(csv, image_root=tmp_path / "elsewhere")
    assert records[0].path == image_dir / "b.png"


def test_csv_list_bad_header(image_dir: Path, write_csv: Callable[..., Path]) -> None:
    csv = write_csv("file,class", "a.png,cat")
    with pytest.raises(DataError) as info:
        read_csv_list(csv, image_root=image_dir)
    assert f"{csv}:1" in str(info.value)
    assert "path,label" in str(info.value)


def test_csv_list_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_csv_list(tmp_path / "missing.csv")


BAD_ROWS = {
    "three values": ("a.png,cat,extra", "line 3"),
    "missing image": ("gone.png,cat", "line 3"),
    "unknown label": ("b.png,horse", "line 3"),
}


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_csv_list_bad_row_raises(kind: str, image_dir: Path, write_csv: Callable[..., Path]) -> None:
    row, where = BAD_ROWS[kind]
    csv = write_csv("path,label", "a.png,cat", row, "b.png,dog")
    with pytest.raises(DataError) as info:
        read_csv_list(csv, image_root=image_dir, class_names=["cat", "dog"])
    message = str(info.value)
    assert str(csv) in message
    assert where in message


def test_csv_list_saved_as_latin_1_names_line_and_column(tmp_path: Path, image_dir: Path) -> None:
    csv = tmp_path / "list.csv"
    csv.write_bytes("path,label\na.png,dog\nb.png,café\n".encode("latin-1"))
    with pytest.raises(DataError) as info:
        read_csv_list(csv, image_root=image_dir, on_error="skip")
    assert str(info.value) == f"{csv}:3: not UTF-8 text (byte 0xe9 at column 10); save the file as UTF-8"


def test_csv_list_skip_reports_once(
    image_dir: Path, write_csv: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    csv = write_csv(
        "path,label",
        "a.png,cat",  # 2 ok
        "a.png,cat,extra",  # 3 malformed
        "gone.png,dog",  # 4 missing image
        "sub/c.png,dog",  # 5 ok
        "b.png,horse",  # 6 unknown label
    )
    with caplog.at_level(logging.WARNING, logger="mobivision"):
        records, names = read_csv_list(csv, image_root=image_dir, class_names=["cat", "dog"], on_error="skip")
    assert names == ["cat", "dog"]
    assert [(r.image_id, r.label) for r in records] == [("list.csv:2", 0), ("list.csv:5", 1)]
    warnings = [r for r in caplog.records if r.name == "mobivision" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert str(csv) in message
    assert "skipped 3" in message
    for line in ("line 3", "line 4", "line 6"):
        assert line in message
    assert "line 2" not in message
    assert "line 5" not in message


def test_csv_list_skip_without_problems_is_silent(
    image_dir: Path, write_csv: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    csv = write_csv("path,label", "a.png,cat")
    with caplog.at_level(logging.WARNING, logger="mobivision"):
        read_csv_list(csv, image_root=image_dir, on_error="skip")
    assert not [r for r in caplog.records if r.name == "mobivision"]


def test_csv_list_all_rows_skipped_raises(image_dir: Path, write_csv: Callable[..., Path]) -> None:
    csv = write_csv("path,label", "gone.png,cat")
    with pytest.raises(DataError, match="no usable rows"):
        read_csv_list(csv, image_root=image_dir, on_error="skip")


def test_csv_list_bad_on_error(image_dir: Path, write_csv: Callable[..., Path]) -> None:
    csv = write_csv("path,label", "a.png,cat")
    with pytest.raises(DataError, match="bogus"):
        read_csv_list(csv, image_root=image_dir, on_error="bogus")


# --- ClassificationDataset -------------------------------------------------------------------------------


@pytest.fixture
def eval_transform():
    return classification_eval_transform(resolution=8, mean=(0.5,) * 3, std=(0.5,) * 3, crop_pct=1.0)


def test_dataset_sample(tmp_path: Path, write_image: WriteImage, eval_transform) -> None:
    path = write_image(tmp_path / "cat" / "one.png", height=10, width=12, value=255)
    dataset = ClassificationDataset(
        [ImageRecord("cat/one.png", path, 1)], class_names=["dog", "cat"], transform=eval_transform
    )
    assert len(dataset) == 1
    sample = dataset[0]
    image, target, meta = sample["image"], sample["target"], sample["meta"]
    assert image.dtype == torch.float32
    assert image.shape == (3, 8, 8)
    torch.testing.assert_close(image, torch.ones(3, 8, 8))  # 255 normalised with mean = std = 0.5
    assert target.dtype == torch.long
    assert target.item() == 1
    assert meta == {"image_id": "cat/one.png", "path": str(path), "size": (10, 12)}


@pytest.mark.parametrize("corruption", ["garbage", "truncated"])
def test_dataset_corrupt_image(corruption: str, tmp_path: Path, eval_transform) -> None:
    path = tmp_path / "broken.png"
    if corruption == "garbage":
        path.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    else:  # a real PNG cut in half, as an interrupted copy leaves it
        noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(noise).save(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    dataset = ClassificationDataset([ImageRecord("broken", path, 0)], class_names=["a"], transform=eval_transform)
    with pytest.raises(DataError) as info:
        dataset[0]
    assert str(path) in str(info.value)


def test_list_images_recursive_sorted_and_images_only(folder_tree: Path) -> None:
    assert [p.relative_to(folder_tree).as_posix() for p in list_images(folder_tree)] == [
        "bird/y.png",
        "cat/x.png",
        "dog/a.PNG",
        "dog/b.png",
    ]


def test_list_images_refuses_missing_or_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"no such image folder: {tmp_path / 'missing'}"):
        list_images(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("text")
    with pytest.raises(DataError, match=f"{tmp_path}: no image files"):
        list_images(tmp_path)
