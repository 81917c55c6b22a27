"""A head and task that mobivision does not ship: counting the shapes of each class in an image, by regression.

It exists to prove that a head plugs in through the task protocol alone (tests/test_plugin.py): this file, its
configs (``configs/task/shape_count.yaml``, ``configs/experiment/shape_count_demo.yaml``) and an entry point
in the group ``mobivision.tasks`` are all it takes; no file of the package knows it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mobivision import create_backbone
from mobivision.evaluation.evaluator import Evaluator, image_keys
from mobivision.export import ExportGraph
from mobivision.inference import Values
from mobivision.tasks.base import PrimaryMetric, TaskModule


class CountHead(nn.Module):
    """Global average pooling of the last feature map, then one linear regression per class (a count >= 0)."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(channels, num_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return F.softplus(self.linear(features.mean((2, 3))))


class ShapeCounter(nn.Module):
    """Backbone + ``CountHead``: images -> ``[B, classes]`` expected counts."""

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        last = backbone.out_features[-1]
        self.head = CountHead(backbone.feature_specs[last].channels, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images)[self.backbone.out_features[-1]])


def counts(targets: list[dict[str, torch.Tensor]], num_classes: int) -> torch.Tensor:
    """``[B, classes]`` true counts from detection targets (1-based labels)."""
    return torch.stack([torch.bincount(t["labels"] - 1, minlength=num_classes).float() for t in targets])


class CountEvaluator(Evaluator):
    """Mean absolute error of the counts, and the share of images whose rounded counts are all exact."""

    lower_is_better = frozenset({"mae"})

    def __init__(self, class_names: Sequence[str]) -> None:
        super().__init__()
        self.class_names = list(class_names)

    def update(self, predictions: torch.Tensor, batch: dict[str, Any]) -> None:
        truth = counts(batch["target"], len(self.class_names))
        for key, row in zip(image_keys(batch), zip(predictions.detach().cpu(), truth, strict=True), strict=True):
            self.add(key, row)

    def _compute(self, rows: dict[Hashable, Any]) -> dict[str, float]:
        predicted, truth = (torch.stack(column) for column in zip(*rows.values(), strict=True))
        exact = (predicted.round() == truth).all(1).float().mean()
        return {"mae": float((predicted - truth).abs().mean()), "exact": float(exact)}

    def write_report(self, output_dir: Path, split: str) -> list[Path]:
        path = Path(output_dir) / f"counts_{split}.csv"
        lines = ["image," + ",".join(f"{n},{n}_true" for n in self.class_names)]
        for key, (predicted, truth) in self._rows.items():
            cells = [f"{p:.3f},{int(t)}" for p, t in zip(predicted.tolist(), truth.tolist(), strict=True)]
            lines.append(f"{key}," + ",".join(cells))
        path.write_text("\n".join(lines) + "\n")
        return [path]


class ShapeCountTask(TaskModule):
    """Counts the shapes of each class (smooth L1 on the counts); logs ``*/mae`` and ``*/exact``.

    Args:
        class_names / category_ids: From the detection data module (COCO categories).
    """

    kind: ClassVar[str] = "shape_count"
    decoder: ClassVar[str] = "shape_count:decode_counts"  # this module (the plug-in package), torch-free function
    primary_metric: ClassVar[PrimaryMetric] = PrimaryMetric("mae", "min")

    def __init__(self, *, class_names: list[str], category_ids: list[int], **common: Any) -> None:
        super().__init__(**common)
        self.save_hyperparameters()
        self.class_names = list(class_names)
        options = dict(self.backbone_cfg)
        backbone = create_backbone(options.pop("name"), **options)
        self.model = ShapeCounter(backbone, len(self.class_names))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        truth = counts(batch["target"], len(self.class_names)).to(outputs.device)
        return {"loss": F.smooth_l1_loss(outputs, truth)}

    def make_evaluator(self, dataset: Any, stage: str) -> CountEvaluator:
        return CountEvaluator(self.class_names)

    def update_evaluator(self, evaluator: Evaluator, outputs: Sequence[torch.Tensor], batch: dict[str, Any]) -> None:
        evaluator.update(outputs[0], batch)

    def export_graphs(self) -> dict[str, ExportGraph]:
        return {"model": ExportGraph(self.model, ["counts"], {"counts": "[B, classes] expected count per class"})}


def decode_counts(outputs: Any, meta: Any, placements: Any, options: Any, side: Any = None) -> list[Values]:
    """The plug-in's decoder (``ShapeCountTask.decoder``): the expected count of each class, per image."""
    results = []
    for row in outputs["counts"].tolist():
        counts = {n: round(c, 3) for n, c in zip(meta["class_names"], row, strict=True)}
        lines = [f"{n}: {c:.1f}" for n, c in counts.items()]
        results.append(Values({"counts": counts}, ", ".join(lines), lines))
    return results
