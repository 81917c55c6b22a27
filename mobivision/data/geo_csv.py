"""Reader of geotagged photo lists in CSV form: one image path and its latitude / longitude per row.

GeoEstimation (Müller-Budack, Pustu-Iren and Ewerth, ECCV 2018) ships its splits this way: MP-16's training
list ``mp16_places365.csv`` (4.7 M Flickr photos) and the test lists ``im2gps_places365.csv`` /
``im2gps3k_places365.csv``, each with the columns ``IMG_ID,LAT,LON`` and scene-label columns this reader
ignores. Any CSV with a header row works: the columns are found by name, case-insensitively (see
``IMAGE_COLUMNS``, ``LAT_COLUMNS``, ``LON_COLUMNS``), or named explicitly.

A record's label is ``(lat, lon)`` in degrees and its ``image_id`` the path as written. A row that is not a
valid location (not a number, NaN, latitude outside [-90, 90], longitude outside [-180, 180]), has the wrong
number of cells or repeats an image is an error in the list and always raises, naming the file and line. A
missing image file is a bad record that raises or, with ``on_error="skip"``, is skipped and reported.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

from mobivision.data.csv_rows import BadRowError, PathColumn, csv_header, csv_rows, usable_rows
from mobivision.data.records import BadRecords, ImageRecord
from mobivision.errors import DataError

IMAGE_COLUMNS = ("path", "img_path", "image_path", "image", "img_id", "image_id", "file", "filename", "id")
"""Names of the image column, the first present wins (compared case-insensitively)."""
LAT_COLUMNS = ("lat", "latitude")
LON_COLUMNS = ("lon", "lng", "long", "longitude")


def read_geo_csv(
    csv_file: str | Path,
    *,
    image_root: str | Path | None = None,
    image_column: str | None = None,
    lat_column: str | None = None,
    lon_column: str | None = None,
    check_images: bool = True,
    on_error: str = "raise",
) -> list[ImageRecord]:
    """Records of a geotagged image list, in file order.

    Args:
        csv_file: The list (UTF-8, a byte-order mark is ignored), with a header row.
        image_root: The folder the image paths are relative to (default: the CSV's folder).
        image_column, lat_column, lon_column: Column names (matched exactly, else case-insensitively); ``None``
            looks for the usual names.
        check_images: Whether to check that each image file exists (each folder is listed once, not every
            file stat'ed); turn it off to read only the coordinates of a list whose images are elsewhere.
        on_error: ``raise`` or ``skip`` (and report) rows whose image file is missing.

    Returns:
        The records, ``label = (lat, lon)`` in degrees.

    Raises:
        DataError: The file is missing or not UTF-8, a column is not found, a row is malformed (see the module
            docstring), ``on_error`` is invalid, (with ``on_error="raise"``) an image is missing, or no row is
            usable.
    """
    file = Path(csv_file)
    if not file.is_file():
        raise DataError(f"geotag CSV not found: {file}")
    root = file.parent if image_root is None else Path(image_root)
    bad = BadRecords(str(file), on_error)
    header = [cell.strip() for cell in csv_header(file) or []]
    if not any(header):
        raise DataError(f"{file}:1: expected a header row naming the image, latitude and longitude columns")
    paths = PathColumn(file, header, _column(file, header, image_column, IMAGE_COLUMNS, "image path"))
    lat_index = _column(file, header, lat_column, LAT_COLUMNS, "latitude")
    lon_index = _column(file, header, lon_column, LON_COLUMNS, "longitude")
    files = _FileIndex()

    def parse(line: int, row: list[str]) -> ImageRecord:
        relative = paths.read(line, row)
        lat = _degrees(file, line, header[lat_index], row[lat_index], "a latitude", 90.0)
        lon = _degrees(file, line, header[lon_index], row[lon_index], "a longitude", 180.0)
        path = root / relative
        if check_images and not files.exists(path):
            missing_root = "" if root.is_dir() else f" (image_root {root} does not exist)"
            raise BadRowError(f"image file not found: {path}{missing_root}")
        return ImageRecord(image_id=relative, path=path, label=(lat, lon))

    records = csv_rows(file, parse, bad=bad, width=len(header), columns=",".join(header))
    return usable_rows(file, records, bad)


def _column(file: Path, header: list[str], name: str | None, candidates: Sequence[str], what: str) -> int:
    """Index of the ``what`` column: ``name`` (exactly, else ignoring case) or the first of ``candidates``."""
    folded = [cell.lower() for cell in header]
    if name is not None:
        if name in header:
            return header.index(name)
        matches = [i for i, cell in enumerate(folded) if cell == name.lower()]
        if len(matches) == 1:
            return matches[0]
        reason = "more than one column is named so (ignoring case)" if matches else "no such column"
        raise DataError(f"{file}:1: {what} column {name!r}: {reason}; the header is {','.join(header)!r}")
    for candidate in candidates:
        matches = [i for i, cell in enumerate(folded) if cell == candidate]
        if len(matches) > 1:
            raise DataError(f"{file}:1: more than one {what} column named {candidate!r} (ignoring case)")
        if matches:
            return matches[0]
    raise DataError(
        f"{file}:1: no {what} column: expected one named {' / '.join(candidates)} (any case), got the header "
        f"{','.join(header)!r}; name it explicitly"
    )


def _degrees(file: Path, line: int, column: str, text: str, what: str, limit: float) -> float:
    """A cell as a finite number in ``[-limit, limit]``, else a ``DataError`` naming file, line and value."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not -limit <= value <= limit:  # also false for NaN
        raise DataError(
            f"{file}:{line}: column {column} is {text.strip()!r}; expected {what} in degrees in [{-limit:g}, {limit:g}]"
        )
    return value


class _FileIndex:
    """Whether files exist, listing each folder once: a 4.7 M-row list needs no 4.7 M ``stat`` calls."""

    def __init__(self) -> None:
        self._folders: dict[Path, set[str]] = {}

    def exists(self, path: Path) -> bool:
        names = self._folders.get(path.parent)
        if names is None:
            try:
                with os.scandir(path.parent) as entries:
                    names = {entry.name for entry in entries if entry.is_file()}
            except OSError:  # a missing folder holds no files
                names = set()
            self._folders[path.parent] = names
        return path.name in names
