"""Sample records and the dataset that turns them into ``{"image", "target", "meta"}`` samples.

Readers validate while they load: a bad record (missing file, unknown label) is reported with its id and
file and either raises or, with ``on_error="skip"``, is counted and listed in one warning. Nothing is
dropped silently. A record may carry the object's box (CUB-200-2011, Stanford Dogs); the dataset can then
crop to it, as fine-grained recognition commonly does with the annotated bird or dog box.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np
import torch
from torch.utils.data import Dataset

from mobivision.data.images import (
    DEFAULT_MAX_IMAGE_MPX,
    UnreadableImageError,
    check_max_image_mpx,
    check_pixels,
    load_rgb,
    open_image,
)
from mobivision.errors import ConfigError, DataError

log = logging.getLogger("mobivision")
T = TypeVar("T")

ON_ERROR = ("raise", "skip")


@dataclass(frozen=True)
class GeoLabel:
    """Where a photo was taken, and its cell in each partitioning (-1: a dropped cell; empty: not assigned)."""

    lat: float
    lon: float
    cells: tuple[int, ...] = ()


class GeoTarget(NamedTuple):
    """A batch's (or one photo's) geo target: ``location`` float64 ``[..., 2]`` (lat, lon) and ``cells`` int64
    ``[..., partitionings]`` (one class per partitioning, -1 ignored)."""

    location: torch.Tensor
    cells: torch.Tensor


@dataclass(frozen=True)
class ImageRecord:
    """One image and its label, as a reader found it.

    Attributes:
        image_id: The dataset's id of the image (used in messages and ``meta``).
        path: The image file.
        label: Class index (0-based); for multi-label data (face attributes) one value per attribute:
            1.0 present, 0.0 absent, NaN unknown (left out of the loss and the metrics); for photos to locate
            a ``GeoLabel``.
        box: Optional object box ``(x0, y0, x1, y1)`` in pixels of the original image (pixel ``i`` spans
            ``[i, i + 1)``); ``ClassificationDataset`` crops to it.
    """

    image_id: str
    path: Path
    label: int | tuple[float, ...] | GeoLabel
    box: tuple[float, float, float, float] | None = None


@dataclass
class BadRecords:
    """Collects records a reader rejected so they are reported together (or raised at once)."""

    source: str
    on_error: str = "raise"
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_on_error(self.on_error)

    def add(self, problem: str) -> None:
        if self.on_error == "raise":
            raise DataError(f"{self.source}: {problem}")
        self.problems.append(problem)

    def report(self) -> None:
        if self.problems:
            shown = "; ".join(self.problems[:10])
            more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
            log.warning("%s: skipped %d bad records: %s%s", self.source, len(self.problems), shown, more)


def check_on_error(on_error: str) -> None:
    """``DataError`` unless ``on_error`` is one of ``ON_ERROR``."""
    if on_error not in ON_ERROR:
        raise DataError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")


# --- skipped images ---------------------------------------------------------------------------------------------
# How ``on_error="skip"`` reports the images it replaced. The images are read in DataLoader workers, separate
# processes, so nothing a worker keeps in memory reaches the main process. Instead each skip appends one line
# ("<path>\t<reason>\n") to a skip log: a file opened with O_APPEND and written with a single short write, which
# POSIX keeps whole and in order across processes (every worker, every DDP rank). Its path travels in the
# environment variable ``SKIP_LOG_ENV``: set in the main process before the workers start (``SkippedImages.setup``,
# tasks/callbacks.py), inherited by forked and spawned workers alike. The callback reads the lines added during
# each training epoch and logs one warning; the file, in the run folder, keeps the full list. Without a skip log
# (a dataset used outside a training run) each file is named in a warning once per process.

SKIP_LOG_ENV = "MOBIVISION_SKIP_LOG"
_skipped_here: set[str] = set()  # files this process has already named (no skip log: one warning per file and process)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def record_skip(error: UnreadableImageError) -> None:
    """Report one replaced image: a line in the skip log if one is configured (``SKIP_LOG_ENV``), else a warning
    (once per file and process)."""
    log_file = os.environ.get(SKIP_LOG_ENV)
    if not log_file:
        if str(error) not in _skipped_here:
            _skipped_here.add(str(error))
            log.warning("data.on_error=skip: %s; the next image takes its place", error)
        return
    path = str(error.path) if error.path is not None else str(error)
    line = f"{_one_line(path)}\t{_one_line(error.reason or error)}\n".encode()
    fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write: appended whole, never interleaved with another process's line
    finally:
        os.close(fd)


def read_skip_log(log_file: Path, offset: int = 0) -> tuple[list[tuple[str, str]], int]:
    """The ``(path, reason)`` lines ``record_skip`` appended to ``log_file`` from byte ``offset`` on, and the offset
    after the last whole line (a line being written is left for the next read). A missing file has none."""
    try:
        with open(log_file, "rb") as file:
            file.seek(offset)
            data = file.read()
    except FileNotFoundError:
        return [], offset
    whole = data[: data.rfind(b"\n") + 1]
    entries = []
    for line in whole.decode(errors="replace").splitlines():
        path, _, reason = line.partition("\t")
        entries.append((path, reason))
    return entries, offset + len(whole)


def sample_or_next_readable(sample: Callable[[int], T], index: int, count: int, *, on_error: str) -> T:
    """``sample(index)``; with ``on_error="skip"`` an unreadable image is reported (``record_skip``: a line in the
    run's skip log, summed up in one warning per epoch; outside a training run a warning once per file and process)
    and the next readable sample takes its place, so batches keep their size. Shared by the datasets, so every task
    skips the same way; with ``raise`` the ``UnreadableImageError`` stops the run."""
    for step in range(count):
        try:
            return sample((index + step) % count)
        except UnreadableImageError as exc:
            if on_error != "skip":
                raise
            record_skip(exc)
    raise DataError(f"none of the {count} images of this split can be read (data.on_error=skip)")


class ImageDataset(Dataset):
    """What the datasets of image records share: ``records`` (each with a ``path``), one sample per record through
    ``_sample``, images read by ``read_image`` (at most ``max_image_mpx`` million pixels, from the header), unreadable
    ones handled by ``on_error`` (``sample_or_next_readable``), and ``image_files()``."""

    records: list[Any]
    on_error: str
    max_image_mpx: float = DEFAULT_MAX_IMAGE_MPX

    def read_image(self, path: Path) -> np.ndarray:
        """``path`` as an RGB array; ``UnreadableImageError`` if it cannot be read or is over the pixel limit."""
        return load_rgb(path, max_image_mpx=self.max_image_mpx, option="data.max_image_mpx")

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return sample_or_next_readable(self._sample, index, len(self), on_error=self.on_error)

    def _sample(self, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def image_files(self) -> list[Path]:
        """Every image file this dataset reads, in record order (``tools/check.py --scan-images`` checks them)."""
        return [Path(record.path) for record in self.records]


def _scan_reason(path: Path, exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:  # missing file, permission: "No such file or directory"
        return exc.strerror[:1].lower() + exc.strerror[1:]
    text = str(exc).replace(repr(str(path)), "").replace(str(path), "")  # Pillow puts the name in its message
    return " ".join(text.split()).strip(" :") or type(exc).__name__


def _scan_one(path: Path, max_image_mpx: float) -> str | None:
    try:
        with open_image(path) as image:
            check_pixels(image.size, path, max_image_mpx, "data.max_image_mpx")
            image.verify()  # header and structure (PNG chunk CRCs, ...), no pixel decoding
    except UnreadableImageError as exc:  # over the pixel limit
        return exc.reason
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error, ... on bad files
        return _scan_reason(path, exc)
    return None


def unreadable_images(
    paths: list[Path] | tuple[Path, ...], *, workers: int = 4, max_image_mpx: float = DEFAULT_MAX_IMAGE_MPX
) -> list[tuple[Path, str]]:
    """The files among ``paths`` that Pillow cannot open and verify, or that have more than ``max_image_mpx``
    million pixels, with the reason, in the order given.

    A fast header check (``Image.open`` + ``verify()``, in ``workers`` threads): a missing, empty, non-image,
    cut-header or too large file is found, and a PNG with a damaged chunk; a JPEG cut inside its pixel data passes
    (only a full decode finds it; training then skips or stops at it, as ``data.on_error`` says).
    """
    paths = [Path(p) for p in paths]
    scan = partial(_scan_one, max_image_mpx=max_image_mpx)
    if workers <= 1 or len(paths) < 2:
        reasons = [scan(p) for p in paths]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:  # file reads release the GIL
            reasons = list(pool.map(scan, paths, chunksize=64))
    return [(path, reason) for path, reason in zip(paths, reasons, strict=True) if reason is not None]


def crop_to_box(
    image: np.ndarray, box: tuple[float, float, float, float], *, margin: float = 0.0, source: str = "image"
) -> np.ndarray:
    """The part of ``image`` inside ``box`` enlarged by ``margin``, clipped to the image.

    Each side moves out by ``margin`` times the box's width (left, right) or height (top, bottom), so
    ``margin=0.1`` makes a box 1.2 times as wide and high; the result is then widened to whole pixels
    (floor of the low edges, ceil of the high ones) and clipped to the image.

    Args:
        image: An ``H x W x C`` array.
        box: ``(x0, y0, x1, y1)`` in pixels.
        margin: Fraction of the box's size added on each side (>= 0).
        source: What to name in an error (the image file).

    Returns:
        A view of ``image``.

    Raises:
        DataError: The box does not overlap the image.
    """
    x0, y0, x1, y1 = box
    dx, dy = margin * (x1 - x0), margin * (y1 - y0)
    height, width = image.shape[:2]
    left, top = max(0, math.floor(x0 - dx)), max(0, math.floor(y0 - dy))
    right, bottom = min(width, math.ceil(x1 + dx)), min(height, math.ceil(y1 + dy))
    if right <= left or bottom <= top:
        raise DataError(f"{source}: box {tuple(box)} does not overlap the {width}x{height} image")
    return image[top:bottom, left:right]


def _target(label: int | tuple[float, ...] | GeoLabel) -> torch.Tensor | GeoTarget:
    """A class index as a long scalar; attribute values as a float vector; a ``GeoLabel`` as a ``GeoTarget``."""
    if isinstance(label, GeoLabel):
        return GeoTarget(torch.tensor([label.lat, label.lon], dtype=torch.float64), torch.tensor(label.cells).long())
    if isinstance(label, tuple):
        return torch.tensor(label, dtype=torch.float32)
    return torch.tensor(label, dtype=torch.long)


class ClassificationDataset(ImageDataset):
    """Records plus an albumentations-style transform (``transform(image=...)["image"]``).

    A record with a ``box`` is cropped to it (``crop_to_box`` with ``crop_margin``) before the transform;
    ``meta["size"]`` stays the original image's ``(height, width)``. ``on_error``: ``raise`` (an unreadable image
    stops the run, naming it) or ``skip`` (named in the epoch's skip warning, the next readable image takes its
    place).
    """

    def __init__(
        self,
        records: list[ImageRecord],
        *,
        class_names: list[str],
        transform: Callable[..., dict[str, Any]],
        crop_margin: float = 0.0,
        on_error: str = "raise",
        max_image_mpx: float = DEFAULT_MAX_IMAGE_MPX,
    ) -> None:
        check_on_error(on_error)
        if crop_margin < 0:
            raise ConfigError(f"crop_margin must be >= 0 (a fraction of the box size per side), got {crop_margin}")
        self.records = records
        self.class_names = class_names
        self.transform = transform
        self.crop_margin = crop_margin
        self.on_error = on_error
        self.max_image_mpx = check_max_image_mpx(max_image_mpx, "data.max_image_mpx")

    def _sample(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        image = self.read_image(record.path)
        size = image.shape[:2]
        if record.box is not None:
            image = crop_to_box(image, record.box, margin=self.crop_margin, source=str(record.path))
        return {
            "image": self.transform(image=image)["image"],
            "target": _target(record.label),
            "meta": {"image_id": record.image_id, "path": str(record.path), "size": size},
        }
