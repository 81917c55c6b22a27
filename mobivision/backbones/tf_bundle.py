"""Read TensorFlow V2 checkpoints (tensor bundles) into NumPy arrays, without TensorFlow.

A checkpoint such as TF-Slim's ``mobilenet_v1_1.0_224.ckpt`` is a *tensor bundle*: ``<prefix>.index``
maps every tensor name to its dtype, shape and byte range, and the shards
``<prefix>.data-SSSSS-of-NNNNN`` hold the raw tensor bytes. The index is a LevelDB SSTable whose values
are serialized protobufs: a ``BundleHeaderProto`` under the empty key and a ``BundleEntryProto`` under
each tensor name.

Both layers are decoded by hand here, because the alternatives (TensorFlow itself, or protobuf plus TF's
generated message classes) would be heavy run-time dependencies just to load a few megabytes of weights,
and the subset of each format that TensorFlow writes is small and stable (``tensor_bundle.cc``,
``table_builder.cc``). TensorFlow writes the index uncompressed (``kNoCompression``: its comment says
Snappy may be missing on some platforms), so no Snappy decoder is needed; a compressed block is reported
as unsupported. Index blocks are checksummed (crc32c); tensor data is bounds-checked but its crc32c is
not verified, which in pure Python would take seconds per ten megabytes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mobivision.errors import WeightFileError

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48  # metaindex and index BlockHandles, padded to 40 bytes, then the 8-byte magic.
_BLOCK_TRAILER_SIZE = 5  # 1-byte compression type, then the masked crc32c of block and type byte.
_SNAPPY_COMPRESSION = 1
_SUPPORTED_BUNDLE_VERSION = 1
_BIG_ENDIAN = 1

# TensorFlow DataType enum values (types.proto) that a checkpoint can hold as plain arrays.
_NUMPY_DTYPES = {
    1: np.float32,
    2: np.float64,
    3: np.int32,
    4: np.uint8,
    5: np.int16,
    6: np.int8,
    8: np.complex64,
    9: np.int64,
    10: np.bool_,
    17: np.uint16,
    18: np.complex128,
    19: np.float16,
    22: np.uint32,
    23: np.uint64,
}
_DT_STRING = 7
_DT_BFLOAT16 = 14
_DATA_FILE_SUFFIX = re.compile(r"\.data-\d{5}-of-\d{5}$")


class _FormatError(Exception):
    """A format violation inside one file, re-raised as ``WeightFileError`` naming the file."""


@dataclass(frozen=True)
class _Entry:
    """Where one tensor lives, from its ``BundleEntryProto``."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int


def read_tf_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every tensor of a TensorFlow V2 checkpoint.

    Args:
        path: The checkpoint prefix (``.../mobilenet_v1_1.0_224.ckpt``), its ``.index`` or a data shard
            file, or a directory that holds exactly one ``*.index`` file.

    Returns:
        Tensor name to array, in the index's (sorted) order. Bookkeeping tensors such as ``global_step``
        are included; string tensors are object arrays of ``bytes``; bfloat16 becomes float32.

    Raises:
        WeightFileError: A file is missing, unreadable, truncated or corrupt, or holds a tensor kind this
            reader does not support (partitioned variables, variant/resource dtypes).
    """
    prefix = _checkpoint_prefix(Path(path))
    index_path = Path(f"{prefix}.index")
    try:
        num_shards, big_endian, entries = _parse_index(_read_file(index_path))
    except _FormatError as exc:
        raise WeightFileError(f"{index_path}: {exc}") from None
    tensors: dict[str, np.ndarray] = {}
    for shard_id in range(num_shards):
        shard_entries = [entry for entry in entries if entry.shard_id == shard_id]
        if shard_entries:
            data_path = Path(f"{prefix}.data-{shard_id:05d}-of-{num_shards:05d}")
            tensors.update(_read_shard(data_path, shard_entries, big_endian))
    return {entry.name: tensors[entry.name] for entry in entries}


def _checkpoint_prefix(path: Path) -> Path:
    """The checkpoint prefix that ``path`` (prefix, index, data shard or directory) designates."""
    if path.is_dir():
        indexes = sorted(path.glob("*.index"))
        if len(indexes) != 1:
            found = ", ".join(index.name for index in indexes) or "none"
            raise WeightFileError(f"{path}: expected exactly one *.index checkpoint file, found {found}")
        return indexes[0].with_suffix("")
    if path.suffix == ".index":
        return path.with_suffix("")
    return path.with_name(_DATA_FILE_SUFFIX.sub("", path.name))


def _read_file(path: Path) -> bytes:
    """The whole content of ``path``; a missing or unreadable file is a ``WeightFileError``."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise WeightFileError(
            f"{path}: no such file; expected a TensorFlow checkpoint (prefix, .index file or directory)"
        ) from None
    except OSError as exc:
        raise WeightFileError(f"{path}: cannot read: {exc.strerror}") from None


