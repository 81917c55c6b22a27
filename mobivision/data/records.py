"""Sample records and the dataset that turns them into ``{"image", "target", "meta"}`` samples.

Readers validate while they load: a bad record (missing file, unknown label) is reported with its id and
file and either raises or, with ``on_error="skip"``, is counted and listed in one warning. Nothing is
dropped silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from mobivision.errors import DataError

log = logging.getLogger("mobivision")

ON_ERROR = ("raise", "skip")


@dataclass(frozen=True)
class ImageRecord:
    """One image and its label, as a reader found it."""

    image_id: str
    path: Path
    label: int


@dataclass
class BadRecords:
    """Collects records a reader rejected so they are reported together (or raised at once)."""

    source: str
    on_error: str = "raise"
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise DataError(f"on_error must be one of {ON_ERROR}, got {self.on_error!r}")

    def add(self, problem: str) -> None:
        if self.on_error == "raise":
            raise DataError(f"{self.source}: {problem}")
        self.problems.append(problem)

    def report(self) -> None:
        if self.problems:
            shown = "; ".join(self.problems[:10])
            more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
            log.warning("%s: skipped %d bad records: %s%s", self.source, len(self.problems), shown, more)


def load_rgb(path: Path) -> np.ndarray:
    """An image file as an ``H x W x 3`` uint8 array; an unreadable file raises ``DataError`` naming it."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot read image {path}: {exc}") from exc


class ClassificationDataset(Dataset):
    """Records plus an albumentations-style transform (``transform(image=...)["image"]``)."""

    def __init__(
        self, records: list[ImageRecord], *, class_names: list[str], transform: Callable[..., dict[str, Any]]
    ) -> None:
        self.records = records
        self.class_names = class_names
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        image = load_rgb(record.path)
        return {
            "image": self.transform(image=image)["image"],
            "target": torch.tensor(record.label, dtype=torch.long),
            "meta": {"image_id": record.image_id, "path": str(record.path), "size": image.shape[:2]},
        }
