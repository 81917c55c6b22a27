"""Reader of CUB-200-2011 birds in its official layout, for fine-grained classification.

Caltech-UCSD Birds-200-2011 (Wah et al., 2011, CNS-TR-2011-001): 200 species, 11,788 images, 5,994 for training
and 5,794 for testing, one bird box per image. The MobileNets paper (Howard et al., 2017, Sec. 4.3) fine-tunes on
the related Stanford Dogs; MobileNet fine-tuned on CUB-200-2011 reaches about 76% top-1 in later reports.

The reader takes ``root`` = the unpacked ``CUB_200_2011/`` folder and its whitespace-separated lists (UTF-8), all
keyed by the image id (1-based):

- ``images.txt``: ``<id> <path>``, the path relative to ``root/images/``;
- ``image_class_labels.txt``: ``<id> <class>``, class 1..200;
- ``train_test_split.txt``: ``<id> <is_train>``, 1 for train and 0 for test;
- ``classes.txt``: ``<class> <name>``, names like ``001.Black_footed_Albatross``;
- ``bounding_boxes.txt``: ``<id> <x> <y> <width> <height>`` in pixels, the top-left corner taken as is (only
  read with ``use_boxes``; the box becomes ``(x, y, x + width, y + height)``).

Class names drop the numeric folder prefix and keep the rest as written (``Black_footed_Albatross``); labels are
the class numbers minus one. A malformed line, a duplicated id or lists that disagree on the ids are errors in the
metadata and always raise; a missing image, a class outside ``classes.txt`` or an empty box is a bad record that
raises or, with ``on_error="skip"``, is skipped and reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from mobivision.data.records import BadRecords, ImageRecord
from mobivision.data.text_files import whitespace_lines
from mobivision.errors import ConfigError, DataError

SPLITS = {"train": 1, "test": 0}
LAYOUT = (
    "root must be the unpacked CUB_200_2011/ folder: the one holding images.txt, image_class_labels.txt, "
    "train_test_split.txt, classes.txt, bounding_boxes.txt and images/<class folder>/<image>.jpg"
)
_PREFIX = re.compile(r"^\d+\.")


def read_cub(
    root: str | Path, *, split: str, use_boxes: bool = False, on_error: str = "raise"
) -> tuple[list[ImageRecord], list[str]]:
    """Records of one official CUB-200-2011 split, in ``images.txt`` order.

    Args:
        root: The ``CUB_200_2011/`` folder.
        split: ``train`` or ``test`` (``train_test_split.txt``).
        use_boxes: Attach each image's bird box from ``bounding_boxes.txt``, converted to ``xyxy`` pixels.
        on_error: ``raise`` or ``skip`` (and report) bad records: a missing image file, a class outside
            ``classes.txt``, a box of zero width or height.

    Returns:
        The records (``image_id`` is the official id, labels 0-based) and the 200 class names in label order.

    Raises:
        ConfigError: ``split`` is not ``train`` or ``test``.
        DataError: ``on_error`` is not ``raise`` or ``skip``, a metadata file is missing or malformed, the lists
            disagree on the image ids, or (with ``on_error="raise"``) a record is bad.
    """
    if split not in SPLITS:
        raise ConfigError(f"CUB-200-2011 split must be one of {sorted(SPLITS)}, got {split!r}")
    root = Path(root)
    bad = BadRecords(f"CUB-200-2011 {split} split at {root}", on_error)
    classes = _read_list(root, "classes.txt", "<class> <name>", (str,))
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise DataError(f"{root / 'classes.txt'}: class numbers must be 1..{len(classes)}, got {sorted(classes)}")
    names = [_PREFIX.sub("", classes[number][0]) for number in range(1, len(classes) + 1)]
    if len(set(names)) != len(names):
        raise DataError(f"{root / 'classes.txt'}: class names are not unique after dropping the number: {names}")
    images = _read_list(root, "images.txt", "<id> <path>", (str,))
    labels = _read_list(root, "image_class_labels.txt", "<id> <class>", (int,))
    is_train = _read_list(root, "train_test_split.txt", "<id> <is_train 1|0>", (_flag,))
    _same_ids(root, "images.txt", images, "image_class_labels.txt", labels)
    _same_ids(root, "images.txt", images, "train_test_split.txt", is_train)
    boxes: dict[int, tuple] = {}
    if use_boxes:
        boxes = _read_list(root, "bounding_boxes.txt", "<id> <x> <y> <width> <height>", (float, float, float, float))
        _same_ids(root, "images.txt", images, "bounding_boxes.txt", boxes)

    records = []
    for image_id, (relative,) in images.items():
        if is_train[image_id][0] != SPLITS[split]:
            continue
        (label,) = labels[image_id]
        if not 1 <= label <= len(names):
            bad.add(f"image {image_id}: class {label} in image_class_labels.txt is outside classes.txt 1..{len(names)}")
            continue
        path = root / "images" / relative
        if not path.is_file():
            bad.add(f"image {image_id}: image file not found: {path}")
            continue
        box = None
        if use_boxes:
            x, y, width, height = boxes[image_id]
            if width <= 0 or height <= 0:
                bad.add(f"image {image_id}: empty box x={x} y={y} width={width} height={height} in bounding_boxes.txt")
                continue
            box = (x, y, x + width, y + height)
        records.append(ImageRecord(image_id=str(image_id), path=path, label=label - 1, box=box))
    bad.report()
    if not records:
        raise DataError(f"no usable images in the CUB-200-2011 {split} split at {root}")
    return records, names


def _flag(text: str) -> int:
    if text not in ("0", "1"):
        raise ValueError(text)
    return int(text)


def _read_list(root: Path, name: str, fields: str, parsers: tuple[Callable[[str], object], ...]) -> dict[int, tuple]:
    """``{id: parsed values}`` of a ``<id> <value>...`` list; any malformed line raises naming file and line."""
    file = root / name
    if not file.is_file():
        nested = root / "CUB_200_2011" / name
        hint = f"; found {nested.parent}, use that as root" if nested.is_file() else ""
        raise DataError(f"CUB-200-2011 file not found: {file} ({LAYOUT}){hint}")
    table: dict[int, tuple] = {}
    for line, values in whitespace_lines(file):
        try:
            if len(values) != 1 + len(parsers):
                raise ValueError
            key = int(values[0])
            parsed = tuple(parse(value) for parse, value in zip(parsers, values[1:], strict=True))
        except ValueError:
            raise DataError(f"{file}:{line}: expected '{fields}', got {' '.join(values)!r}") from None
        if key in table:
            raise DataError(f"{file}:{line}: id {key} appears a second time")
        table[key] = parsed
    return table


def _same_ids(root: Path, name_a: str, a: dict[int, tuple], name_b: str, b: dict[int, tuple]) -> None:
    """Raise naming both files and the first ids that only one of them lists."""
    for only, here, there in (
        (sorted(a.keys() - b.keys()), name_a, name_b),
        (sorted(b.keys() - a.keys()), name_b, name_a),
    ):
        if only:
            shown = ", ".join(map(str, only[:5])) + (f" and {len(only) - 5} more" if len(only) > 5 else "")
            raise DataError(f"{root}: image id {shown} listed in {here} but missing from {there}")
