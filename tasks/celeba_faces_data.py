"""``CelebAFacesDataModule``: CelebA in the wild as one data set with two label sets, the face box and the
attributes of each image, for a face detector and an attribute head in one backbone pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mobivision.data.celeba import FACE_CATEGORY, read_celeba_faces
from mobivision.data.coco import DetectionDataset
from mobivision.data.synthetic import write_synthetic_faces
from mobivision.errors import ConfigError
from mobivision.tasks.attributes_data import attribute_positive_rate
from mobivision.tasks.detection_data import DetectionDataModule
from mobivision.tasks.split_data import write_once


class CelebAFacesDataModule(DetectionDataModule):
    """CelebA in the wild as one data set with two label sets: the face box and the attributes of each image.

    Each split is the whole ``img_celeba/`` image (not cropped to the face) with its face box from
    ``list_bbox_celeba.txt`` as a one-class detection target (``face``, COCO category 1) and its attributes from
    ``list_attr_celeba.txt``, so a face detector and an attribute head train on the same images in one backbone
    pass. ``setup`` reads each split with ``read_celeba_faces`` (``mobivision.data.celeba``): its boxes converted
    once into ``annotation_dir/celeba_faces_<split>.json`` (reused while newer than the box and partition lists;
    the json is also the ground truth of the COCO evaluation), and its attributes as the image-level label set
    ``attributes`` of ``DetectionDataset``.

    Batches are detection batches (``detection_collate``) plus ``batch["attributes"]``, float ``[B, A]`` (1
    present, 0 absent), and ``batch["labeled"]["attributes"]``, bool ``[B]`` (False for an image without an
    attribute row: NaN, never an invented label). The detection transforms (``recipe``) move the box; the
    attributes are image-level labels and stay as they are through flips and crops (a crop keeps the face's
    centre, so the face stays in the image, and CelebA's attributes are left-right symmetric).

    ``task_inputs()`` is the detection label map, so ``task=detection data=celeba_faces`` trains a plain face
    detector; ``label_sets()`` adds the attribute set for a multi-task model.

    Args:
        root: The CelebA folder (``img_celeba/``, ``list_bbox_celeba.txt``, ``list_attr_celeba.txt``,
            ``list_eval_partition.txt``; see ``mobivision.data.celeba``).
        attributes: Attribute names to learn, in this order (None: all in the file's order).
        train_split / val_split / test_split: Official split names (``train``, ``val``, ``test``); None to skip.
        annotation_dir: Folder of the converted COCO jsons (default ``<root>/annotations_faces``).
        synthetic: Options of ``write_synthetic_faces`` to write the synthetic set at ``root`` first (``kind``,
            if given, must be ``faces``, as in the attribute configs that share the files).
        **See ``DetectionDataModule`` for the other arguments (``recipe``, ``augment``, loaders, ``on_error``).**
    """

    split_key = "{split}_split"

    def __init__(
        self,
        *,
        root: str,
        attributes: list[str] | None = None,
        train_split: str | None = "train",
        val_split: str | None = "val",
        test_split: str | None = "test",
        annotation_dir: str | None = None,
        synthetic: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(root=root, splits={}, synthetic=synthetic, **options)
        if synthetic and synthetic.get("kind", "faces") != "faces":
            raise ConfigError(f"data.synthetic.kind must be faces for CelebA faces, got {synthetic['kind']!r}")
        # The official split of each configured split (``splits`` of a DetectionDataModule holds file paths).
        self.splits = {
            split: name for split, name in {"train": train_split, "val": val_split, "test": test_split}.items() if name
        }
        self.attributes = list(attributes) if attributes else None
        self.attribute_names: list[str] = []
        self.annotation_dir = Path(annotation_dir) if annotation_dir else self.root / "annotations_faces"

    def prepare_data(self) -> None:
        if self.synthetic:
            options = {k: v for k, v in self.synthetic.items() if k != "kind"}
            write_once(write_synthetic_faces, self.root, **options)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.prepare_data()
        self.class_names, self.category_ids = [str(FACE_CATEGORY["name"])], [int(FACE_CATEGORY["id"])]
        for split, name in self.splits.items():
            faces = read_celeba_faces(
                self.root,
                split=name,
                annotation_file=self.annotation_dir / f"celeba_faces_{name}.json",
                attributes=self.attribute_names or self.attributes,
                on_error=self.on_error,
            )
            self.attribute_names = self.attribute_names or faces.attribute_names
            self.datasets[split] = DetectionDataset(
                faces.detection.records,
                transform=self._transform(split),
                annotation_file=faces.detection.annotation_file,
                image_labels={"attributes": faces.attributes},
                **self._image_reading(split),
            )

    def positive_rate(self) -> list[float] | None:
        """``attribute_positive_rate`` of the training images that have attributes (None without a training
        split)."""
        if "train" not in self.datasets:
            return None
        train = self.datasets["train"]
        return attribute_positive_rate(train.image_labels["attributes"][train.labeled["attributes"]])

    def label_sets(self) -> dict[str, dict[str, Any]]:
        """``target``: the face boxes (``task_inputs()``); ``attributes``: the attribute names and each one's
        positive rate among the labeled training images (what ``AttributeTask`` takes)."""
        return {
            "target": self.task_inputs(),
            "attributes": {"attribute_names": self.attribute_names, "positive_rate": self.positive_rate()},
        }

    def label_kinds(self) -> dict[str, str]:
        """The face boxes for a detector, the attributes for an attribute task."""
        return {"target": "detection", "attributes": "attributes"}
