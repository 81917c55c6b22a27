"""Image files the tests write by hand."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def header_only_png(path: Path, width: int, height: int) -> Path:
    """A 57-byte PNG that declares ``width`` x ``height`` RGB pixels and holds none: Pillow opens it (the header),
    and decoding it fails. An image refused for its size, not for its missing data, was refused before decoding."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path
