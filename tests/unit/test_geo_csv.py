"""Unit tests of ``mobivision.data.geo_csv``: geotagged image lists read into records.

The main fixture mimics GeoEstimation's ``mp16_places365.csv`` (``IMG_ID,LAT,LON`` and scene-label columns)
with empty image files: the reader checks that files exist, it does not open them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from mobivision.data.geo_csv import read_geo_csv
from mobivision.errors import DataError

MP16_HEADER = "IMG_ID,LAT,LON,S3_Label,S16_Label,S365_Label,Prob_indoor,Prob_natural,Prob_urban"
ROWS = [
    ("8d/1e/3404545123.jpg", 48.8566, 2.3522),
    ("8d/1f/3404545124.jpg", -33.8688, 151.2093),
    ("2a/00/100.jpg", 0.0, -180.0),
    ("2a/00/101.jpg", -90.0, 180.0),
]


def write_list(folder: Path, header: str, rows: list[str], *, images: list[str] | None = None) -> Path:
    """``folder/list.csv`` with ``header`` and ``rows``, and empty files for ``images``."""
    folder.mkdir(parents=True, exist_ok=True)
    for image in images or []:
        (folder / image).parent.mkdir(parents=True, exist_ok=True)
        (folder / image).touch()
    path = folder / "list.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def mp16_rows() -> list[str]:
    return [f"{image},{lat},{lon},1,7,123,0.1,0.2,0.7" for image, lat, lon in ROWS]


@pytest.fixture
def mp16(tmp_path: Path) -> Path:
    return write_list(tmp_path / "mp16", MP16_HEADER, mp16_rows(), images=[image for image, _, _ in ROWS])


def test_geoestimation_columns_are_found(mp16: Path) -> None:
    records = read_geo_csv(mp16)
    assert [r.image_id for r in records] == [image for image, _, _ in ROWS]
    assert [r.label for r in records] == [(lat, lon) for _, lat, lon in ROWS]
    assert all(isinstance(v, float) for r in records for v in r.label)
    assert [r.path for r in records] == [mp16.parent / image for image, _, _ in ROWS]
    assert all(r.box is None for r in records)


@pytest.mark.parametrize(
    "header",
    ["path,latitude,longitude", "Image,Lat,Lng", "filename,LATITUDE,long", "id,lat,lon", "img_path,lat,lon,id"],
)
def test_column_names_are_detected_ignoring_case(tmp_path: Path, header: str) -> None:
    extra = ",x" if header.count(",") == 3 else ""
    csv_file = write_list(tmp_path, header, [f"a.jpg,10.5,-20.25{extra}"], images=["a.jpg"])
    (record,) = read_geo_csv(csv_file)
    assert (record.image_id, record.label) == ("a.jpg", (10.5, -20.25))


def test_explicit_columns(tmp_path: Path) -> None:
    csv_file = write_list(tmp_path, "photo,y,x,lat", ["a.jpg,1.0,2.0,99"], images=["a.jpg"])
    (record,) = read_geo_csv(csv_file, image_column="photo", lat_column="Y", lon_column="x")
    assert record.label == (1.0, 2.0)
    with pytest.raises(DataError, match=rf"^{csv_file}:1: longitude column 'lng': no such column; the header is"):
        read_geo_csv(csv_file, image_column="photo", lat_column="y", lon_column="lng")


def test_undetected_column_lists_the_names(tmp_path: Path) -> None:
    csv_file = write_list(tmp_path, "photo,lat,lon", ["a.jpg,1.0,2.0"], images=["a.jpg"])
    with pytest.raises(DataError, match=rf"^{csv_file}:1: no image path column: expected one named path / .*name it"):
        read_geo_csv(csv_file)
    csv_file = write_list(tmp_path, "path,LAT,lat,lon", ["a.jpg,1.0,1.0,2.0"])
    with pytest.raises(DataError, match=r":1: more than one latitude column named 'lat'"):
        read_geo_csv(csv_file)


def test_image_root(tmp_path: Path) -> None:
    csv_file = write_list(tmp_path / "lists", "IMG_ID,LAT,LON", ["x/a.jpg,1,2"])
    (tmp_path / "images" / "x").mkdir(parents=True)
    (tmp_path / "images" / "x" / "a.jpg").touch()
    (record,) = read_geo_csv(csv_file, image_root=tmp_path / "images")
    assert record.path == tmp_path / "images" / "x" / "a.jpg"
    with pytest.raises(DataError, match=r"list\.csv: line 2: image file not found: .*lists/x/a\.jpg$"):
        read_geo_csv(csv_file)
    with pytest.raises(DataError, match=r"image file not found: .*\(image_root .*nowhere does not exist\)"):
        read_geo_csv(csv_file, image_root=tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (
            "2a/00/101.jpg,abc,2.0,1,7,123,0.1,0.2,0.7",
            r"column LAT is 'abc'; expected a latitude in degrees in \[-90, 90\]",
        ),
        ("2a/00/101.jpg,90.5,2.0,1,7,123,0.1,0.2,0.7", r"column LAT is '90.5'; expected a latitude"),
        ("2a/00/101.jpg,nan,2.0,1,7,123,0.1,0.2,0.7", r"column LAT is 'nan'"),
        ("2a/00/101.jpg,1.0,-180.01,1,7,123,0.1,0.2,0.7", r"column LON is '-180.01'; expected a longitude in .*180\]"),
        ("2a/00/101.jpg,1.0,inf,1,7,123,0.1,0.2,0.7", r"column LON is 'inf'"),
        ("2a/00/101.jpg,1.0,,1,7,123,0.1,0.2,0.7", r"column LON is ''"),
        ("2a/00/101.jpg,1.0,2.0", r"expected 9 values \(IMG_ID,LAT,LON,.*\), got 3"),
        ("2a/00/101.jpg,1.0,2.0,1,7,123,0.1,0.2,0.7,extra", r"expected 9 values .*got 10"),
        ("8d/1e/3404545123.jpg,1.0,2.0,1,7,123,0.1,0.2,0.7", r"8d/1e/3404545123\.jpg appears a second time .*line 2"),
        (",1.0,2.0,1,7,123,0.1,0.2,0.7", r"column IMG_ID \(the image path\) is empty"),
    ],
)
def test_bad_rows_name_file_line_and_value(tmp_path: Path, row: str, message: str) -> None:
    rows = mp16_rows()
    rows[3] = row
    csv_file = write_list(tmp_path, MP16_HEADER, rows, images=[image for image, _, _ in ROWS])
    for on_error in ("raise", "skip"):
        with pytest.raises(DataError, match=rf"^{csv_file}:5: {message}"):
            read_geo_csv(csv_file, on_error=on_error)


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    rows = mp16_rows()
    csv_file = write_list(tmp_path, MP16_HEADER, [rows[0], "", rows[1], "x.jpg,1,2000,1,7,123,0.1,0.2,0.7"])
    with pytest.raises(DataError, match=rf"^{csv_file}:5: column LON is '2000'"):
        read_geo_csv(csv_file, check_images=False)


def test_missing_images_raise_or_skip_once(tmp_path: Path, mp16: Path, caplog: pytest.LogCaptureFixture) -> None:
    (mp16.parent / ROWS[1][0]).unlink()
    (mp16.parent / ROWS[2][0]).unlink()
    with pytest.raises(DataError, match=rf"^{mp16}: line 3: image file not found: .*3404545124\.jpg$"):
        read_geo_csv(mp16)
    with caplog.at_level(logging.WARNING, logger="mobivision"):
        records = read_geo_csv(mp16, on_error="skip")
    assert [r.image_id for r in records] == [ROWS[0][0], ROWS[3][0]]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 2 bad records" in warnings[0] and "line 3" in warnings[0] and "line 4" in warnings[0]


def test_check_images_off_reads_only_the_list(tmp_path: Path) -> None:
    csv_file = write_list(tmp_path, MP16_HEADER, mp16_rows())
    records = read_geo_csv(csv_file, check_images=False)
    assert [r.label for r in records] == [(lat, lon) for _, lat, lon in ROWS]
    with pytest.raises(DataError, match="image file not found"):
        read_geo_csv(csv_file)


def test_empty_results_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="geotag CSV not found"):
        read_geo_csv(tmp_path / "nope.csv")
    header_only = write_list(tmp_path / "a", MP16_HEADER, [])
    with pytest.raises(DataError, match=rf"^{header_only}: no usable rows"):
        read_geo_csv(header_only, check_images=False)
    all_missing = write_list(tmp_path / "b", MP16_HEADER, mp16_rows())
    with pytest.raises(DataError, match="no usable rows"):
        read_geo_csv(all_missing, on_error="skip")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=":1: expected a header row"):
        read_geo_csv(empty)
    with pytest.raises(DataError, match="on_error must be one of"):
        read_geo_csv(all_missing, on_error="ignore")


def test_byte_order_mark_and_spaces(tmp_path: Path) -> None:
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("\ufeffIMG_ID, LAT , LON\n a.jpg , 1.5 , -2.5 \n", encoding="utf-8")
    (record,) = read_geo_csv(csv_file, check_images=False)
    assert (record.image_id, record.label) == ("a.jpg", (1.5, -2.5))


@pytest.mark.parametrize("line", [1, 3], ids=["header", "row"])
def test_a_list_saved_as_latin_1_names_line_and_column(tmp_path: Path, line: int) -> None:
    lines = [MP16_HEADER, *mp16_rows()]
    lines[line - 1] = lines[line - 1][:7] + "é" + lines[line - 1][7:]
    csv_file = tmp_path / "list.csv"
    csv_file.write_bytes("\n".join(lines).encode("latin-1"))
    with pytest.raises(DataError) as info:
        read_geo_csv(csv_file, check_images=False)
    assert str(info.value) == f"{csv_file}:{line}: not UTF-8 text (byte 0xe9 at column 8); save the file as UTF-8"
