"""``read_attribute_csv``: any table of image attributes as CSV with a header row, read into records.

The image path comes first (any column name, e.g. ``path`` or the ``image_id`` of the Kaggle mirror's
``list_attr_celeba.csv``), then one column per attribute with values 0/1 or -1/+1 (one encoding per file) and an
empty cell for unknown (NaN: left out of the loss and the metrics). CelebA's official text files have their own
reader, ``mobivision.data.celeba``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from mobivision.data.celeba import select_attributes
from mobivision.data.csv_rows import BadRowError, PathColumn, csv_header, csv_rows, usable_rows
from mobivision.data.records import BadRecords, ImageRecord
from mobivision.errors import DataError

_PRESENT, _ABSENT, _UNKNOWN = 1.0, 0.0, math.nan


def read_attribute_csv(
    csv_file: str | Path,
    *,
    image_root: str | Path,
    attributes: Sequence[str] | None = None,
    on_error: str = "raise",
) -> tuple[list[ImageRecord], list[str]]:
    """Records of an attribute table in CSV form, in file order.

    The header row names the columns: first the image path relative to ``image_root`` (any name), then the
    attributes. A cell is ``1`` / ``+1`` (present), ``0`` or ``-1`` (absent, one encoding per file; ``1.0``
    style numbers are accepted too) or empty (unknown: NaN). The file is read as UTF-8 (a byte-order mark is
    ignored).

    Args:
        csv_file: The table, e.g. the Kaggle mirror's ``list_attr_celeba.csv``.
        image_root: The folder the paths are relative to.
        attributes: Attribute names to keep, in this order; ``None`` keeps all columns after the first.
        on_error: ``raise`` or ``skip`` (and report) rows whose image file is missing.

    Returns:
        The records (``image_id`` = the path as written) and the selected attribute names.

    Raises:
        ConfigError: An unknown or repeated attribute name in ``attributes``.
        DataError: The file is missing, its header or a row is malformed, a value is not one of the above, it
            mixes the 0/1 and -1/+1 encodings, a path repeats, or (with ``on_error="raise"``) an image is missing.
    """
    file = Path(csv_file)
    if not file.is_file():
        raise DataError(f"attribute CSV not found: {file}")
    image_root = Path(image_root)
    bad = BadRecords(str(file), on_error)
    header = [cell.strip() for cell in csv_header(file) or []]
    if len(header) < 2 or not all(header):
        raise DataError(
            f"{file}:1: expected a header row: the image path column, then one column per attribute, got {header}"
        )
    names = header[1:]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"{file}:1: attribute columns {repeated} appear more than once")
    columns = select_attributes(names, attributes, source=str(file))
    paths = PathColumn(file, header, 0)
    first: dict[str, tuple[int, str, str]] = {}  # "zero" / "minus": line, column and value where it showed first

    def parse(line: int, row: list[str]) -> ImageRecord:
        relative = paths.read(line, row)
        values = [_csv_value(file, line, name, cell.strip(), first) for name, cell in zip(names, row[1:], strict=True)]
        path = image_root / relative
        if not path.is_file():
            raise BadRowError(f"image file not found: {path}")
        return ImageRecord(image_id=relative, path=path, label=tuple(values[c] for c in columns))

    described = f"{header[0]} + {len(names)} attributes"
    records = csv_rows(file, parse, bad=bad, width=len(header), columns=described)
    return usable_rows(file, records, bad), [names[c] for c in columns]


def _csv_value(file: Path, line: int, column: str, text: str, first: dict[str, tuple[int, str, str]]) -> float:
    """One CSV cell as 1.0 / 0.0 / NaN, recording and checking which encoding (0/1 or -1/+1) the file uses."""
    if not text:
        return _UNKNOWN
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if number not in (-1.0, 0.0, 1.0):
        raise DataError(f"{file}:{line}: column {column} is {text!r}; expected 0/1 or -1/+1 (empty for unknown)")
    if number == 1.0:
        if not text.startswith("+"):
            return _PRESENT
        kind = "minus"  # an explicit +1 belongs to the -1/+1 encoding
    else:
        kind = "zero" if number == 0.0 else "minus"
    first.setdefault(kind, (line, column, text))
    other = first.get("minus" if kind == "zero" else "zero")
    if other is not None:
        other_line, other_column, other_text = other
        raise DataError(
            f"{file}:{line}: column {column} is {text!r}, but line {other_line} has {other_text!r} in column "
            f"{other_column}: a file must use either 0/1 or -1/+1 throughout"
        )
    return _PRESENT if number == 1.0 else _ABSENT
