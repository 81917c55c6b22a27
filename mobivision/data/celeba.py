"""Readers of CelebA's official text files: face attributes, and face boxes as COCO detection data.

CelebFaces Attributes (Liu, Luo, Wang and Tang, "Deep Learning Face Attributes in the Wild", ICCV 2015):
202,599 face images of 10,177 people, 40 binary attributes each, official partition 162,770 train / 19,867 val /
19,962 test. The MobileNets paper (Howard et al., 2017, Sec. 4.5) distils a face-attribute classifier; CelebA is
the public data set of that kind.

``read_celeba`` takes ``root`` = the folder holding the official files (UTF-8 text, whitespace-separated, one
image per line):

- ``list_attr_celeba.txt``: line 1 the number of images, line 2 the attribute names (the official file ends the
  line with a space), then ``<file> <v1> .. <vK>`` with values ``1`` (present) or ``-1`` (absent), separated by
  one or more spaces. K is taken from line 2, so a smaller synthetic set works the same way;
- ``list_eval_partition.txt``: ``<file> <0|1|2>`` (train, val, test), no header;
- ``list_bbox_celeba.txt`` (only for ``images="in_the_wild"``): line 1 the count, line 2
  ``image_id x_1 y_1 width height``, then ``<file> <x> <y> <width> <height>`` in pixels of the in-the-wild image;
- ``img_align_celeba/<file>`` (aligned and cropped to 178x218) or ``img_celeba/<file>`` (in the wild).

Labels are tuples of floats, 1.0 for ``1`` and 0.0 for ``-1``, in the order of the selected attributes; records
come in the partition file's order and the ``image_id`` is the file name (``000001.jpg``). A malformed line, a
value other than 1/-1, a count on line 1 that disagrees with the lines, a file listed twice or files that one list
has and the other lacks are errors in the metadata and always raise, naming the file and line. A missing image or
an empty box is a bad record that raises or, with ``on_error="skip"``, is skipped and reported.

``write_celeba_face_annotations`` converts the face boxes of one split of the in-the-wild images into a COCO
annotation file (one category, ``face``; one box per image), so the COCO detection reader, the SSD training
and the COCO evaluator take CelebA unchanged; ``read_celeba_faces`` reads that file back as detection records
with each image's attributes beside them.

Any other attribute table (the Kaggle mirror's CSV form included) is read by ``mobivision.data.attribute_csv``.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import torch
from filelock import FileLock
from PIL import Image

from mobivision.data.coco import CocoData, read_coco
from mobivision.data.records import BadRecords, ImageRecord
from mobivision.data.text_files import whitespace_lines
from mobivision.errors import ConfigError, DataError

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
)
"""The 40 attribute names of ``list_attr_celeba.txt``, in the file's order."""

CELEBA_SPLITS = {"train": 0, "val": 1, "test": 2}
"""Split name -> its number in ``list_eval_partition.txt``."""

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
BBOX_FILE = "list_bbox_celeba.txt"
IMAGE_FOLDERS = {"aligned": "img_align_celeba", "in_the_wild": "img_celeba"}
BBOX_HEADER = ("image_id", "x_1", "y_1", "width", "height")
LAYOUT = (
    f"root must be the folder holding {ATTR_FILE}, {PARTITION_FILE}, img_align_celeba/<file>.jpg and, for "
    f"in-the-wild images, {BBOX_FILE} and img_celeba/<file>.jpg"
)

_PRESENT, _ABSENT = 1.0, 0.0
_PLUS_MINUS = {"1": _PRESENT, "+1": _PRESENT, "-1": _ABSENT}
_VALID = frozenset(_PLUS_MINUS)
_SHOWN = 5


