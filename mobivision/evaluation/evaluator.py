"""``Evaluator``: what a task's evaluation hands to the training loop, export and the tools.

An evaluator owns one split's ground truth (given when it is made, or carried in each batch), collects per-image
predictions with ``update``, and turns the predictions of every process into metrics with ``compute`` and into
report files with ``write_report``. Under DDP, ``DistributedSampler`` pads the last shard by repeating images, so
``compute`` receives ``state()`` of every process (rank order) and keeps each image once, first seen first. The
Lightning layer drives it (``mobivision.tasks.base.TaskModule``); the INT8 check of an export drives the same
object with ONNX Runtime's outputs, so both report the same metrics. Plain PyTorch: no Lightning here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any


class Evaluator(ABC):
    """Per-image predictions of one split, keyed by image, then metrics and reports.

    Class attributes:
        rank_zero_only: ``compute`` is expensive (COCOeval): run it on one process and broadcast the metrics.
        lower_is_better: Metric names where lower values are better (all others: higher is better).
        computed_by: What computed the metrics where that is a choice (COCO's engine and version), for reports.
    """

    rank_zero_only: bool = False
    lower_is_better: frozenset[str] = frozenset()
    computed_by: str | None = None  # what computed the metrics when that is a choice (COCO: the engine)

    def __init__(self) -> None:
        self._rows: dict[Hashable, Any] = {}

    @abstractmethod
    def update(self, predictions: Any, batch: dict[str, Any]) -> None:
        """Keep the per-image predictions of one batch (``add`` each image's row)."""

    @abstractmethod
    def _compute(self, rows: dict[Hashable, Any]) -> dict[str, float]:
        """Metrics (names without a stage prefix) of every image's row, in first-seen order."""

    def add(self, key: Hashable, row: Any) -> None:
        """One image's row; an image seen before keeps its first row."""
        self._rows.setdefault(key, row)

    def state(self) -> dict[Hashable, Any]:
        """What this process collected (picklable: gathered across processes)."""
        return self._rows

    def compute(self, states: Sequence[dict[Hashable, Any]] | None = None) -> dict[str, float]:
        """Metrics over the rows of every process (default: this process's own)."""
        merged: dict[Hashable, Any] = {}
        for state in [self._rows] if states is None else states:
            for key, row in state.items():
                merged.setdefault(key, row)
        self._rows = merged
        return self._compute(merged) if merged else {}

    def write_report(self, output_dir: Path, split: str) -> list[Path]:
        """Report files of the last ``compute`` (tables, pictures, per-image predictions); default none."""
        return []

    def summary_keys(self, metrics: dict[str, float]) -> list[str]:
        """The metrics a one-line summary shows (default all)."""
        return list(metrics)

    def better(self, name: str, a: float, b: float) -> bool:
        """Whether value ``a`` of metric ``name`` is better than ``b``."""
        return a < b if name in self.lower_is_better else a > b


def image_keys(batch: dict[str, Any]) -> list[str]:
    """The batch's image paths, which identify images across processes (``meta`` as collated by default, a dict of
    lists, or one dict per image as detection batches carry it)."""
    meta = batch["meta"]
    paths = meta["path"] if isinstance(meta, dict) else [info["path"] for info in meta]
    return [str(p) for p in paths]
