"""Lightning data modules: readers + albumentations presets + loaders, for classification and detection.

``SplitDataModule`` holds what both share (loader options, the train/val/test loaders, normalisation);
each subclass reads its format and chooses its transforms. ``task_inputs()`` is what the task needs from
the data (the label map), passed by the runner when it builds the task; ``label_sets()`` lists every label set
the batches carry (``CelebAFacesDataModule``: face boxes and attributes of the same images), for a model with
one head per set.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import Any

import lightning as L
import torch
from filelock import FileLock
from torch.utils.data import DataLoader, Dataset
from torchdata.stateful_dataloader import StatefulDataLoader

from mobivision.data.celeba import (
    FACE_CATEGORY,
    IMAGE_FOLDERS,
    read_attribute_csv,
    read_celeba,
    write_celeba_face_annotations,
)
from mobivision.data.coco import DetectionDataset, detection_collate, read_coco
from mobivision.data.cub import read_cub
from mobivision.data.detection_transforms import (
    detection_eval_transform,
    ssd_train_transform,
    ssdlite_train_transform,
)
from mobivision.data.geo_csv import read_geo_csv
from mobivision.data.image_folder import list_images, read_csv_list, read_image_folder
from mobivision.data.images import DEFAULT_MAX_IMAGE_MPX, check_max_image_mpx
from mobivision.data.records import ClassificationDataset, GeoLabel, ImageRecord, check_on_error
from mobivision.data.stanford_dogs import read_stanford_dogs
from mobivision.data.synthetic import (
    write_fine_grained_shapes,
    write_shapes_classification,
    write_shapes_detection,
    write_synthetic_faces,
    write_synthetic_geo,
)
from mobivision.data.transforms import (
    classification_eval_transform,
    classification_train_transform,
    normalization_table,
    normalized_batch,
)
from mobivision.errors import ConfigError
from mobivision.factory import default_mean_std
from mobivision.geo.cells import assign_cells, cells_to_columns, load_or_build_cells
from mobivision.tasks.config_schema import check_options
from mobivision.tasks.resume import ResumableDataset

log = logging.getLogger("mobivision")

FORMATS = ("image_folder", "csv", "cub", "stanford_dogs")
SYNTHETIC_WRITERS = {
    "shapes": write_shapes_classification,
    "fine_grained": write_fine_grained_shapes,
    "faces": write_synthetic_faces,
    "geo": write_synthetic_geo,
}


def write_once(writer: Callable[..., Path], root: Path, **options: Any) -> Path:
    """Run a synthetic-data writer under a file lock beside ``root``: the jobs of a parallel sweep (and DDP ranks)
    start together, and the first writes while the others wait, then reuse the complete data."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(root.parent / f".{root.name}.lock"):
        return writer(root, **options)


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