# ---------------------------------------------------------------------------------------------------------
# Bundle index: header and entries.


def _parse_index(index: bytes) -> tuple[int, bool, list[_Entry]]:
    """Decode an index file into (number of shards, big-endian data?, tensor entries)."""
    records = list(_table_records(index))
    if not records or records[0][0] != b"":
        raise _FormatError("no bundle header record; not a TensorFlow V2 checkpoint index")
    num_shards, big_endian = _parse_header(records[0][1])
    entries = []
    for key, value in records[1:]:
        # Keys of the slices of a partitioned variable start with a NUL byte (TF's OrderedCode); the
        # variable's own entry lists the slices and is rejected in _parse_entry.
        if key.startswith(b"\x00"):
            continue
        entry = _parse_entry(_decode_name(key), value)
        if not 0 <= entry.shard_id < num_shards:
            raise _FormatError(f"tensor '{entry.name}' is in shard {entry.shard_id} of {num_shards}")
        entries.append(entry)
    return num_shards, big_endian, entries


def _decode_name(key: bytes) -> str:
    """A tensor name from its table key."""
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        raise _FormatError(f"tensor name {key!r} is not UTF-8; the index is corrupt") from None


def _parse_header(message: bytes) -> tuple[int, bool]:
    """(num_shards, big-endian?) from a ``BundleHeaderProto``, after checking its version."""
    num_shards, endianness, min_consumer = 1, 0, 0
    for field, value in _proto_fields(message, "the bundle header"):
        if field == 1:
            num_shards = _as_int(value, "num_shards")
        elif field == 2:
            endianness = _as_int(value, "endianness")
        elif field == 3:
            min_consumer = _version_min_consumer(value)
    if num_shards < 1:
        raise _FormatError(f"bundle header has num_shards={num_shards}")
    if min_consumer > _SUPPORTED_BUNDLE_VERSION:
        raise _FormatError(
            f"checkpoint needs a bundle reader of version >= {min_consumer}; "
            f"this one reads version {_SUPPORTED_BUNDLE_VERSION}"
        )
    return num_shards, endianness == _BIG_ENDIAN


def _version_min_consumer(value: int | bytes) -> int:
    """``min_consumer`` of a ``VersionDef`` message."""
    message = _as_message(value, "version")
    fields = [_as_int(v, "version.min_consumer") for f, v in _proto_fields(message, "version") if f == 2]
    return fields[-1] if fields else 0


def _parse_entry(name: str, message: bytes) -> _Entry:
    """A ``BundleEntryProto``: dtype (1), shape (2), shard_id (3), offset (4), size (5), slices (7)."""
    what = f"the entry of tensor '{name}'"
    values = {"dtype": 0, "shard_id": 0, "offset": 0, "size": 0}
    field_names = {1: "dtype", 3: "shard_id", 4: "offset", 5: "size"}
    shape: tuple[int, ...] = ()
    num_slices = 0
    for field, value in _proto_fields(message, what):
        if field in field_names:
            values[field_names[field]] = _signed(_as_int(value, f"{what}: {field_names[field]}"))
        elif field == 2:
            shape = _parse_shape(_as_message(value, f"{what}: shape"), name)
        elif field == 7:
            num_slices += 1
    if num_slices:
        raise _FormatError(f"tensor '{name}' is a partitioned variable ({num_slices} slices); not supported")
    if values["offset"] < 0 or values["size"] < 0:
        raise _FormatError(f"{what} has a negative offset or size; the index is corrupt")
    return _Entry(name=name, shape=shape, **values)


def _parse_shape(message: bytes, name: str) -> tuple[int, ...]:
    """A fully defined shape from a ``TensorShapeProto``: dims (2) of ``Dim{size (1)}``, unknown_rank (3)."""
    what = f"the shape of tensor '{name}'"
    dims = []
    for field, value in _proto_fields(message, what):
        if field == 2:
            sizes = [_as_int(v, what) for f, v in _proto_fields(_as_message(value, what), what) if f == 1]
            dims.append(_signed(sizes[-1]) if sizes else 0)
        elif field == 3 and _as_int(value, what):
            raise _FormatError(f"tensor '{name}' has an unknown rank")
    if any(size < 0 for size in dims):
        raise _FormatError(f"tensor '{name}' has a partially unknown shape {dims}")
    return tuple(dims)


