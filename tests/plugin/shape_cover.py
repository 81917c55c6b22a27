"""A second head kind that mobivision does not ship, made to sit inside a multi-task model: the share of the image
the shapes' boxes cover, by regression from the last feature map.

It proves that a new kind goes into a multi-task model through its declarations alone (tests/test_plugin.py): its
network reads the shared backbone's features (``forward_from_features``), its task declares its kind, decoder and
primary metric, and an entry point in the group ``mobivision.tasks`` registers it; no file of the package knows it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mobivision import create_backbone
from mobivision.evaluation.evaluator import Evaluator, image_keys
from mobivision.export import ExportGraph
from mobivision.factory import last_feature_map
from mobivision.inference import Values
from mobivision.tasks.base import PrimaryMetric, TaskModule


class CoverNetwork(nn.Module):
    """Images (or the shared backbone's features) -> ``[B]`` share of the image covered, in [0, 1]."""

    def __init__(self, backbone: nn.Module, tap: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.tap = tap
        self.linear = nn.Linear(backbone.feature_specs[tap].channels, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_from_features(self.backbone(images), images)

    def forward_from_features(self, features: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear(features[self.tap].mean((2, 3)))).squeeze(1)


def covered(batch: dict[str, Any]) -> torch.Tensor:
    """``[B]`` summed box area over image area (boxes in the input's pixels), at most 1."""
    height, width = batch["image"].shape[-2:]
    areas = [((t["boxes"][:, 2:] - t["boxes"][:, :2]).clamp(min=0).prod(1).sum()) for t in batch["target"]]
    return (torch.stack(areas) / (height * width)).clamp(max=1.0).float()


class CoverEvaluator(Evaluator):
    """Mean absolute error of the covered share."""

    lower_is_better = frozenset({"mae"})

    def update(self, predictions: torch.Tensor, batch: dict[str, Any]) -> None:
        truth = covered(batch)
        for key, pair in zip(image_keys(batch), zip(predictions.detach().cpu(), truth, strict=True), strict=True):
            self.add(key, pair)

    def _compute(self, rows: dict[Hashable, Any]) -> dict[str, float]:
        predicted, truth = (torch.stack(column) for column in zip(*rows.values(), strict=True))
        return {"mae": float((predicted - truth).abs().mean())}


class ShapeCoverTask(TaskModule):
    """The covered share of the image (smooth L1); logs ``*/mae``. Reads detection data (its boxes)."""

    kind: ClassVar[str] = "shape_cover"
    decoder: ClassVar[str] = "shape_cover:decode_cover"
    primary_metric: ClassVar[PrimaryMetric] = PrimaryMetric("mae", "min")
    label_kind: ClassVar[str] = "detection"  # refused on data of another kind, like the built-in heads

    def __init__(self, *, class_names: list[str], category_ids: list[int], **common: Any) -> None:
        super().__init__(**common)
        self.save_hyperparameters()
        options = dict(self.backbone_cfg)
        name = options.pop("name")
        self.model = CoverNetwork(create_backbone(name, **options), last_feature_map(name))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"loss": F.smooth_l1_loss(outputs, covered(batch).to(outputs.device), beta=0.1)}

    def make_evaluator(self, dataset: Any, stage: str) -> CoverEvaluator:
        return CoverEvaluator()

    def update_evaluator(self, evaluator: Evaluator, outputs: Sequence[torch.Tensor], batch: dict[str, Any]) -> None:
        evaluator.update(outputs[0], batch)

    def export_graphs(self) -> dict[str, ExportGraph]:
        return {"model": ExportGraph(self.model, ["cover"], {"cover": "[B] share of the image the shapes cover"})}

    def export_metadata(self) -> dict[str, Any]:
        return {}


def decode_cover(outputs: Any, meta: Any, placements: Any, options: Any, side: Any = None) -> list[Values]:
    """The plug-in's decoder (``ShapeCoverTask.decoder``): the covered share, per image."""
    return [Values({"cover": round(c, 4)}, f"covered {c:.0%}", [f"covered {c:.0%}"]) for c in outputs["cover"].tolist()]
