"""How the dataset readers open their text files (CSV and whitespace lists, COCO json): as UTF-8, a byte-order mark
ignored. A file in another encoding (a list saved as Latin-1 or UTF-16) is one ``DataError`` naming the file, the
line and column of its first byte that is not UTF-8, and the byte, instead of a bare ``UnicodeDecodeError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from mobivision.errors import DataError

ENCODING = "utf-8-sig"
"""UTF-8; a byte-order mark at the start is dropped (Excel's "CSV UTF-8" writes one)."""


@contextlib.contextmanager
def open_text(file: Path, *, newline: str | None = None) -> Iterator[TextIO]:
    """``file`` open for reading as UTF-8 text; ``newline`` as ``open``'s (``""`` for ``csv.reader``).

    Raises:
        DataError: Reading it, in the ``with`` block, met a byte that is not UTF-8.
    """
    with open(file, encoding=ENCODING, newline=newline) as f:
        try:
            yield f
        except UnicodeDecodeError:
            error = _not_utf8(file)
            if error is None:  # raised while decoding something else in the block: not ours to explain
                raise
            raise error from None


def whitespace_lines(file: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of the non-blank lines of a whitespace-separated list, read as ``open_text``."""
    with open_text(file) as f:
        for line, text in enumerate(f, start=1):
            fields = text.split()
            if fields:
                yield line, fields


def _not_utf8(file: Path) -> DataError | None:
    """The ``DataError`` for the first byte of ``file`` that is not UTF-8, or ``None`` if it has none.

    The file is read again in binary, a line at a time (a newline byte never occurs inside a UTF-8 sequence), so
    the line is 1-based and the column counts the characters before the byte on its line, plus one, as an
    editor shows it.
    """
    with open(file, "rb") as f:
        for line, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                column = len(raw[: exc.start].decode(ENCODING)) + 1
                return DataError(
                    f"{file}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {column}); "
                    f"save the file as UTF-8"
                )
    return None