# ---------------------------------------------------------------------------------------------------------
# Protobuf wire format (only what the bundle messages use).


class _Bytes:
    """A cursor over a bytes object whose reads fail with ``_FormatError`` instead of running off the end."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.what = what
        self.pos = 0

    def at_end(self) -> bool:
        """Whether every byte has been consumed."""
        return self.pos >= len(self.data)

    def take(self, count: int) -> bytes:
        """The next ``count`` bytes."""
        if self.pos + count > len(self.data):
            raise _FormatError(f"{self.what} is truncated (needs {count} more bytes at offset {self.pos})")
        self.pos += count
        return self.data[self.pos - count : self.pos]

    def varint(self) -> int:
        """The next base-128 varint (at most 10 bytes, i.e. 64 bits)."""
        result = 0
        for shift in range(0, 70, 7):
            byte = self.take(1)[0]
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
        raise _FormatError(f"{self.what} has a varint longer than 10 bytes at offset {self.pos}")


def _proto_fields(message: bytes, what: str) -> Iterator[tuple[int, int | bytes]]:
    """Yield (field number, value) for each field: ints for varint/fixed fields, bytes for length-delimited."""
    cursor = _Bytes(message, what)
    while not cursor.at_end():
        tag = cursor.varint()
        field, wire_type = tag >> 3, tag & 7
        if field == 0:
            raise _FormatError(f"{what} has a protobuf field number 0; the index is corrupt")
        if wire_type == 0:
            yield field, cursor.varint()
        elif wire_type == 1:
            yield field, int.from_bytes(cursor.take(8), "little")
        elif wire_type == 2:
            yield field, cursor.take(cursor.varint())
        elif wire_type == 5:
            yield field, int.from_bytes(cursor.take(4), "little")
        else:
            raise _FormatError(f"{what} has an unsupported protobuf wire type {wire_type}")


def _as_int(value: int | bytes, what: str) -> int:
    """``value`` if it came from a numeric field, else a ``_FormatError``."""
    if not isinstance(value, int):
        raise _FormatError(f"{what} should be a number but is a length-delimited field")
    return value


def _as_message(value: int | bytes, what: str) -> bytes:
    """``value`` if it came from a length-delimited field, else a ``_FormatError``."""
    if not isinstance(value, bytes):
        raise _FormatError(f"{what} should be a message but is a number")
    return value


def _signed(value: int) -> int:
    """A varint read as an unsigned 64-bit number, reinterpreted as int64 (negatives use 10 bytes)."""
    return value - (1 << 64) if value >= 1 << 63 else value


# ---------------------------------------------------------------------------------------------------------
# LevelDB SSTable (TensorFlow's copy in tensorflow/core/lib/io/table*.cc).


def _table_records(table: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Yield every (key, value) of an SSTable, in key order."""
    if len(table) < _FOOTER_SIZE:
        raise _FormatError(
            f"only {len(table)} bytes, too short for an SSTable footer; expected a TensorFlow checkpoint index"
        )
    footer = table[-_FOOTER_SIZE:]
    if int.from_bytes(footer[-8:], "little") != _TABLE_MAGIC:
        raise _FormatError("bad SSTable magic; expected a TensorFlow checkpoint index")
    handles = _Bytes(footer[:-8], "the SSTable footer")
    _read_block(table, *_block_handle(handles), "metaindex block")  # Checked, but empty: TF writes no filters.
    index_block = _read_block(table, *_block_handle(handles), "index block")
    for _, handle_bytes in _block_records(index_block, "the index block"):
        offset, size = _block_handle(_Bytes(handle_bytes, "a block handle in the index block"))
        yield from _block_records(_read_block(table, offset, size, "data block"), f"data block at {offset}")


def _block_handle(cursor: _Bytes) -> tuple[int, int]:
    """A BlockHandle: (offset, size) as two varints."""
    return cursor.varint(), cursor.varint()


def _read_block(table: bytes, offset: int, size: int, kind: str) -> bytes:
    """The contents of the block at ``offset``, after checking its trailer (type and crc32c)."""
    end = offset + size
    if end + _BLOCK_TRAILER_SIZE > len(table) - _FOOTER_SIZE:
        raise _FormatError(
            f"{kind} at bytes {offset}..{end + _BLOCK_TRAILER_SIZE} runs past the end of the data "
            f"({len(table) - _FOOTER_SIZE} bytes before the footer); the file is truncated or corrupt"
        )
    stored_crc = int.from_bytes(table[end + 1 : end + _BLOCK_TRAILER_SIZE], "little")
    if _masked_crc32c(table[offset : end + 1]) != stored_crc:
        raise _FormatError(f"checksum mismatch in the {kind} at byte {offset}; the file is corrupt")
    compression = table[end]
    if compression == _SNAPPY_COMPRESSION:
        raise _FormatError(f"the {kind} at byte {offset} is Snappy-compressed, which TensorFlow never writes")
    if compression != 0:
        raise _FormatError(f"the {kind} at byte {offset} has unknown compression type {compression}")
    return table[offset:end]


