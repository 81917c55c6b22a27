"""``AttributeDataModule``: multi-label face attributes (CelebA's official files or an attribute CSV), with a
labeled share and extra unlabeled images for distillation; ``attribute_positive_rate`` of its training labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from mobivision.data.attribute_csv import read_attribute_csv
from mobivision.data.celeba import read_celeba
from mobivision.data.image_folder import list_images
from mobivision.data.records import ImageRecord
from mobivision.errors import ConfigError
from mobivision.tasks.classification_data import ClassificationDataModule


def attribute_positive_rate(labels: Sequence[Sequence[float]] | torch.Tensor) -> list[float]:
    """Each attribute's share of positives among the images where it is known (NaN: unknown), rounded to 6
    decimals; 0.0 for an attribute known nowhere.

    Args:
        labels: One row per image, one value per attribute (1.0, 0.0 or NaN).
    """
    values = torch.as_tensor(labels, dtype=torch.float64)
    known = ~values.isnan()
    rate = values.nan_to_num(0.0).sum(0) / known.sum(0).clamp(min=1)
    return [round(v, 6) for v in rate.tolist()]


class AttributeDataModule(ClassificationDataModule):
    """Multi-label face attributes: CelebA's official files or a generic attribute CSV (``path,attr1,...``).

    Targets are float vectors (1 present, 0 absent, NaN unknown). For distillation (the MobileNets paper trained
    its attribute nets on a teacher's outputs) part of the training images may come without labels: with
    ``labeled_fraction < 1`` a fixed random share of the training split keeps its labels and the rest is
    unlabeled (or left out with ``keep_unlabeled=false``: the baseline without a teacher), and ``unlabeled_dir``
    adds every image under a folder as unlabeled. Unlabeled images are learned from the teacher alone.

    Args:
        format: ``celeba`` (splits ``train``/``val``/``test`` of ``list_eval_partition.txt``) or ``csv``
            (CSV file names relative to ``root``).
        attributes: Attribute names to learn, in this order (None: all in the file's order).
        images: CelebA only: ``aligned`` (``img_align_celeba/``) or ``in_the_wild`` (``img_celeba/`` cropped to
            ``list_bbox_celeba.txt``, enlarged by ``crop_margin``).
        labeled_fraction: Share of the training split that keeps its labels (1.0: all).
        keep_unlabeled: Keep the training images whose labels ``labeled_fraction`` removed (for a teacher), or
            train on the labeled share only.
        unlabeled_dir: A folder of extra unlabeled training images (searched recursively).
        label_seed: Seed of the choice of labeled training images.
        **See ``ClassificationDataModule`` for the other arguments.**
    """

    formats = ("celeba", "csv")
    label_kind = "attributes"

    def __init__(
        self,
        *,
        format: str = "celeba",
        attributes: list[str] | None = None,
        images: str = "aligned",
        labeled_fraction: float = 1.0,
        keep_unlabeled: bool = True,
        unlabeled_dir: str | None = None,
        label_seed: int = 0,
        **options: Any,
    ) -> None:
        super().__init__(format=format, **options)
        if not 0.0 < labeled_fraction <= 1.0:
            raise ConfigError(f"data.labeled_fraction must be in (0, 1], got {labeled_fraction}")
        if unlabeled_dir and not keep_unlabeled:
            raise ConfigError("data.unlabeled_dir adds unlabeled images, but data.keep_unlabeled=false leaves them out")
        self.attributes = list(attributes) if attributes else None
        self.images = images
        self.labeled_fraction = labeled_fraction
        self.keep_unlabeled = keep_unlabeled
        self.unlabeled_dir = Path(unlabeled_dir) if unlabeled_dir else None
        self.label_seed = label_seed
        self.unlabeled_count = 0

    def _read(self, split: str) -> tuple[list[ImageRecord], list[str]]:
        wanted = self.class_names or self.attributes
        name = self.splits[split]
        if self.format == "celeba":
            return read_celeba(self.root, split=name, attributes=wanted, images=self.images, on_error=self.on_error)
        return read_attribute_csv(self.root / name, image_root=self.root, attributes=wanted, on_error=self.on_error)

    def _training_records(self, records: list[ImageRecord]) -> list[ImageRecord]:
        unknown = (math.nan,) * len(self.class_names)
        if self.labeled_fraction < 1.0:
            order = torch.randperm(len(records), generator=torch.Generator().manual_seed(self.label_seed)).tolist()
            labeled = set(order[: max(1, round(self.labeled_fraction * len(records)))])
            records = [
                r if i in labeled else replace(r, label=unknown)
                for i, r in enumerate(records)
                if i in labeled or self.keep_unlabeled
            ]
        if self.unlabeled_dir is not None:
            records = records + [
                ImageRecord(image_id=str(path), path=path, label=unknown) for path in list_images(self.unlabeled_dir)
            ]
        self.unlabeled_count = sum(all(map(math.isnan, r.label)) for r in records)
        return records

    def task_inputs(self) -> dict[str, Any]:
        """The attribute names and each attribute's positive rate among the labeled training images."""
        return {"attribute_names": self.class_names, "positive_rate": self.positive_rate()}

    def positive_rate(self) -> list[float] | None:
        """``attribute_positive_rate`` of the training records (None without a training split)."""
        if "train" not in self.datasets:
            return None
        return attribute_positive_rate([r.label for r in self.datasets["train"].records])
