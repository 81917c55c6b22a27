"""``SplitDataModule``, the base of every data module: loader options, the train/val/test loaders, normalisation.

Each subclass reads its format and chooses its transforms: ``ClassificationDataModule`` (``classification_data.py``),
``AttributeDataModule`` (``attributes_data.py``), ``GeoDataModule`` (``geo_data.py``), ``DetectionDataModule``
(``detection_data.py``) and ``CelebAFacesDataModule`` (``celeba_faces_data.py``). ``task_inputs()`` is what the
task needs from the data (the label map), passed by the runner when it builds the task; ``label_sets()`` lists every
label set the batches carry (``CelebAFacesDataModule``: face boxes and attributes of the same images), for a model
with one head per set. ``write_once`` lets the first of parallel jobs write the synthetic demo data.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any

import lightning as L
import torch
from filelock import FileLock
from torch.utils.data import DataLoader, Dataset
from torchdata.stateful_dataloader import StatefulDataLoader

from mobivision.data.images import DEFAULT_MAX_IMAGE_MPX, check_max_image_mpx
from mobivision.data.records import check_on_error
from mobivision.data.transforms import normalization_table, normalized_batch
from mobivision.errors import ConfigError
from mobivision.factory import default_mean_std
from mobivision.tasks.resume import ResumableDataset


def write_once(writer: Callable[..., Path], root: Path, **options: Any) -> Path:
    """Run a synthetic-data writer under a file lock beside ``root``: the jobs of a parallel sweep (and DDP ranks)
    start together, and the first writes while the others wait, then reuse the complete data."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(root.parent / f".{root.name}.lock"):
        return writer(root, **options)


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

        A single-task model reads ``batch["target"]`` and is built with ``task_inputs()``; a multi-task model
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
