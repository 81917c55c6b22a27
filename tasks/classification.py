"""Image classification task (the paper's ImageNet setting, Sec. 4.1, and fine-grained fine-tuning)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from mobivision import create_model
from mobivision.evaluation.classification import ClassificationEvaluator
from mobivision.evaluation.evaluator import Evaluator
from mobivision.export.graphs import ExportGraph, SingleOutput
from mobivision.tasks.base import LabelNeeds, PrimaryMetric, TaskModule


class ClassificationTask(TaskModule):
    """Cross-entropy (optional label smoothing) classifier; logs ``*/loss``, ``*/top1``, ``*/top5``,
    ``*/mean_class_acc``.

    Args:
        class_names: Label map, index -> name; kept in the checkpoint.
        label_smoothing: Cross-entropy label smoothing.
        **See ``TaskModule`` for the shared arguments.**
    """

    kind: ClassVar[str] = "classification"
    decoder: ClassVar[str] = "mobivision.inference.decode:decode_classification"
    primary_metric: ClassVar[PrimaryMetric] = PrimaryMetric("top1", "max")
    label_kind: ClassVar[str] = "classification"
    label_needs: ClassVar[LabelNeeds] = LabelNeeds(2, "class", "classes", "a classifier")  # two to tell apart

    def __init__(
        self,
        *,
        class_names: list[str],
        label_smoothing: float = 0.0,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.save_hyperparameters()
        self.class_names = list(class_names)
        self.label_smoothing = label_smoothing
        self.model = create_model(num_classes=len(self.class_names), **self.backbone_cfg)
        self.model.pretrained_cfg["classes"] = self.class_names

    @property
    def chance_level(self) -> float:
        """Top-1 accuracy of guessing uniformly, printed beside the results."""
        return 1.0 / len(self.class_names)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"loss": F.cross_entropy(outputs, batch["target"], label_smoothing=self.label_smoothing)}

    # --- protocol ------------------------------------------------------------------------------------------

    def make_evaluator(self, dataset: Any, stage: str) -> ClassificationEvaluator:
        """Per image its loss and top-k classes; on test also its probabilities (for the report)."""
        return ClassificationEvaluator(
            self.class_names, label_smoothing=self.label_smoothing, keep_probabilities=stage == "test"
        )

    def update_evaluator(self, evaluator: Evaluator, outputs: Sequence[torch.Tensor], batch: dict[str, Any]) -> None:
        evaluator.update(outputs[0], batch)

    def export_graphs(self) -> dict[str, ExportGraph]:
        meaning = "[B, classes] class logits (softmax)"
        return {"model": ExportGraph(SingleOutput(self.model), ["logits"], {"logits": meaning})}
