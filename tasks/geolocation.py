"""Geo-localization task (PlaNet on MobileNet, MobileNets paper Sec. 4.4): classification over S2 cells.

Each partitioning (coarse / middle / fine, built from the training coordinates by ``tools/geo_cells.py`` or by
the data module) gets its own softmax classifier on the shared features; the loss is the mean of their
cross-entropies. A photo is located at the mean training location of its most probable finest cell, where a
fine cell's probability is multiplied by those of the coarser cells that contain it (``hierarchical``).
Metrics: share of photos within 1 / 25 / 200 / 750 / 2500 km and the median error (paper Table 11), beside
the baseline that always answers the most common cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from mobivision import create_model
from mobivision.errors import ConfigError
from mobivision.evaluation.geo import geo_metrics, write_geo_report
from mobivision.geo.cells import cells_from_columns, parent_indices
from mobivision.heads.geo import GeoLocator, hierarchical_probabilities
from tasks.base import TaskModule


class GeoTask(TaskModule):
    """Cell classifier; logs ``*/loss`` and ``*/acc_<km>km``, ``*/median_km`` (and ``test/baseline_*``).

    Args:
        partitions: The cells of each partitioning, coarsest first, from the data module:
            ``[{"name", "tokens", "count", "lat", "lon"}, ...]``; kept in the checkpoint.
        dropout: Dropout on the features before the cell classifiers.
        label_smoothing: Cross-entropy label smoothing.
        hierarchical: Combine the partitionings' probabilities (else the finest partitioning alone decides).
        **See ``TaskModule`` for the shared arguments.**
    """

    def __init__(
        self,
        *,
        partitions: list[dict[str, Any]],
        dropout: float = 0.0,
        label_smoothing: float = 0.0,
        hierarchical: bool = True,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.save_hyperparameters()
        if not partitions:
            raise ConfigError("the geo task needs at least one cell partitioning (data.partitions)")
        self.partitions = [cells_from_columns(p) for p in partitions]
        self.partition_names = [p["name"] for p in partitions]
        self.label_smoothing = label_smoothing
        self.hierarchical = hierarchical
        sizes = [len(cells) for cells in self.partitions]
        classifier = create_model(num_classes=0, **self.backbone_cfg)
        self.model = GeoLocator(classifier, sizes, dropout=dropout)
        finest = self.partitions[-1]
        # Non-persistent: rebuilt from the hyper-parameters, so a checkpoint holds the cells once.
        locations = [[cell.lat, cell.lon] for cell in finest]
        self.register_buffer("cell_locations", torch.tensor(locations), persistent=False)
        parents = [parent_indices(finest, coarse) for coarse in self.partitions[:-1]]
        for i, parent in enumerate(parents):
            self.register_buffer(f"parents_{i}", parent, persistent=False)
        baseline = max(finest, key=lambda cell: cell.count)
        self.baseline_location = (baseline.lat, baseline.lon)
        resolution = self.data_meta.get("resolution", 224)
        self.example_input_array = torch.zeros(1, 3, resolution, resolution)
        self._outputs: list[tuple[torch.Tensor, torch.Tensor, list[str]]] = []
        self.last_evaluation: dict[str, Any] = {}

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.model(images)

    def cell_probabilities(self, logits: list[torch.Tensor]) -> torch.Tensor:
        """Probabilities over the finest partitioning's cells (hierarchical or finest alone)."""
        probabilities = [x.float().softmax(-1) for x in logits]
        if not self.hierarchical or len(probabilities) == 1:
            return probabilities[-1]
        parents = [getattr(self, f"parents_{i}") for i in range(len(probabilities) - 1)]
        combined = hierarchical_probabilities(probabilities, parents)
        return combined / combined.sum(-1, keepdim=True)

    def locate(self, images: torch.Tensor, *, top_k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, 2)`` predicted latitude/longitude and the ``(N, k)`` top finest cells with their probabilities
        as ``(N, k, 2)`` ``[cell index, probability]``."""
        probabilities = self.cell_probabilities(self(images))
        scores, cells = probabilities.topk(min(top_k, probabilities.shape[-1]), dim=-1)
        return self.cell_locations[cells[:, 0]], torch.stack([cells.to(scores.dtype), scores], dim=-1)

    # --- steps ---------------------------------------------------------------------------------------------

    def _loss(self, logits: list[torch.Tensor], classes: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the partitionings; -1 (a photo in a dropped cell) is ignored."""
        losses = [
            F.cross_entropy(x.float(), c, ignore_index=-1, label_smoothing=self.label_smoothing)
            for x, c in zip(logits, classes.unbind(1), strict=True)
            if (c >= 0).any()
        ]
        return torch.stack(losses).mean() if losses else logits[0].sum() * 0.0

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        target = batch["target"]
        loss = self._loss(self(batch["image"]), target[:, 2:].long())
        self.log("train/loss", loss, prog_bar=True, batch_size=len(target))
        return loss

    def _eval_step(self, batch: dict[str, Any]) -> None:
        location, top = self.locate(batch["image"], top_k=5)
        predicted = torch.cat([location, top[..., 0]], dim=1)  # lat, lon, top-5 cell indices
        self._outputs.append((predicted.cpu(), batch["target"][:, :2].cpu(), batch["meta"]["path"]))

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_start(self) -> None:
        self._outputs = []

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        self._evaluate("val")

    def on_test_epoch_end(self) -> None:
        self._evaluate("test")

    def _evaluate(self, stage: str) -> None:
        """Distances need every image once: gather all processes' predictions, then score."""
        evaluation = self.gather_per_image(self._outputs)
        self._outputs = []
        if not evaluation["paths"]:
            return
        predicted, truth = evaluation["probabilities"], evaluation["targets"]
        metrics = geo_metrics(predicted[:, 0], predicted[:, 1], truth[:, 0], truth[:, 1])
        summary = metrics.summary(f"{stage}/")
        if stage == "test":
            lat, lon = (torch.full_like(truth[:, 0], v) for v in self.baseline_location)
            summary |= geo_metrics(lat, lon, truth[:, 0], truth[:, 1]).summary("test/baseline_")
        # Every process computed the same values from the same gathered outputs.
        self.log_dict(summary, prog_bar=stage == "val", sync_dist=True)
        self.last_evaluation = evaluation

    def write_evaluation(self, output_dir: Path, split: str) -> list[Path]:
        """After a test run: the Table 11 row beside the paper's, every photo's prediction, and a map."""
        if not self.last_evaluation:
            return []
        predicted, truth = self.last_evaluation["probabilities"], self.last_evaluation["targets"]
        return write_geo_report(
            output_dir,
            split,
            pred_lat=predicted[:, 0],
            pred_lon=predicted[:, 1],
            true_lat=truth[:, 0],
            true_lon=truth[:, 1],
            images=self.last_evaluation["paths"],
            top_cells=predicted[:, 2:].long().tolist(),
            baseline=self.baseline_location,
        )
