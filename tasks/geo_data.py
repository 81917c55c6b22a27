"""``GeoDataModule``: geotagged photos (CSV lists of image, latitude, longitude) and the S2 cell partitionings
the geo task classifies over (``mobivision.geo.partitionings``)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from mobivision.data.geo_csv import read_geo_csv
from mobivision.data.records import GeoLabel, ImageRecord
from mobivision.errors import ConfigError
from mobivision.geo.partitionings import training_partitionings
from mobivision.tasks.classification_data import ClassificationDataModule

log = logging.getLogger("mobivision")


class GeoDataModule(ClassificationDataModule):
    """Geo-localization: CSV lists of (image, latitude, longitude) per split (MP-16, Im2GPS, Im2GPS3k, or the
    synthetic set) and the S2 cell partitionings the task classifies over.

    The partitionings come from ``partitions.dir/cells_<t_min>_<t_max>.csv`` (written by ``tools/geo_cells.py``);
    a missing file is built from the training coordinates and written there. Targets are ``GeoTarget``s: the
    location (lat, lon, float64) and, for training photos, the integer class in each partitioning, with -1 where a
    photo's cell was dropped (under ``t_min``); photos dropped by every partitioning are left out of training, with
    a warning that counts them. Validation and test photos have no cells.

    Args:
        partitions: ``{"dir", "t_min", "t_max": [coarse, ..., fine], "min_level", "max_level"}``.
        image_root: Folder the CSV paths are relative to, itself relative to each CSV's folder (``images`` for
            ``mp16/images/<IMG_ID>`` beside ``mp16/mp16_places365.csv``); default: the CSV's folder.
        **See ``ClassificationDataModule`` for the other arguments (splits are CSV files under ``root``).**
    """

    formats = ("csv",)
    label_kind = "geo"

    def __init__(
        self,
        *,
        partitions: dict[str, Any],
        image_root: str | None = None,
        format: str = "csv",
        train_split: str | None = "train.csv",
        val_split: str | None = "val.csv",
        test_split: str | None = "test.csv",
        **options: Any,
    ) -> None:
        super().__init__(format=format, train_split=train_split, val_split=val_split, test_split=test_split, **options)
        unknown = sorted(set(partitions) - {"dir", "t_min", "t_max", "min_level", "max_level"})
        if unknown:
            raise ConfigError(
                f"data.partitions: unknown keys {unknown}; expected dir, t_min, t_max, min_level, max_level"
            )
        self.partition_options = dict(partitions)
        self.image_root = image_root
        self.partitions: list[dict[str, Any]] = []

    def _read(self, split: str) -> tuple[list[ImageRecord], list[str]]:
        file = self.root / self.splits[split]
        records = read_geo_csv(file, image_root=file.parent / (self.image_root or ""), on_error=self.on_error)
        return [replace(r, label=GeoLabel(*r.label)) for r in records], []

    def _training_records(self, records: list[ImageRecord]) -> list[ImageRecord]:
        options = dict(self.partition_options)
        self.partitions, classes = training_partitionings(
            options.pop("dir"), [r.label.lat for r in records], [r.label.lon for r in records], **options
        )
        labeled = [
            replace(r, label=replace(r.label, cells=tuple(c)))
            for r, *c in zip(records, *classes, strict=True)
            if max(c) >= 0
        ]
        if len(labeled) < len(records):
            log.warning(
                "%d of %d training photos lie in cells dropped by every partitioning (under t_min=%d); left out",
                len(records) - len(labeled),
                len(records),
                self.partition_options["t_min"],
            )
        return labeled

    def task_inputs(self) -> dict[str, Any]:
        """The cells of every partitioning, coarsest first."""
        return {"partitions": self.partitions}
