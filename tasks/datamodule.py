"""Lightning data module for image classification: readers + albumentations presets + loaders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from mobivision.data.image_folder import read_csv_list, read_image_folder
from mobivision.data.records import ClassificationDataset, ImageRecord
from mobivision.data.synthetic import write_shapes_classification
from mobivision.data.transforms import classification_eval_transform, classification_train_transform
from mobivision.errors import ConfigError

FORMATS = ("image_folder", "csv")


class ClassificationDataModule(L.LightningDataModule):
    """Splits of an ImageFolder tree (``root/<split>/<class>/``) or CSV lists (``root/<split>``).

    Args:
        format: ``image_folder`` or ``csv``.
        root: Dataset folder.
        train_split / val_split / test_split: Sub-folder (image_folder) or CSV file name (csv); None to skip.
        resolution: Square input size.
        mean / std: Normalisation on [0, 1] pixels (the runner fills in the backbone's default).
        augment: ``scale``, ``hflip``, ``color_jitter`` for training, ``crop_pct`` for evaluation.
        synthetic: Options of ``write_shapes_classification`` to write a demo dataset at ``root`` first.
        on_error: ``raise`` or ``skip`` (and report) bad CSV records.
    """

    def __init__(
        self,
        *,
        format: str = "image_folder",
        root: str,
        train_split: str | None = "train",
        val_split: str | None = "val",
        test_split: str | None = "test",
        resolution: int = 224,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 4,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        augment: dict[str, Any] | None = None,
        synthetic: dict[str, Any] | None = None,
        on_error: str = "raise",
    ) -> None:
        super().__init__()
        if format not in FORMATS:
            raise ConfigError(f"data.format must be one of {FORMATS}, got {format!r}")
        self.format = format
        self.root = Path(root)
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.resolution = resolution
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.loader_options = {
            "num_workers": num_workers,
            "pin_memory": pin_memory,
            "persistent_workers": persistent_workers and num_workers > 0,
        }
        self.mean = tuple(mean) if mean is not None else (0.5, 0.5, 0.5)
        self.std = tuple(std) if std is not None else (0.5, 0.5, 0.5)
        self.augment = dict(augment or {})
        self.synthetic = synthetic
        self.on_error = on_error
        self.class_names: list[str] = []
        self.datasets: dict[str, ClassificationDataset] = {}

    @property
    def meta(self) -> dict[str, Any]:
        """What inference needs to pre-process images like training did."""
        return {
            "resolution": self.resolution,
            "mean": list(self.mean),
            "std": list(self.std),
            "crop_pct": self.augment.get("crop_pct", 0.875),
        }

    def prepare_data(self) -> None:
        if self.synthetic:
            write_shapes_classification(self.root, **self.synthetic)

    def _read(self, split: str) -> tuple[list[ImageRecord], list[str]]:
        known = self.class_names or None
        location = self.root / self.splits[split]
        if self.format == "image_folder":
            return read_image_folder(location, class_names=known)
        return read_csv_list(location, image_root=self.root, class_names=known, on_error=self.on_error)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.prepare_data()
        order = ["train", "val", "test"] if self.splits["train"] else ["val", "test"]
        for split in order:
            if not self.splits[split]:
                continue
            records, names = self._read(split)
            self.class_names = self.class_names or names
            self.datasets[split] = ClassificationDataset(
                records, class_names=self.class_names, transform=self._transform(split)
            )

    def _transform(self, split: str):
        common = {"resolution": self.resolution, "mean": self.mean, "std": self.std}
        if split == "train":
            options = {k: v for k, v in self.augment.items() if k != "crop_pct"}
            return classification_train_transform(**common, **options)
        return classification_eval_transform(**common, crop_pct=self.augment.get("crop_pct", 0.875))

    def _loader(self, split: str, *, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise ConfigError(f"data.{split}_split is not set, so there is no {split} data under {self.root}")
        size = self.batch_size if split == "train" else self.eval_batch_size
        return DataLoader(
            self.datasets[split], batch_size=size, shuffle=shuffle, drop_last=shuffle, **self.loader_options
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)
