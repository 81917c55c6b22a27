"""Lightning data modules: readers + albumentations presets + loaders, for classification and detection.

``SplitDataModule`` holds what both share (loader options, the train/val/test loaders, normalisation);
each subclass reads its format and chooses its transforms. ``task_inputs()`` is what the task needs from
the data (the label map), passed by the runner when it builds the task.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

from mobivision.data.coco import DetectionDataset, detection_collate, read_coco
from mobivision.data.cub import read_cub
from mobivision.data.detection_transforms import (
    detection_eval_transform,
    ssd_train_transform,
    ssdlite_train_transform,
)
from mobivision.data.image_folder import read_csv_list, read_image_folder
from mobivision.data.records import ClassificationDataset, ImageRecord
from mobivision.data.stanford_dogs import read_stanford_dogs
from mobivision.data.synthetic import write_fine_grained_shapes, write_shapes_classification, write_shapes_detection
from mobivision.data.transforms import classification_eval_transform, classification_train_transform
from mobivision.errors import ConfigError

FORMATS = ("image_folder", "csv", "cub", "stanford_dogs")
SYNTHETIC_WRITERS = {"shapes": write_shapes_classification, "fine_grained": write_fine_grained_shapes}


class SplitDataModule(L.LightningDataModule):
    """Train/val/test datasets in ``self.datasets`` and their loaders.

    Args:
        resolution: Square input size.
        batch_size / eval_batch_size: Training and evaluation batch sizes.
        num_workers / pin_memory / persistent_workers: DataLoader options.
        mean / std: Normalisation on [0, 1] pixels (the runner fills in the backbone's default).
    """

    collate_fn = None

    def __init__(
        self,
        *,
        resolution: int,
        batch_size: int,
        eval_batch_size: int | None,
        num_workers: int,
        pin_memory: bool,
        persistent_workers: bool,
        mean: list[float] | None,
        std: list[float] | None,
    ) -> None:
        super().__init__()
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
        self.class_names: list[str] = []
        self.datasets: dict[str, Dataset] = {}

    def task_inputs(self) -> dict[str, Any]:
        """Keyword arguments the task needs from the data (its label map)."""
        return {"class_names": self.class_names}

    def _loader(self, split: str, *, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise ConfigError(f"data has no {split} split configured, so there is no {split} data")
        size = self.batch_size if split == "train" else self.eval_batch_size
        return DataLoader(
            self.datasets[split],
            batch_size=size,
            shuffle=shuffle,
            drop_last=shuffle,
            collate_fn=self.collate_fn,
            **self.loader_options,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


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
        on_error: ``raise`` or ``skip`` (and report) bad records.
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
        )
        if use_boxes and format not in ("cub", "stanford_dogs"):
            raise ConfigError(f"data.use_boxes needs box annotations: format cub or stanford_dogs, not {format!r}")
        self.use_boxes = use_boxes
        self.crop_margin = crop_margin
        if format not in FORMATS:
            raise ConfigError(f"data.format must be one of {FORMATS}, got {format!r}")
        self.format = format
        self.root = Path(root)
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.augment = dict(augment or {})
        self.synthetic = synthetic
        self.on_error = on_error

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
            SYNTHETIC_WRITERS[kind](self.root, **options)

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
            self.datasets[split] = ClassificationDataset(
                records, class_names=self.class_names, transform=self._transform(split), crop_margin=self.crop_margin
            )

    def _transform(self, split: str):
        common = {"resolution": self.resolution, "mean": self.mean, "std": self.std}
        if split == "train":
            options = {k: v for k, v in self.augment.items() if k != "crop_pct"}
            return classification_train_transform(**common, **options)
        return classification_eval_transform(**common, crop_pct=self.augment.get("crop_pct", 0.875))


DETECTION_RECIPES = ("ssd", "ssdlite")


class DetectionDataModule(SplitDataModule):
    """COCO-format splits: an annotation json and an image folder per split, relative to ``root``.

    Args:
        root: Dataset folder.
        splits: ``{"train": {"annotations": ..., "images": ...}, "val": ..., "test": ...}``; a missing or
            null split is skipped.
        recipe: Training augmentation, ``ssd`` (photometric, zoom-out, IoU crop, flip) or ``ssdlite``
            (IoU crop, flip); evaluation always resizes.
        augment: Options of the recipe's transform (``max_zoom_out``, ``hflip``, ``iou_crop``, ...).
        synthetic: Options of ``write_shapes_detection`` to write the demo dataset at ``root`` first.
        on_error: ``raise`` or ``skip`` (and report) images whose file is missing.
        **See ``SplitDataModule`` for the loader arguments.**
    """

    collate_fn = staticmethod(detection_collate)

    def __init__(
        self,
        *,
        root: str,
        splits: dict[str, dict[str, str] | None],
        recipe: str = "ssdlite",
        resolution: int = 320,
        batch_size: int = 24,
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
        super().__init__(
            resolution=resolution,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=persistent_workers,
            mean=mean,
            std=std,
        )
        if recipe not in DETECTION_RECIPES:
            raise ConfigError(f"data.recipe must be one of {DETECTION_RECIPES}, got {recipe!r}")
        unknown = sorted(set(splits) - {"train", "val", "test"})
        if unknown:
            raise ConfigError(f"data.splits: unknown splits {unknown}; expected train, val, test")
        for split, paths in splits.items():
            if paths is not None and set(paths) != {"annotations", "images"}:
                raise ConfigError(f"data.splits.{split} needs exactly the keys 'annotations' and 'images', got {paths}")
        self.root = Path(root)
        self.splits = {k: v for k, v in splits.items() if v}
        self.recipe = recipe
        self.augment = dict(augment or {})
        self.synthetic = synthetic
        self.on_error = on_error
        self.category_ids: list[int] = []

    @property
    def meta(self) -> dict[str, Any]:
        """What inference needs to pre-process images like evaluation did."""
        return {"resolution": self.resolution, "mean": list(self.mean), "std": list(self.std)}

    def task_inputs(self) -> dict[str, Any]:
        return {"class_names": self.class_names, "category_ids": self.category_ids}

    def prepare_data(self) -> None:
        if self.synthetic:
            write_shapes_detection(self.root, **self.synthetic)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.prepare_data()
        for split in ("train", "val", "test"):
            if split not in self.splits:
                continue
            paths = self.splits[split]
            data = read_coco(
                self.root / paths["annotations"],
                self.root / paths["images"],
                category_ids=self.category_ids or None,
                on_error=self.on_error,
            )
            if not self.category_ids:
                self.class_names, self.category_ids = data.class_names, data.category_ids
            dataset = DetectionDataset(data.records, transform=self._transform(split))
            dataset.coco_gt = str(data.annotation_file)  # what COCOeval scores this split against
            dataset.image_ids = [r.image_id for r in data.records]
            self.datasets[split] = dataset

    def _transform(self, split: str):
        common = {"resolution": self.resolution, "mean": self.mean, "std": self.std}
        if split != "train":
            return detection_eval_transform(**common)
        preset = ssd_train_transform if self.recipe == "ssd" else ssdlite_train_transform
        return preset(**common, **self.augment)