def _block_records(block: bytes, what: str) -> Iterator[tuple[bytes, bytes]]:
    """Yield the (key, value) records of a block: prefix-compressed keys, then the restart array."""
    if len(block) < 4:
        raise _FormatError(f"{what} is too short to hold its restart count")
    num_restarts = int.from_bytes(block[-4:], "little")
    records_end = len(block) - 4 * (num_restarts + 1)
    if records_end < 0:
        raise _FormatError(f"{what} claims {num_restarts} restart points, more than fit in the block")
    cursor = _Bytes(block[:records_end], what)
    key = b""
    while not cursor.at_end():
        shared, unshared, value_size = cursor.varint(), cursor.varint(), cursor.varint()
        if shared > len(key):
            raise _FormatError(f"{what} shares {shared} key bytes with a {len(key)}-byte key")
        key = key[:shared] + cursor.take(unshared)
        yield key, cursor.take(value_size)


def _make_crc32c_table() -> list[int]:
    """The byte-at-a-time lookup table of CRC-32C (Castagnoli, reflected polynomial 0x82F63B78)."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC32C_TABLE = _make_crc32c_table()


def _masked_crc32c(data: bytes) -> int:
    """LevelDB's masked CRC-32C of ``data``, as stored in block trailers."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------------------
# Data shards.


def _read_shard(path: Path, entries: list[_Entry], big_endian: bool) -> dict[str, np.ndarray]:
    """Read the tensors of ``entries`` from the data shard ``path``."""
    data = _read_file(path)
    tensors = {}
    for entry in entries:
        end = entry.offset + entry.size
        if end > len(data):
            raise WeightFileError(
                f"{path} is truncated: tensor '{entry.name}' needs bytes {entry.offset}..{end} but file has {len(data)}"
            )
        try:
            tensors[entry.name] = _decode_tensor(entry, data[entry.offset : end], big_endian)
        except _FormatError as exc:
            raise WeightFileError(f"{path}: {exc}") from None
    return tensors


def _decode_tensor(entry: _Entry, raw: bytes, big_endian: bool) -> np.ndarray:
    """The array that ``raw`` (the tensor's bytes in its shard) encodes."""
    if entry.dtype == _DT_STRING:
        return _decode_strings(entry, raw)
    if entry.dtype == _DT_BFLOAT16:
        upper_halves = _decode_numeric(entry, raw, np.dtype(np.uint16), big_endian)
        return (upper_halves.astype(np.uint32) << 16).view(np.float32)
    if entry.dtype not in _NUMPY_DTYPES:
        raise _FormatError(f"tensor '{entry.name}' has unsupported TensorFlow dtype enum {entry.dtype}")
    return _decode_numeric(entry, raw, np.dtype(_NUMPY_DTYPES[entry.dtype]), big_endian)


def _decode_numeric(entry: _Entry, raw: bytes, dtype: np.dtype, big_endian: bool) -> np.ndarray:
    """A fixed-width tensor: its elements back to back in C order."""
    expected = int(np.prod(entry.shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise _FormatError(
            f"tensor '{entry.name}' of shape {list(entry.shape)} and dtype {dtype} should take "
            f"{expected} bytes but the index gives {len(raw)}"
        )
    stored = dtype.newbyteorder(">" if big_endian else "<")
    return np.frombuffer(raw, dtype=stored).astype(dtype).reshape(entry.shape)


def _decode_strings(entry: _Entry, raw: bytes) -> np.ndarray:
    """A string tensor: varint64 lengths, a 4-byte checksum of the lengths, then the bytes."""
    cursor = _Bytes(raw, f"string tensor '{entry.name}'")
    count = int(np.prod(entry.shape, dtype=np.int64))
    lengths = [cursor.varint() for _ in range(count)]
    cursor.take(4)
    strings = np.empty(count, dtype=object)
    strings[:] = [cursor.take(length) for length in lengths]
    if not cursor.at_end():
        raise _FormatError(f"string tensor '{entry.name}' has {len(raw) - cursor.pos} bytes past its data")
    return strings.reshape(entry.shape)
