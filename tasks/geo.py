"""Geo-localization task (PlaNet on MobileNet, MobileNets paper Sec. 4.4): classification over S2 cells.

Each partitioning (coarse / middle / fine, built from the training coordinates by ``tools/geo_cells.py`` or by
the data module) gets its own softmax classifier on the shared features; the loss is the mean of their
cross-entropies. A photo is located at the mean training location of its most probable finest cell, where a
fine cell's probability is multiplied by those of the coarser cells that contain it (``hierarchical``).
Metrics: share of photos within 1 / 25 / 200 / 750 / 2500 km and the median error (paper Table 11), beside
the baseline that always answers the most common cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from mobivision import create_geolocator
from mobivision.errors import ConfigError
from mobivision.evaluation.evaluator import Evaluator
from mobivision.evaluation.geo import GeoEvaluator
from mobivision.export.geo import GeoOutputs
from mobivision.export.graphs import ExportGraph
from mobivision.geo.cells import cells_from_columns, parent_indices
from mobivision.heads.geo import hierarchical_probabilities
from mobivision.tasks.base import LabelNeeds, PrimaryMetric, TaskModule, describe_value


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

    kind: ClassVar[str] = "geo"
    decoder: ClassVar[str] = "mobivision.inference.decode:decode_geo"
    primary_metric: ClassVar[PrimaryMetric] = PrimaryMetric("acc_25km", "max")
    label_kind: ClassVar[str] = "geo"
    label_needs: ClassVar[LabelNeeds] = LabelNeeds(2, "cell", "cells", "a geo classifier")
    side_file: ClassVar[str] = "cells"  # <name>.cells.json: what decode_geo reads besides the logits

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
        options = dict(self.backbone_cfg)
        self.model = create_geolocator(options.pop("name"), cells_per_partition=sizes, dropout=dropout, **options)
        finest = self.partitions[-1]
        # Non-persistent: rebuilt from the hyper-parameters, so a checkpoint holds the cells once.
        locations = [[cell.lat, cell.lon] for cell in finest]
        self.register_buffer("cell_locations", torch.tensor(locations), persistent=False)
        parents = [parent_indices(finest, coarse) for coarse in self.partitions[:-1]]
        for i, parent in enumerate(parents):
            self.register_buffer(f"parents_{i}", parent, persistent=False)
        baseline = max(finest, key=lambda cell: cell.count)
        self.baseline_location = (baseline.lat, baseline.lon)

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

    # --- steps ---------------------------------------------------------------------------------------------

    def loss(self, outputs: list[torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Mean cross-entropy over the partitionings; -1 (a photo in a dropped cell) is ignored."""
        losses = [
            F.cross_entropy(x.float(), c, ignore_index=-1, label_smoothing=self.label_smoothing)
            for x, c in zip(outputs, batch["target"].cells.unbind(1), strict=True)
            if (c >= 0).any()
        ]
        return {"loss": torch.stack(losses).mean() if losses else outputs[0].sum() * 0.0}

    def graph_outputs_from(self, outputs: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return (*outputs, self.cell_probabilities(outputs))

    # --- protocol ------------------------------------------------------------------------------------------

    def make_evaluator(self, dataset: Any, stage: str) -> GeoEvaluator:
        """Distances of every photo once; on test also the most-common-cell baseline."""
        return GeoEvaluator(baseline=self.baseline_location if stage == "test" else None)

    def update_evaluator(self, evaluator: Evaluator, outputs: Sequence[torch.Tensor], batch: dict[str, Any]) -> None:
        """``outputs``: the partitionings' logits, then the finest cells' probabilities (the export graph's)."""
        probabilities = outputs[-1].float()
        cells = probabilities.topk(min(5, probabilities.shape[-1]), dim=-1).indices
        evaluator.update((self.cell_locations.to(cells.device)[cells[:, 0]], cells), batch)

    def _parents(self) -> list[torch.Tensor]:
        return [getattr(self, f"parents_{i}") for i in range(len(self.partitions) - 1)]

    def export_graphs(self) -> dict[str, ExportGraph]:
        names = [f"logits_{name}" for name in self.partition_names]
        meanings = {
            n: f"[B, {len(cells)}] cell logits of partitioning {p}"
            for n, p, cells in zip(names, self.partition_names, self.partitions, strict=True)
        }
        combination = "hierarchical (times the coarser parents')" if self.hierarchical else "finest softmax"
        meanings["cell_probabilities"] = (
            f"[B, {len(self.partitions[-1])}] probabilities over the finest cells, {combination}; the location is "
            "the mean training location (cells file) of the most probable cell"
        )
        module = GeoOutputs(self.model, self._parents(), hierarchical=self.hierarchical)
        return {"model": ExportGraph(module, [*names, "cell_probabilities"], meanings)}

    def export_metadata(self) -> dict[str, Any]:
        return {
            "partitions": [
                {"name": n, "cells": len(c)} for n, c in zip(self.partition_names, self.partitions, strict=True)
            ],
            "hierarchical": self.hierarchical,
            "cells_file": "<name>.cells.json beside this file: tokens, counts, mean lat/lon per cell",
        }

    @classmethod
    def label_names(cls, inputs: dict[str, Any]) -> list[str]:
        """The finest partitioning's cells."""
        partitions = inputs.get("partitions") or [{}]
        return [str(token) for token in partitions[-1].get("tokens", [])]

    def side_data(self) -> dict[str, Any]:
        """Every partitioning's cells (tokens, counts, mean training locations) and the finest cells' parents:
        what a runtime needs to turn cell probabilities into a location."""
        return {
            "partitions": [
                {"name": p["name"], **{k: list(p[k]) for k in ("tokens", "count", "lat", "lon")}}
                for p in self.hparams["partitions"]
            ],
            "parents": [p.tolist() for p in self._parents()],
            "hierarchical": self.hierarchical,
            "location": "mean training location (lat, lon) of the finest partitioning's most probable cell",
        }

    def describe_target(self, target: Any) -> str:
        return describe_value(target)