def _suggest(name: str, options: Sequence[str]) -> str:
    """``"; did you mean 'X'?"`` for the closest option (same letters in another case first), else ``""``."""
    folded = [option for option in options if option.lower() == name.lower()]
    close = folded or difflib.get_close_matches(name, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def select_attributes(available: Sequence[str], wanted: Sequence[str] | None, *, source: str) -> list[int]:
    """Indices of the ``wanted`` attribute names in ``available``, in the order of ``wanted``.

    Args:
        available: The attribute names a file provides, in its column order.
        wanted: The names to keep (a single string counts as one name), or ``None`` for all of them.
        source: What to name in an error (the file).

    Returns:
        Column indices into ``available``.

    Raises:
        ConfigError: ``wanted`` is empty, names an attribute twice, or names one that ``available`` lacks (with
            the closest name).
    """
    if wanted is None:
        return list(range(len(available)))
    if isinstance(wanted, str):
        wanted = [wanted]
    wanted = [str(name) for name in wanted]
    if not wanted:
        raise ConfigError(
            f"the list of attributes to use is empty; give at least one of the {len(available)} in {source}"
        )
    duplicates = sorted({name for name in wanted if wanted.count(name) > 1})
    if duplicates:
        raise ConfigError(f"attributes {duplicates} are selected more than once")
    index = {name: i for i, name in enumerate(available)}
    for name in wanted:
        if name not in index:
            hint = _suggest(name, available)
            if not hint:
                hint = f"; available: {', '.join(available)}"
            raise ConfigError(f"unknown attribute {name!r}: not among the {len(available)} in {source}{hint}")
    return [index[name] for name in wanted]


def read_celeba(
    root: str | Path,
    *,
    split: str,
    attributes: Sequence[str] | None = None,
    images: str = "aligned",
    on_error: str = "raise",
) -> tuple[list[ImageRecord], list[str]]:
    """Records of one official CelebA split, in ``list_eval_partition.txt`` order.

    Args:
        root: The folder with the official files (see the module docstring).
        split: ``train``, ``val`` or ``test``.
        attributes: Attribute names to keep, in this order; ``None`` keeps all of line 2 of ``list_attr_celeba.txt``.
        images: ``aligned`` (``img_align_celeba/``, no box) or ``in_the_wild`` (``img_celeba/``, each record with
            its face box ``(x, y, x + width, y + height)`` from ``list_bbox_celeba.txt``).
        on_error: ``raise`` or ``skip`` (and report) bad records: a missing image file, an empty box.

    Returns:
        The records (``image_id`` = file name, label = one float per selected attribute) and the selected names.

    Raises:
        ConfigError: Unknown ``split``, ``images`` or attribute name.
        DataError: ``on_error`` is invalid, a metadata file or the image folder is missing, the metadata is
            malformed or inconsistent, or (with ``on_error="raise"``) a record is bad.
    """
    if split not in CELEBA_SPLITS:
        raise ConfigError(
            f"CelebA split must be one of {list(CELEBA_SPLITS)}, got {split!r}{_suggest(split, list(CELEBA_SPLITS))}"
        )
    if images not in IMAGE_FOLDERS:
        raise ConfigError(
            f"CelebA images must be one of {list(IMAGE_FOLDERS)}, got {images!r}"
            f"{_suggest(str(images), list(IMAGE_FOLDERS))}"
        )
    root = Path(root)
    bad = BadRecords(f"CelebA {split} split ({images}) at {root}", on_error)
    partition_file, attr_file = _metadata(root, PARTITION_FILE), _metadata(root, ATTR_FILE)
    partition = _read_partition(partition_file)
    wanted = {name for name, (number, _) in partition.items() if number == CELEBA_SPLITS[split]}
    names, columns, labels, attr_lines = _read_attributes(attr_file, attributes, wanted)
    for name, (_, line) in partition.items():
        if name not in attr_lines:
            raise DataError(f"{partition_file}:{line}: {name} is not listed in {attr_file}")
    unsplit = [name for name in attr_lines if name not in partition]
    if unsplit:
        raise DataError(
            f"{attr_file}:{attr_lines[unsplit[0]]}: {_some(unsplit)} listed here but in no split of {partition_file}"
        )
    boxes: dict[str, tuple[float, float, float, float]] = {}
    if images == "in_the_wild":
        boxes = _read_boxes(_metadata(root, BBOX_FILE), wanted)
    folder = _image_folder(root, images)
    present = _files_in(folder)

    records = []
    for name, (number, _) in partition.items():
        if number != CELEBA_SPLITS[split]:
            continue
        box = None
        if images == "in_the_wild":
            x, y, width, height = boxes[name]
            if width <= 0 or height <= 0:
                bad.add(f"{name}: empty box x={x:g} y={y:g} width={width:g} height={height:g} in {BBOX_FILE}")
                continue
            box = (x, y, x + width, y + height)
        if name not in present:
            bad.add(f"{name}: image file not found: {folder / name}")
            continue
        records.append(ImageRecord(image_id=name, path=folder / name, label=labels[name], box=box))
    bad.report()
    if not records:
        raise DataError(f"no usable images in the CelebA {split} split ({images}) at {root}")
    return records, [names[c] for c in columns]


FACE_CATEGORY: dict[str, int | str] = {"id": 1, "name": "face"}
"""The one category of the converted face boxes."""


def write_celeba_face_annotations(
    root: str | Path, split: str, out_file: str | Path, *, on_error: str = "raise"
) -> Path:
    """Write the face boxes of one official CelebA split (in-the-wild images) as a COCO annotation file.

    One image entry per record of ``read_celeba(root, split=split, images="in_the_wild")``, in its order: ``id``
    the 1-based position, ``file_name`` the CelebA file name (relative to ``root/img_celeba``), ``width`` and
    ``height`` read from the image header (not decoded). One annotation per image, with the same ``id``:
    ``category_id`` 1 (``FACE_CATEGORY``), ``bbox`` ``[x, y, width, height]`` as ``list_bbox_celeba.txt`` gives
    it (not clipped; the COCO reader clips), ``area`` ``width * height``, ``iscrowd`` 0.

    The file is written atomically (a temporary file beside it, then a rename), so a reader never sees a partial
    one. An existing ``out_file`` newer than ``list_bbox_celeba.txt`` and ``list_eval_partition.txt`` is reused
    as it is; one older than either is rewritten.

    Args:
        root: The CelebA folder (see the module docstring); needs ``img_celeba/`` and ``list_bbox_celeba.txt``.
        split: ``train``, ``val`` or ``test``.
        out_file: The json file to write (its folder is created).
        on_error: ``raise`` or ``skip`` (and report) bad records: a missing image, an empty box (``read_celeba``)
            or an image whose header cannot be read.

    Returns:
        ``out_file`` as a ``Path``.

    Raises:
        ConfigError: Unknown ``split``.
        DataError: As ``read_celeba``, or (with ``on_error="raise"``) an image whose size cannot be read.
    """
    root, out_file = Path(root), Path(out_file)
    sources = [_metadata(root, BBOX_FILE), _metadata(root, PARTITION_FILE)]
    if out_file.is_file() and out_file.stat().st_mtime_ns > max(s.stat().st_mtime_ns for s in sources):
        return out_file
    records, _ = read_celeba(root, split=split, images="in_the_wild", on_error=on_error)
    bad = BadRecords(f"CelebA {split} split face boxes at {root}", on_error)
    images: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    for record in records:
        try:
            with Image.open(record.path) as image:  # reads the header only
                width, height = image.size
        except OSError as exc:  # PIL's UnidentifiedImageError is an OSError
            bad.add(f"{record.image_id}: cannot read the image size of {record.path}: {exc}")
            continue
        number = len(images) + 1
        x0, y0, x1, y1 = record.box
        w, h = x1 - x0, y1 - y0
        images.append({"id": number, "file_name": record.image_id, "width": width, "height": height})
        annotations.append(
            {"id": number, "image_id": number, "category_id": 1, "bbox": [x0, y0, w, h], "area": w * h, "iscrowd": 0}
        )
    bad.report()
    if not images:
        raise DataError(f"no usable images in the CelebA {split} split (in_the_wild) at {root}")
    dataset = {"images": images, "annotations": annotations, "categories": [dict(FACE_CATEGORY)]}
    out_file.parent.mkdir(parents=True, exist_ok=True)
    temporary = out_file.with_name(f".{out_file.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8") as f:
            json.dump(dataset, f)
        os.replace(temporary, out_file)
    finally:
        temporary.unlink(missing_ok=True)
    return out_file


@dataclass
class CelebAFaces:
    """What ``read_celeba_faces`` returns.

    Attributes:
        detection: The face boxes as ``read_coco`` reads them (records, the ``face`` label map, the json file).
        attributes: ``{file name: float32 [A]}`` of the images with an attribute row, keyed as ``DetectionDataset``
            looks image-level labels up (the CelebA ``image_id`` is the file name).
        attribute_names: The selected attribute names, in the order of each tensor.
    """

    detection: CocoData
    attributes: dict[str, torch.Tensor]
    attribute_names: list[str]


def read_celeba_faces(
    root: str | Path,
    *,
    split: str,
    annotation_file: str | Path,
    attributes: Sequence[str] | None = None,
    on_error: str = "raise",
) -> CelebAFaces:
    """One official split of the in-the-wild images as detection data with the attributes of the same images.

    The face boxes are converted into ``annotation_file`` (``write_celeba_face_annotations``, under a file lock
    beside it, for parallel jobs and DDP ranks; an up-to-date file is reused) and read with ``read_coco``; the
    attributes come from ``read_celeba(..., images="in_the_wild")``.

    Args:
        root: The CelebA folder (see the module docstring).
        split: ``train``, ``val`` or ``test``.
        annotation_file: The COCO json of the split (its folder is created).
        attributes: Attribute names to keep, in this order; ``None`` keeps all.
        on_error: ``raise`` or ``skip`` (and report) bad records.

    Raises:
        ConfigError, DataError: As ``write_celeba_face_annotations``, ``read_coco`` and ``read_celeba``.
    """
    root, annotation_file = Path(root), Path(annotation_file)
    annotation_file.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(annotation_file.parent / f".{annotation_file.name}.lock"):
        write_celeba_face_annotations(root, split, annotation_file, on_error=on_error)
    detection = read_coco(
        annotation_file,
        root / IMAGE_FOLDERS["in_the_wild"],
        category_ids=[int(FACE_CATEGORY["id"])],
        on_error=on_error,
    )
    records, names = read_celeba(root, split=split, attributes=attributes, images="in_the_wild", on_error=on_error)
    labels = {r.path.name: torch.tensor(r.label, dtype=torch.float32) for r in records}
    return CelebAFaces(detection=detection, attributes=labels, attribute_names=names)


def _some(names: list[str]) -> str:
    """The first few of ``names`` and how many more there are."""
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def _metadata(root: Path, name: str) -> Path:
    """``root/name``, or a ``DataError`` with the expected layout and a hint where the file really is."""
    file = root / name
    if file.is_file():
        return file
    hint = ""
    nested = sorted(root.glob(f"*/{name}")) if root.is_dir() else []
    csv_file = root / Path(name).with_suffix(".csv").name
    if nested:
        hint = f"; found {nested[0]}, use {nested[0].parent} as root"
    elif csv_file.is_file():
        hint = (
            f"; found {csv_file.name} (the Kaggle mirror's CSV form): read it with read_attribute_csv, or put the "
            f"official {name} here (datasets/celeba/README.md)"
        )
    elif not root.is_dir():
        hint = f"; {root} does not exist (python datasets/celeba/prepare.py puts CelebA in place)"
    raise DataError(f"CelebA file not found: {file} ({LAYOUT}){hint}")


def _read_count(file: Path, lines: Iterator[tuple[int, list[str]]]) -> int:
    """The image count on line 1 of a CelebA list."""
    line, fields = next(lines, (1, []))
    if line != 1 or len(fields) != 1 or not fields[0].isdigit():
        raise DataError(f"{file}:{line}: expected the number of images alone on line 1, got {' '.join(fields)!r}")
    return int(fields[0])


def _check_count(file: Path, count: int, entries: int) -> None:
    if count != entries:
        raise DataError(f"{file}:1: says {count} images but the file lists {entries}; is it truncated?")


def _read_partition(file: Path) -> dict[str, tuple[int, int]]:
    """``{file name: (split number, line)}`` in file order."""
    partition: dict[str, tuple[int, int]] = {}
    numbers = {str(n): n for n in CELEBA_SPLITS.values()}
    for line, fields in whitespace_lines(file):
        if len(fields) != 2 or fields[1] not in numbers:
            raise DataError(
                f"{file}:{line}: expected '<file> <0|1|2>' (0 train, 1 val, 2 test), got {' '.join(fields)!r}"
            )
        name = fields[0]
        if name in partition:
            raise DataError(f"{file}:{line}: {name} appears a second time (first on line {partition[name][1]})")
        partition[name] = (numbers[fields[1]], line)
    if not partition:
        raise DataError(f"{file} lists no images")
    return partition


def _read_attributes(
    file: Path, attributes: Sequence[str] | None, wanted: set[str]
) -> tuple[list[str], list[int], dict[str, tuple[float, ...]], dict[str, int]]:
    """Attribute names (line 2), selected columns, labels of the ``wanted`` files and every file's line.

    Every line is checked; only the ``wanted`` files' labels are kept (they share two float objects), so the
    202,599-line file costs little memory.
    """
    lines = whitespace_lines(file)
    count = _read_count(file, lines)
    line, names = next(lines, (2, []))
    if line != 2 or not names or _VALID.intersection(names):
        shown = " ".join(names) if len(names) <= 10 else " ".join(names[:10]) + " ..."
        raise DataError(f"{file}:{line}: expected the attribute names on line 2, got {shown!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"{file}:2: attribute names {repeated} appear more than once")
    columns = select_attributes(names, attributes, source=str(file))
    expected = 1 + len(names)
    pick = itemgetter(*columns) if len(columns) > 1 else lambda values: (values[columns[0]],)
    labels: dict[str, tuple[float, ...]] = {}
    seen: dict[str, int] = {}
    for line, fields in lines:
        if len(fields) != expected:
            raise DataError(
                f"{file}:{line}: expected {expected} values: file name + {len(names)} attributes, got {len(fields)}"
            )
        name, values = fields[0], fields[1:]
        if name in seen:
            raise DataError(f"{file}:{line}: {name} appears a second time (first on line {seen[name]})")
        seen[name] = line
        if not _VALID.issuperset(values):
            column = next(c for c, value in enumerate(values) if value not in _PLUS_MINUS)
            raise DataError(f"{file}:{line}: {name}: attribute {names[column]} is {values[column]!r}; expected 1 or -1")
        if name in wanted:
            labels[name] = tuple(map(_PLUS_MINUS.__getitem__, pick(values)))
    _check_count(file, count, len(seen))
    return names, columns, labels, seen


def _read_boxes(file: Path, wanted: set[str]) -> dict[str, tuple[float, float, float, float]]:
    """``{file name: (x, y, width, height)}`` of the ``wanted`` files; every line is checked."""
    lines = whitespace_lines(file)
    count = _read_count(file, lines)
    line, header = next(lines, (2, []))
    if line != 2 or tuple(header) != BBOX_HEADER:
        raise DataError(
            f"{file}:{line}: expected the header {' '.join(BBOX_HEADER)!r} on line 2, got {' '.join(header)!r}"
        )
    boxes: dict[str, tuple[float, float, float, float]] = {}
    seen: dict[str, int] = {}
    for line, fields in lines:
        try:
            if len(fields) != 5:
                raise ValueError
            x, y, width, height = (float(v) for v in fields[1:])
        except ValueError:
            raise DataError(
                f"{file}:{line}: expected '<file> <x> <y> <width> <height>', got {' '.join(fields)!r}"
            ) from None
        if not all(math.isfinite(v) for v in (x, y, width, height)):
            raise DataError(f"{file}:{line}: box values must be finite numbers, got {' '.join(fields)!r}")
        name = fields[0]
        if name in seen:
            raise DataError(f"{file}:{line}: {name} appears a second time (first on line {seen[name]})")
        seen[name] = line
        if name in wanted:
            boxes[name] = (x, y, width, height)
    _check_count(file, count, len(seen))
    missing = sorted(wanted - boxes.keys())
    if missing:
        raise DataError(f"{file}: no box for {_some(missing)} (listed in {PARTITION_FILE})")
    return boxes


def _files_in(folder: Path) -> set[str]:
    """Names of the files in ``folder``: one directory listing instead of 200,000 ``stat`` calls."""
    with os.scandir(folder) as entries:
        return {entry.name for entry in entries if entry.is_file()}


def _image_folder(root: Path, images: str) -> Path:
    """The image folder; its absence is an error (with a hint for the Kaggle mirror's doubled folder)."""
    folder = root / IMAGE_FOLDERS[images]
    if folder.is_dir():
        nested = folder / folder.name
        if nested.is_dir() and not any(p.suffix for p in folder.iterdir() if p.is_file()):
            raise DataError(
                f"the images are one folder too deep, in {nested} (as the Kaggle mirror unpacks them): "
                f"move them up into {folder}"
            )
        return folder
    archive = {"aligned": "img_align_celeba.zip", "in_the_wild": "img_celeba.7z"}[images]
    raise DataError(f"CelebA image folder not found: {folder} (unpack {archive} into {root}; {LAYOUT})")
