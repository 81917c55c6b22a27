"""Reader of Stanford Dogs in its official layout, for fine-grained classification.

Stanford Dogs (Khosla et al., 2011, "Novel Dataset for Fine-Grained Image Categorization", FGVC workshop at
CVPR): 120 breeds taken from ImageNet, 20,580 images, 12,000 for training (100 per breed) and 8,580 for
testing. The MobileNets paper (Howard et al., 2017, Sec. 4.3, Table 10) fine-tunes on it: 83.3% top-1 for
1.0 MobileNet-224 against 84% for Inception V3.

The reader takes ``root`` = the folder holding ``Images/`` (images.tar), ``Annotation/`` (annotation.tar) and
``lists/`` (lists.tar unpacked into it). ``lists/{train,test}_list.mat`` are MATLAB v5 files read with
``scipy.io.loadmat``: ``file_list`` (N x 1 cell of paths like ``n02085620-Chihuahua/n02085620_10074.jpg``,
relative to ``Images/``), ``annotation_list`` (the same without ``.jpg``, relative to ``Annotation/``) and
``labels`` (N x 1, breeds 1..120).

Class names are the breed part of each label's synset folder (``n02085620-Chihuahua`` -> ``Chihuahua``, the rest
kept as written, e.g. ``Japanese_spaniel``); labels are the official ones minus one. The annotations are PASCAL
VOC XML files without extension; an image with several dogs gets the largest box (the first of equal ones),
taken as ``(xmin, ymin, xmax, ymax)`` pixels. A list file that cannot be read, lacks a key, or maps one label to
two folders always raises; a missing image or a missing, malformed or empty annotation is a bad record that
raises or, with ``on_error="skip"``, is skipped and reported.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import numpy as np
from scipy.io import loadmat
from scipy.io.matlab import MatReadError

from mobivision.data.records import BadRecords, ImageRecord
from mobivision.errors import ConfigError, DataError

SPLITS = ("train", "test")
LAYOUT = (
    "root must be the folder holding Images/<synset>-<breed>/*.jpg (images.tar), lists/train_list.mat and "
    "lists/test_list.mat (lists.tar unpacked into lists/) and, for boxes, Annotation/<synset>-<breed>/<image> "
    "(annotation.tar)"
)


def read_stanford_dogs(
    root: str | Path, *, split: str, use_boxes: bool = False, on_error: str = "raise"
) -> tuple[list[ImageRecord], list[str]]:
    """Records of one official Stanford Dogs split, in list order.

    Args:
        root: The dataset folder (see the module docstring for its layout).
        split: ``train`` or ``test`` (``lists/<split>_list.mat``).
        use_boxes: Attach each image's dog box from ``Annotation/`` (the largest when there are several).
        on_error: ``raise`` or ``skip`` (and report) bad records: a missing image, a missing or malformed
            annotation, a box of zero width or height.

    Returns:
        The records (``image_id`` is the path in ``file_list``, labels 0-based) and the breed names in label
        order.

    Raises:
        ConfigError: ``split`` is not ``train`` or ``test``.
        DataError: ``on_error`` is not ``raise`` or ``skip``, the list file is missing, unreadable or lacks a
            key, a label maps to two folders, or (with ``on_error="raise"``) a record is bad.
    """
    if split not in SPLITS:
        raise ConfigError(f"Stanford Dogs split must be one of {list(SPLITS)}, got {split!r}")
    root = Path(root)
    bad = BadRecords(f"Stanford Dogs {split} split at {root}", on_error)
    file = root / "lists" / f"{split}_list.mat"
    mat = _load_mat(file)
    files = _strings(mat, "file_list", file)
    if not files:
        raise DataError(f"{file}: 'file_list' is empty")
    labels = _labels(mat, file, count=len(files))
    annotations = _strings(mat, "annotation_list", file) if use_boxes else []
    if use_boxes and len(annotations) != len(files):
        raise DataError(f"{file}: 'annotation_list' has {len(annotations)} entries for {len(files)} in 'file_list'")
    names = _breed_names(files, labels, file)

    records = []
    for index, (relative, label) in enumerate(zip(files, labels, strict=True)):
        path = root / "Images" / relative
        if not path.is_file():
            bad.add(f"file_list entry {index + 1}: image file not found: {path}")
            continue
        box = None
        if use_boxes:
            try:
                box = _largest_box(root / "Annotation" / annotations[index])
            except DataError as exc:
                bad.add(f"file_list entry {index + 1} ({relative}): {exc}")
                continue
        records.append(ImageRecord(image_id=relative, path=path, label=label - 1, box=box))
    bad.report()
    if not records:
        raise DataError(f"no usable images in the Stanford Dogs {split} split at {root}")
    return records, names


def _load_mat(file: Path) -> dict[str, np.ndarray]:
    if not file.is_file():
        loose = file.parent.parent / file.name
        hint = f"; found {loose}: move the .mat files into {file.parent}/" if loose.is_file() else ""
        raise DataError(f"Stanford Dogs list not found: {file} ({LAYOUT}){hint}")
    try:
        return loadmat(file)
    except (MatReadError, OSError, ValueError, IndexError, TypeError, NotImplementedError) as exc:
        raise DataError(f"cannot read {file} as a MATLAB v5 file: {exc!r}") from exc


def _entry(mat: dict[str, np.ndarray], key: str, file: Path) -> np.ndarray:
    if key not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{file}: no key {key!r} (found {found}); expected an official Stanford Dogs list file")
    return np.ravel(mat[key])


def _strings(mat: dict[str, np.ndarray], key: str, file: Path) -> list[str]:
    """A cell array of strings (each cell a 1-element char array, as loadmat returns them) as a list."""
    strings = []
    for index, cell in enumerate(_entry(mat, key, file)):
        value = np.ravel(cell)
        if value.size != 1 or not isinstance(value[0], str):
            raise DataError(f"{file}: {key!r} entry {index + 1} is not a string: {cell!r}")
        strings.append(str(value[0]))
    return strings


def _labels(mat: dict[str, np.ndarray], file: Path, *, count: int) -> list[int]:
    labels = _entry(mat, "labels", file)
    if labels.shape != (count,) or labels.dtype.kind not in "iuf":
        raise DataError(f"{file}: 'labels' must hold {count} numbers (one per file), got {labels.shape} {labels.dtype}")
    wrong = np.flatnonzero((labels < 1) | (labels != np.round(labels)))
    if wrong.size:
        raise DataError(f"{file}: 'labels' entry {wrong[0] + 1} is {labels[wrong[0]]}, not an integer >= 1")
    return [int(label) for label in labels]


def _breed_names(files: list[str], labels: list[int], file: Path) -> list[str]:
    """Breed of each label 1..max, from the synset folder of its files; one label, one folder, and back."""
    folders: dict[int, str] = {}
    owners: dict[str, int] = {}
    for relative, label in zip(files, labels, strict=True):
        folder, slash, _ = relative.partition("/")
        if not slash:
            raise DataError(f"{file}: file_list entry {relative!r} is not '<synset>-<breed>/<image>'")
        if folders.setdefault(label, folder) != folder:
            raise DataError(f"{file}: label {label} is given to files in two folders, {folders[label]} and {folder}")
        if owners.setdefault(folder, label) != label:
            raise DataError(f"{file}: folder {folder} has files with labels {owners[folder]} and {label}")
    unseen = [label for label in range(1, max(folders) + 1) if label not in folders]
    if unseen:
        raise DataError(f"{file}: labels {unseen} have no file, so their breed names are unknown")
    return [folders[label].partition("-")[2] or folders[label] for label in range(1, len(folders) + 1)]


def _largest_box(file: Path) -> tuple[float, float, float, float]:
    """The largest ``<object><bndbox>`` of a PASCAL VOC annotation as ``(xmin, ymin, xmax, ymax)``."""
    if not file.is_file():
        raise DataError(f"annotation file not found: {file}")
    try:
        objects = ElementTree.parse(file).getroot().findall("object")
    except ElementTree.ParseError as exc:
        raise DataError(f"malformed annotation {file}: {exc}") from exc
    boxes = []
    for number, node in enumerate(objects, start=1):
        try:
            box = tuple(float(node.findtext(f"bndbox/{tag}")) for tag in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            raise DataError(f"{file}: object {number} has no numeric <bndbox> xmin, ymin, xmax, ymax") from None
        if box[2] <= box[0] or box[3] <= box[1]:
            raise DataError(f"{file}: object {number} has an empty box {box}")
        boxes.append(box)
    if not boxes:
        raise DataError(f"{file}: no <object> with a <bndbox>")
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
