"""``ClassificationDataModule``: one label per image, from an ImageFolder tree, CSV lists, CUB-200-2011 or
Stanford Dogs, or a synthetic demo set written first; the base of ``AttributeDataModule`` and ``GeoDataModule``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mobivision.data.cub import read_cub
from mobivision.data.image_folder import read_csv_list, read_image_folder
from mobivision.data.images import DEFAULT_MAX_IMAGE_MPX
from mobivision.data.records import ClassificationDataset, ImageRecord
from mobivision.data.stanford_dogs import read_stanford_dogs
from mobivision.data.synthetic import (
    write_fine_grained_shapes,
    write_shapes_classification,
    write_synthetic_faces,
    write_synthetic_geo,
)
from mobivision.data.transforms import classification_eval_transform, classification_train_transform
from mobivision.errors import ConfigError
from mobivision.tasks.config_schema import check_options
from mobivision.tasks.split_data import SplitDataModule, write_once

FORMATS = ("image_folder", "csv", "cub", "stanford_dogs")
SYNTHETIC_WRITERS = {
    "shapes": write_shapes_classification,
    "fine_grained": write_fine_grained_shapes,
    "faces": write_synthetic_faces,
    "geo": write_synthetic_geo,
}


class ClassificationDataModule(SplitDataModule):
    """Splits of an ImageFolder tree (``root/<split>/<class>/``), CSV lists (``root/<split>``), or the official
    files of CUB-200-2011 / Stanford Dogs (splits ``train`` and ``test``; their test split doubles as validation).

    Args:
        format: ``image_folder``, ``csv``, ``cub`` or ``stanford_dogs``.
        root: Dataset folder.
        train_split / val_split / test_split: Sub-folder (image_folder), CSV file name (csv) or official split
            name (cub, stanford_dogs); None to skip.
        use_boxes: CUB / Stanford Dogs: crop each image to its annotated box (enlarged by ``crop_margin``, a
            fraction of the box size on each side) before the transform.
        resolution: Square input size.
        mean / std: Normalisation on [0, 1] pixels (the runner fills in the backbone's default).
        augment: ``scale``, ``hflip``, ``color_jitter`` for training, ``crop_pct`` for evaluation.
        synthetic: Options of a synthetic writer to write a demo dataset at ``root`` first; ``kind`` picks
            it: ``shapes`` (``write_shapes_classification``, the default) or ``fine_grained``.
        on_error / max_image_mpx: bad records and images, as ``SplitDataModule`` says.
    """

    formats = FORMATS
    label_kind = "classification"

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
        normalize_on_device: bool = False,
        augment: dict[str, Any] | None = None,
        synthetic: dict[str, Any] | None = None,
        on_error: str = "raise",
        max_image_mpx: float = DEFAULT_MAX_IMAGE_MPX,
        use_boxes: bool = False,
        crop_margin: float = 0.0,
    ) -> None:
        super().__init__(
            resolution=resolution,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
            mean=mean,
            std=std,
            normalize_on_device=normalize_on_device,
            on_error=on_error,
            max_image_mpx=max_image_mpx,
        )
        if use_boxes and format not in ("cub", "stanford_dogs"):
            raise ConfigError(f"data.use_boxes needs box annotations: format cub or stanford_dogs, not {format!r}")
        self.use_boxes = use_boxes
        self.crop_margin = crop_margin
        if format not in self.formats:
            raise ConfigError(f"data.format must be one of {self.formats}, got {format!r}")
        self.format = format
        self.root = Path(root)
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.augment = dict(augment or {})
        self.synthetic = synthetic

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
            options = dict(self.synthetic)
            kind = options.pop("kind", "shapes")
            if kind not in SYNTHETIC_WRITERS:
                raise ConfigError(f"data.synthetic.kind must be one of {sorted(SYNTHETIC_WRITERS)}, got {kind!r}")
            write_once(SYNTHETIC_WRITERS[kind], self.root, **options)

    def _read(self, split: str) -> tuple[list[ImageRecord], list[str]]:
        known = self.class_names or None
        name = self.splits[split]
        if self.format == "cub":
            return read_cub(self.root, split=name, use_boxes=self.use_boxes, on_error=self.on_error)
        if self.format == "stanford_dogs":
            return read_stanford_dogs(self.root, split=name, use_boxes=self.use_boxes, on_error=self.on_error)
        if self.format == "image_folder":
            return read_image_folder(self.root / name, class_names=known)
        return read_csv_list(self.root / name, image_root=self.root, class_names=known, on_error=self.on_error)

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
            if split == "train":
                records = self._training_records(records)
            self.datasets[split] = ClassificationDataset(
                records,
                class_names=self.class_names,
                transform=self._transform(split),
                crop_margin=self.crop_margin,
                **self._image_reading(split),
            )

    def _training_records(self, records: list[ImageRecord]) -> list[ImageRecord]:
        """Hook for subclasses that change the training records (the attribute data adds unlabeled images)."""
        return records

    def _transform(self, split: str):
        common = {"resolution": self.resolution, "mean": self.mean, "std": self.std}
        if split == "train":
            options = {k: v for k, v in self.augment.items() if k != "crop_pct"}
            check_options("data.augment", options, classification_train_transform, passed={*common, "normalize"})
            return classification_train_transform(**common, **options, normalize=self._normalize_in_loader(split))
        return classification_eval_transform(**common, crop_pct=self.augment.get("crop_pct", 0.875))