class SplitDataModule(L.LightningDataModule):
    """Train/val/test datasets in ``self.datasets`` and their loaders.

    Args:
        resolution: Square input size.
        batch_size / eval_batch_size: Training and evaluation batch sizes.
        num_workers / pin_memory / persistent_workers: DataLoader options.
        mean / std: Normalisation on [0, 1] pixels (the runner fills in the backbone's default).
        normalize_on_device: Training batches leave the loader as uint8 images, normalised on the device
            (``on_after_batch_transfer``, which Lightning calls after the copy) to the same floats: a quarter of the
            bytes through worker queues, pinned memory and the copy to the GPU. Evaluation batches stay floats.
        on_error: ``raise`` or ``skip`` (and report) bad records and unreadable training images.
        max_image_mpx: An image of more million pixels is unreadable (found from its header, before decoding:
            ``mobivision.data.images``), so it follows ``on_error``.
    """

    collate_fn = None
    formats: tuple[str, ...] = ()
    label_kind: str | None = None  # the ``kind`` of the task that reads ``batch["target"]`` (tasks/data_checks.py)
    split_key = "{split}_split"  # the config key naming a split, for messages

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
        normalize_on_device: bool = False,
        on_error: str = "raise",
        max_image_mpx: float = DEFAULT_MAX_IMAGE_MPX,
    ) -> None:
        super().__init__()
        check_on_error(on_error)
        self.on_error = on_error
        self.max_image_mpx = check_max_image_mpx(max_image_mpx, "data.max_image_mpx")
        self.resolution = resolution
        self.normalize_on_device = normalize_on_device
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.loader_options = {
            "num_workers": num_workers,
            "pin_memory": pin_memory,
            "persistent_workers": persistent_workers and num_workers > 0,
        }
        default_mean, default_std = default_mean_std("mobilenet_v1")  # the runner passes the backbone's
        self.mean = tuple(mean) if mean is not None else default_mean
        self.std = tuple(std) if std is not None else default_std
        self.class_names: list[str] = []
        self.datasets: dict[str, Dataset] = {}

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """A training batch of uint8 images (``normalize_on_device``) normalised here, on the device, to the floats
        the loader would have made; any other batch as it is."""
        return normalized_batch(batch, self._normalization_table)

    @cached_property
    def _normalization_table(self) -> torch.Tensor:
        return normalization_table(self.mean, self.std)

    def _image_reading(self, split: str) -> dict[str, Any]:
        """How ``split``'s dataset reads images: at most ``max_image_mpx`` million pixels, and ``on_error`` for one
        it cannot read: with ``data.on_error=skip`` training puts the next readable image in its place (named in one
        warning per epoch, ``SkippedImages``); evaluation always stops, naming the file, because a replaced image
        would score another image's predictions against its ground truth."""
        return {"on_error": self.on_error if split == "train" else "raise", "max_image_mpx": self.max_image_mpx}

    def _normalize_in_loader(self, split: str) -> bool:
        """Whether ``split``'s transform normalises (else it emits uint8 for the device, ``normalize_on_device``)."""
        return split != "train" or not self.normalize_on_device

    def task_inputs(self) -> dict[str, Any]:
        """Keyword arguments the task needs from the data (its label map)."""
        return {"class_names": self.class_names}

    def label_sets(self) -> dict[str, dict[str, Any]]:
        """The label sets the batches carry, ``{batch key: task inputs}``.

        A single-task model reads ``batch["target"]`` and is built with ``task_inputs()``; a multi-head model
        picks a label set per head: the head reads ``batch[key]`` and is built with ``label_sets()[key]``.
        Default: the one set ``{"target": self.task_inputs()}``.
        """
        return {"target": self.task_inputs()}

    def label_kinds(self) -> dict[str, str]:
        """``{batch key: task kind}`` of ``label_sets()``: which task can read each set (none if unknown)."""
        return {"target": self.label_kind} if self.label_kind else {}

    def _loader(self, split: str, *, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise ConfigError(f"data has no {split} split configured, so there is no {split} data")
        size = self.batch_size if split == "train" else self.eval_batch_size
        if split == "train":
            # Resumable mid-epoch: Lightning keeps the loader's state_dict (shuffle order, batches yielded, the
            # augmentation random state of ResumableDataset) in checkpoints and loads it on resume.
            return StatefulDataLoader(
                ResumableDataset(self.datasets[split]),
                batch_size=size,
                shuffle=shuffle,
                drop_last=shuffle,
                collate_fn=self.collate_fn,
                **self.loader_options,
            )
        # A generator of its own: making an iterator draws a worker seed from it, and with persistent workers a
        # resumed run makes its first one later than the original run did, which would shift the global RNG.
        return DataLoader(
            self.datasets[split],
            batch_size=size,
            shuffle=shuffle,
            drop_last=shuffle,
            collate_fn=self.collate_fn,
            generator=torch.Generator(),
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
        lats = [r.label.lat for r in records]
        lons = [r.label.lon for r in records]
        options = self.partition_options
        t_max = sorted(options["t_max"], reverse=True)  # coarse (large t_max) first
        classes = []
        for limit in t_max:
            file = Path(options["dir"]) / f"cells_{options['t_min']}_{limit}.csv"
            cells = load_or_build_cells(
                file,
                lats,
                lons,
                t_min=options["t_min"],
                t_max=limit,
                min_level=options.get("min_level", 2),
                max_level=options.get("max_level", 30),
            )
            self.partitions.append({"name": file.stem, **cells_to_columns(cells)})
            classes.append(assign_cells(cells, lats, lons).tolist())
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
                options["t_min"],
            )
        return labeled

    def task_inputs(self) -> dict[str, Any]:
        """The cells of every partitioning, coarsest first."""
        return {"partitions": self.partitions}


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


class CelebAFacesDataModule(DetectionDataModule):
    """CelebA in the wild as one data set with two label sets: the face box and the attributes of each image.

    Each split is the whole ``img_celeba/`` image (not cropped to the face) with its face box from
    ``list_bbox_celeba.txt`` as a one-class detection target (``face``, COCO category 1) and its attributes from
    ``list_attr_celeba.txt``, so a face detector and an attribute head train on the same images in one backbone
    pass. ``setup`` converts each split's boxes once into ``annotation_dir/celeba_faces_<split>.json``
    (``write_celeba_face_annotations``; reused while newer than the box and partition lists), reads it with
    ``read_coco`` (the json is also the ground truth of the COCO evaluation), and adds the attributes as the
    image-level label set ``attributes`` of ``DetectionDataset``.

    Batches are detection batches (``detection_collate``) plus ``batch["attributes"]``, float ``[B, A]`` (1
    present, 0 absent), and ``batch["labeled"]["attributes"]``, bool ``[B]`` (False for an image without an
    attribute row: NaN, never an invented label). The detection transforms (``recipe``) move the box; the
    attributes are image-level labels and stay as they are through flips and crops (a crop keeps the face's
    centre, so the face stays in the image, and CelebA's attributes are left-right symmetric).

    ``task_inputs()`` is the detection label map, so ``task=detection data=celeba_faces`` trains a plain face
    detector; ``label_sets()`` adds the attribute set for a multi-head model.

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

    def _annotation_file(self, name: str) -> Path:
        """The converted COCO json of official split ``name``, written (under a file lock, for parallel jobs
        and DDP ranks) unless an up-to-date one is there."""
        out_file = self.annotation_dir / f"celeba_faces_{name}.json"
        out_file.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(out_file.parent / f".{out_file.name}.lock"):
            return write_celeba_face_annotations(self.root, name, out_file, on_error=self.on_error)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.prepare_data()
        self.class_names, self.category_ids = [str(FACE_CATEGORY["name"])], [int(FACE_CATEGORY["id"])]
        for split, name in self.splits.items():
            data = read_coco(
                self._annotation_file(name),
                self.root / IMAGE_FOLDERS["in_the_wild"],
                category_ids=self.category_ids,
                on_error=self.on_error,
            )
            records, names = read_celeba(
                self.root,
                split=name,
                attributes=self.attribute_names or self.attributes,
                images="in_the_wild",
                on_error=self.on_error,
            )
            self.attribute_names = self.attribute_names or names
            # Keyed by file name, as DetectionDataset looks labels up (the CelebA image_id is the file name).
            attributes = {r.path.name: torch.tensor(r.label, dtype=torch.float32) for r in records}
            self.datasets[split] = DetectionDataset(
                data.records,
                transform=self._transform(split),
                annotation_file=data.annotation_file,
                image_labels={"attributes": attributes},
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
