"""The row loop the CSV list readers share: header, numbered rows, width check, bad rows raised or skipped.

``csv_header`` gives a list's first row; ``csv_rows`` then hands each later non-blank row, with the line it
starts on, to the reader's ``parse``. A row of the wrong width, or one ``parse`` finds malformed (a ``DataError``
it raises), is an error in the list and always raises, naming the file and line. A row ``parse`` rejects with
``BadRowError`` (a missing image, an unknown label) is a bad record: ``BadRecords`` raises it or, with
``on_error="skip"``, counts it for one report, and ``usable_rows`` makes that report. ``PathColumn`` checks the
image column of lists whose rows are keyed by their image. Files are read by ``text_files.open_text`` (UTF-8).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from mobivision.data.records import BadRecords
from mobivision.data.text_files import open_text
from mobivision.errors import DataError

T = TypeVar("T")


class BadRowError(Exception):
    """A bad record found by a row parser; its message follows ``line <n>:`` in the error or the report."""


def csv_header(file: Path) -> list[str] | None:
    """The first row of ``file`` as read (cells not stripped), ``None`` for an empty file."""
    with open_text(file, newline="") as f:
        return next(csv.reader(f), None)


def csv_rows(
    file: Path,
    parse: Callable[[int, list[str]], T],
    *,
    bad: BadRecords,
    width: int | None = None,
    columns: str = "",
) -> list[T]:
    """``parse(line, cells)`` of each non-blank row after the header, in file order, leaving out bad records.

    Args:
        file: The CSV list.
        parse: Turns a row and the line it starts on into a result; raises ``BadRowError`` for a bad record and
            ``DataError`` for a malformed row.
        bad: Where bad records go (raised, or skipped and counted).
        width: The number of cells every row must have (``None``: ``parse`` checks).
        columns: The columns as the width error describes them, e.g. ``path,lat,lon``.

    Returns:
        The results of the rows that are not bad records.

    Raises:
        DataError: The file is not UTF-8 (``open_text``), a row has other than ``width`` cells, ``parse`` raised
            it, or (with ``on_error="raise"``) a row is a bad record.
    """
    results = []
    with open_text(file, newline="") as f:
        reader = csv.reader(f)
        next(reader, None)
        while True:
            line = reader.line_num + 1
            row = next(reader, None)
            if row is None:
                return results
            if not any(cell.strip() for cell in row):  # blank line
                continue
            if width is not None and len(row) != width:
                raise DataError(f"{file}:{line}: expected {width} values ({columns}), got {len(row)}")
            try:
                results.append(parse(line, row))
            except BadRowError as exc:
                bad.add(f"line {line}: {exc}")


def usable_rows(file: Path, rows: list[T], bad: BadRecords) -> list[T]:
    """``rows`` after reporting the skipped bad records; none at all is an error."""
    bad.report()
    if not rows:
        raise DataError(f"{file}: no usable rows")
    return rows


class PathColumn:
    """The image-path column of a list keyed by its images: every path non-empty and listed once."""

    def __init__(self, file: Path, header: list[str], column: int) -> None:
        self.file = file
        self.name = header[column]
        self.column = column
        self.seen: dict[str, int] = {}

    def read(self, line: int, row: list[str]) -> str:
        """The row's image path, stripped; an empty or repeated one raises ``DataError`` naming file and line."""
        relative = row[self.column].strip()
        if not relative:
            raise DataError(f"{self.file}:{line}: column {self.name} (the image path) is empty")
        first = self.seen.get(relative)
        if first is not None:
            raise DataError(f"{self.file}:{line}: {relative} appears a second time (first on line {first})")
        self.seen[relative] = line
        return relative
