"""Unit tests of ``mobivision.data.attribute_csv``: generic attribute CSVs read into records."""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import pytest
from PIL import Image

from mobivision.data.attribute_csv import read_attribute_csv
from mobivision.errors import ConfigError, DataError


def _csv_images(root: Path, names: list[str]) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 6), (10, 20, 30)).save(root / name)


def _labels_of(records) -> list[tuple[float, ...]]:
    """Labels with NaN as None, so lists compare with ``==``."""
    return [tuple(None if math.isnan(v) else v for v in r.label) for r in records]


def test_csv_zero_one_with_unknown_cells(tmp_path: Path) -> None:
    _csv_images(tmp_path / "img", ["a.png", "sub/b.png", "c.png"])
    csv_file = tmp_path / "attrs.csv"
    csv_file.write_text("path,Smiling,Male,Eyeglasses\na.png,1,0,\nsub/b.png,0,,1\nc.png, 1 , 1 , 0\n")
    records, names = read_attribute_csv(csv_file, image_root=tmp_path / "img")
    assert names == ["Smiling", "Male", "Eyeglasses"]
    assert [r.image_id for r in records] == ["a.png", "sub/b.png", "c.png"]
    assert records[1].path == tmp_path / "img" / "sub" / "b.png"
    assert _labels_of(records) == [(1.0, 0.0, None), (0.0, None, 1.0), (1.0, 1.0, 0.0)]
    subset, names = read_attribute_csv(csv_file, image_root=tmp_path / "img", attributes=["Eyeglasses", "Smiling"])
    assert names == ["Eyeglasses", "Smiling"]
    assert _labels_of(subset) == [(None, 1.0), (1.0, 0.0), (0.0, 1.0)]


def test_csv_plus_minus_one_kaggle_style(tmp_path: Path) -> None:
    _csv_images(tmp_path, ["000001.jpg", "000002.jpg"])
    csv_file = tmp_path / "list_attr_celeba.csv"
    csv_file.write_bytes(b"\xef\xbb\xbfimage_id,Bald,Young\r\n000001.jpg,-1,1\r\n000002.jpg,+1,\r\n")  # BOM, CRLF
    records, names = read_attribute_csv(csv_file, image_root=tmp_path)
    assert names == ["Bald", "Young"]
    assert _labels_of(records) == [(0.0, 1.0), (1.0, None)]


@pytest.mark.parametrize(
    ("rows", "line", "column", "value", "earlier"),
    [
        (["a.png,1,-1", "b.png,0,1"], 3, "A", "0", "line 2 has '-1' in column B"),
        (["a.png,0,1", "b.png,1,1", "c.png,+1,0"], 4, "A", "+1", "line 2 has '0' in column A"),
    ],
)
def test_csv_mixed_encodings_name_the_breaking_line(
    tmp_path: Path, rows: list[str], line: int, column: str, value: str, earlier: str
) -> None:
    _csv_images(tmp_path, ["a.png", "b.png", "c.png"])
    csv_file = tmp_path / "mixed.csv"
    csv_file.write_text("path,A,B\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=rf"mixed\.csv:{line}: column {column} is '{re.escape(value)}', but {earlier}"):
        read_attribute_csv(csv_file, image_root=tmp_path)


def test_csv_bad_column_count_and_bad_value(tmp_path: Path) -> None:
    _csv_images(tmp_path, ["a.png", "b.png"])
    csv_file = tmp_path / "attrs.csv"
    csv_file.write_text("path,A,B\na.png,1,0\n\nb.png,1\n")
    with pytest.raises(DataError, match=r"attrs\.csv:4: expected 3 values \(path \+ 2 attributes\), got 2"):
        read_attribute_csv(csv_file, image_root=tmp_path, on_error="skip")
    csv_file.write_text("path,A,B\na.png,1,0\nb.png,1,yes\n")
    with pytest.raises(DataError, match=r"attrs\.csv:3: column B is 'yes'; expected 0/1 or -1/\+1"):
        read_attribute_csv(csv_file, image_root=tmp_path)
    csv_file.write_text("path,A,B\na.png,1,0\na.png,1,1\n")
    with pytest.raises(DataError, match=r"attrs\.csv:3: a\.png appears a second time \(first on line 2\)"):
        read_attribute_csv(csv_file, image_root=tmp_path)
    csv_file.write_text("path\na.png\n")
    with pytest.raises(DataError, match=r"attrs\.csv:1: expected a header row"):
        read_attribute_csv(csv_file, image_root=tmp_path)


def test_csv_missing_image_raises_or_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _csv_images(tmp_path, ["a.png"])
    csv_file = tmp_path / "attrs.csv"
    csv_file.write_text("path,A\na.png,1\ngone.png,0\n")
    with pytest.raises(DataError, match=r"line 3: image file not found: .*gone\.png"):
        read_attribute_csv(csv_file, image_root=tmp_path)
    with caplog.at_level(logging.WARNING, logger="mobivision"):
        records, _ = read_attribute_csv(csv_file, image_root=tmp_path, on_error="skip")
    assert [r.image_id for r in records] == ["a.png"]
    assert "skipped 1 bad records" in caplog.text and "gone.png" in caplog.text
    with pytest.raises(ConfigError, match="did you mean 'A'"):
        read_attribute_csv(csv_file, image_root=tmp_path, attributes=["a"])
    with pytest.raises(DataError, match="attribute CSV not found"):
        read_attribute_csv(tmp_path / "absent.csv", image_root=tmp_path)
