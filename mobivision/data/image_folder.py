"""Generic classification readers: an ImageFolder tree (``root/<class>/<image>``) and a CSV list.

torchvision's ``ImageFolder`` is not reused because it neither reports unreadable entries by file nor
returns mobivision's ``{"image", "target", "meta"}`` samples; the scan itself is a few lines.
"""

from __future__ import annotations

from pathlib import Path

from mobivision.data.csv_rows import BadRowError, csv_header, csv_rows, usable_rows
from mobivision.data.records import BadRecords, ImageRecord
from mobivision.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def list_images(folder: str | Path) -> list[Path]:
    """Every image file under ``folder`` (recursively, sorted); a missing or image-less folder is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"no such image folder: {folder}")
    images = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise DataError(f"{folder}: no image files ({', '.join(IMAGE_EXTENSIONS)}) found")
    return images


def read_image_folder(root: str | Path, *, class_names: list[str] | None = None) -> tuple[list[ImageRecord], list[str]]:
    """Records of ``root/<class>/<file>`` with class indices in sorted folder order.

    Args:
        root: The split's folder.
        class_names: Expected classes (e.g. the training split's); a folder outside them is an error.

    Returns:
        The records and the class names.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder not found: {root} (expected {root}/<class name>/<image files>)")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = list(class_names) if class_names is not None else folders
    unknown = sorted(set(folders) - set(names))
    if unknown:
        raise DataError(f"{root}: class folders {unknown} are not among the training classes {names}")
    index = {name: i for i, name in enumerate(names)}
    records = [
        ImageRecord(image_id=f"{folder}/{path.name}", path=path, label=index[folder])
        for folder in folders
        for path in sorted((root / folder).iterdir())
        if path.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if not records:
        raise DataError(f"no images found under {root} (expected {root}/<class name>/*{IMAGE_EXTENSIONS})")
    return records, names


def read_csv_list(
    file: str | Path,
    *,
    image_root: str | Path | None = None,
    class_names: list[str] | None = None,
    on_error: str = "raise",
) -> tuple[list[ImageRecord], list[str]]:
    """Records of a CSV with header ``path,label`` (label: class name or integer index).

    The file is read as UTF-8 (a byte-order mark is ignored); one that is not raises ``DataError``. Relative paths
    are resolved against ``image_root`` (default: the CSV's folder). A malformed line or a missing image raises
    ``DataError`` naming the file and line, or is skipped and reported with ``on_error="skip"``.
    """
    file = Path(file)
    if not file.is_file():
        raise DataError(f"CSV list not found: {file}")
    root = Path(image_root) if image_root is not None else file.parent
    bad = BadRecords(str(file), on_error)
    header = csv_header(file)
    if header is None or [h.strip() for h in header[:2]] != ["path", "label"]:
        raise DataError(f"{file}:1: expected the header 'path,label', got {header}")

    def parse(line: int, row: list[str]) -> tuple[int, Path, str]:
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise BadRowError(f"expected 2 non-empty values 'path,label', got {row}")
        path = root / row[0].strip()
        if not path.is_file():
            raise BadRowError(f"image file not found: {path}")
        return line, path, row[1].strip()

    rows = csv_rows(file, parse, bad=bad)
    names = list(class_names) if class_names is not None else _class_names_from_labels([r[2] for r in rows])
    records = []
    for line, path, label in rows:
        index = _label_index(label, names)
        if index is None:
            bad.add(f"line {line}: unknown label {label!r}; expected one of {names} or 0..{len(names) - 1}")
            continue
        records.append(ImageRecord(image_id=f"{file.name}:{line}", path=path, label=index))
    return usable_rows(file, records, bad), names


def _class_names_from_labels(labels: list[str]) -> list[str]:
    if labels and all(label.isdigit() for label in labels):
        return [str(i) for i in range(max(int(label) for label in labels) + 1)]
    return sorted(set(labels))


def _label_index(label: str, names: list[str]) -> int | None:
    if label in names:
        return names.index(label)
    if label.isdigit() and int(label) < len(names):
        return int(label)
    return None
