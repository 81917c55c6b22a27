"""``MultiTaskDataModule``: the data sources of a multi-task model, combined per training step.

Each source is an ordinary data module (its own format, resolution, augmentation and batch size) built from
``data.sources.<name>``; a head names its source and the label set it reads there (``task.heads.<name>.data`` /
``labels``). A joint source (``CelebAFacesDataModule``: face box and attributes of the same image) serves several
heads from one batch. Training draws one batch of every source per step (Lightning's ``CombinedLoader`` in
``max_size_cycle`` mode: an epoch is the longest source's, the shorter ones start over), so every step sees every
dataset; validation and test run each source's loader in turn (``data.sources`` order).
"""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader

from mobivision.errors import ConfigError


class MultiTaskDataModule(L.LightningDataModule):
    """Several data modules by source name (built by the runner from ``data.sources``)."""

    def __init__(self, *, sources: dict[str, L.LightningDataModule]) -> None:
        super().__init__()
        if not sources:
            raise ConfigError("data.sources is empty: a multi-task model needs at least one data source")
        self.sources = dict(sources)

    def setup(self, stage: str | None = None) -> None:
        for source in self.sources.values():
            source.setup(stage)

    @property
    def splits(self) -> dict[str, bool]:
        """The splits every source has."""
        return {s: all(source.splits.get(s) for source in self.sources.values()) for s in ("train", "val", "test")}

    @property
    def meta(self) -> dict[str, Any]:
        """The first source's pre-processing (what prediction and export use: one input for one backbone pass),
        and every source's under ``sources``."""
        first = next(iter(self.sources.values())).meta
        return {**first, "sources": {name: source.meta for name, source in self.sources.items()}}

    def task_inputs(self) -> dict[str, Any]:
        """Every source's label sets: ``{"label_sets": {source: {batch key: task inputs}}}``."""
        return {"label_sets": {name: source.label_sets() for name, source in self.sources.items()}}

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Each source's batch finished by its own module (uint8 images normalised with its mean and std): a training
        batch holds every source's, an evaluation batch is that of source number ``dataloader_idx``."""
        sources = list(self.sources.values())
        if isinstance(batch, dict) and "image" not in batch:
            return {name: self.sources[name].on_after_batch_transfer(part, 0) for name, part in batch.items()}
        return sources[dataloader_idx].on_after_batch_transfer(batch, dataloader_idx)

    def train_dataloader(self) -> CombinedLoader:
        loaders = {name: source.train_dataloader() for name, source in self.sources.items()}
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self) -> list[DataLoader]:
        return [source.val_dataloader() for source in self.sources.values()]

    def test_dataloader(self) -> list[DataLoader]:
        return [source.test_dataloader() for source in self.sources.values()]


def source_modules(datamodule: Any) -> dict[str, Any]:
    """``{source name: data module}`` of a multi-task model's data; ``{"": datamodule}`` for any other data."""
    sources = getattr(datamodule, "sources", None)
    return dict(sources) if sources else {"": datamodule}
