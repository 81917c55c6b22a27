"""``DetectionDataModule``: COCO-format splits with the SSD or SSDLite training augmentation; the base of
``CelebAFacesDataModule``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mobivision.data.coco import DetectionDataset, detection_collate, read_coco
from mobivision.data.detection_transforms import (
    detection_eval_transform,
    ssd_train_transform,
    ssdlite_train_transform,
)
from mobivision.data.images import DEFAULT_MAX_IMAGE_MPX
from mobivision.data.synthetic import write_shapes_detection
from mobivision.errors import ConfigError
from mobivision.tasks.config_schema import check_options
from mobivision.tasks.split_data import SplitDataModule, write_once

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
        on_error / max_image_mpx: bad records and images, as ``SplitDataModule`` says.
        **See ``SplitDataModule`` for the loader arguments.**
    """

    collate_fn = staticmethod(detection_collate)
    label_kind = "detection"
    split_key = "splits.{split}"

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
        normalize_on_device: bool = False,
        augment: dict[str, Any] | None = None,
        synthetic: dict[str, Any] | None = None,
        on_error: str = "raise",
        max_image_mpx: float = DEFAULT_MAX_IMAGE_MPX,
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
        self.category_ids: list[int] = []

    @property
    def meta(self) -> dict[str, Any]:
        """What inference needs to pre-process images like evaluation did (``crop_pct`` None: the whole image is
        resized to the input size, no crop)."""
        return {"resolution": self.resolution, "mean": list(self.mean), "std": list(self.std), "crop_pct": None}

    def task_inputs(self) -> dict[str, Any]:
        return {"class_names": self.class_names, "category_ids": self.category_ids}

    def prepare_data(self) -> None:
        if self.synthetic:
            write_once(write_shapes_detection, self.root, **self.synthetic)

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
            self.datasets[split] = DetectionDataset(
                data.records,
                transform=self._transform(split),
                annotation_file=data.annotation_file,
                **self._image_reading(split),
            )

    def _transform(self, split: str):
        common = {"resolution": self.resolution, "mean": self.mean, "std": self.std}
        if split != "train":
            return detection_eval_transform(**common)
        preset = ssd_train_transform if self.recipe == "ssd" else ssdlite_train_transform
        check_options("data.augment", self.augment, preset, passed={*common, "normalize"})
        return preset(**common, **self.augment, normalize=self._normalize_in_loader(split))
