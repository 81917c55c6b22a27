"""Unit tests of ``mobivision.data.text_files``: dataset text files read as UTF-8, anything else one ``DataError``
naming the file, line, column and byte. (Each reader's own test file checks that its files go through it.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from mobivision.data.text_files import open_text, whitespace_lines
from mobivision.errors import DataError


@pytest.mark.parametrize(
    ("raw", "line", "column", "byte"),
    [
        ("path,label\na.png,café\n".encode("latin-1"), 2, 10, 0xE9),  # saved as Latin-1
        ("ü.png 1\n".encode() + "ÿ.png 2\n".encode("latin-1"), 2, 1, 0xFF),
        ("x,y\nü,".encode() + b"\xe9\n", 2, 3, 0xE9),  # ü: two bytes, one column
        ("a b\nend é".encode()[:-1], 2, 5, 0xC3),  # cut in the middle of a character
        ("\ufeffcaf".encode() + b"\xe9\n", 1, 4, 0xE9),  # the byte-order mark is no column
    ],
    ids=["latin-1", "after-a-utf-8-line", "after-a-2-byte-character", "cut-character", "after-a-byte-order-mark"],
)
def test_the_error_names_the_line_column_and_byte(
    tmp_path: Path, raw: bytes, line: int, column: int, byte: int
) -> None:
    file = tmp_path / "list.txt"
    file.write_bytes(raw)
    with pytest.raises(DataError) as info, open_text(file) as f:
        f.read()
    assert str(info.value) == (
        f"{file}:{line}: not UTF-8 text (byte 0x{byte:02x} at column {column}); save the file as UTF-8"
    )
    with pytest.raises(DataError, match=f"^{file}:{line}: not UTF-8 text"):
        list(whitespace_lines(file))


def test_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    file = tmp_path / "list.txt"
    file.write_bytes("\ufeff3 é.jpg\n\n4 b.jpg\n".encode())
    assert list(whitespace_lines(file)) == [(1, ["3", "é.jpg"]), (3, ["4", "b.jpg"])]


def test_a_decoding_error_of_something_else_passes_through(tmp_path: Path) -> None:
    file = tmp_path / "list.txt"
    file.write_text("fine\n")
    with pytest.raises(UnicodeDecodeError), open_text(file):
        b"\xe9".decode("utf-8")
