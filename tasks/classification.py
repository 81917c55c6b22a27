"""Image classification task (the paper's ImageNet setting, Sec. 4.1, and fine-grained fine-tuning)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from mobivision import create_model
from mobivision.evaluation.classification import write_classification_report
from tasks.base import TaskModule


def _metrics(num_classes: int, prefix: str) -> MetricCollection:
    metrics = {
        "top1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
        "mean_class_acc": MulticlassAccuracy(num_classes, top_k=1, average="macro"),
    }
    if num_classes > 5:
        metrics["top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro")
    return MetricCollection(metrics, prefix=prefix)


class ClassificationTask(TaskModule):
    """Cross-entropy (optional label smoothing) classifier; logs ``*/loss``, ``*/top1``, ``*/top5``,
    ``*/mean_class_acc``.

    Args:
        class_names: Label map, index -> name; kept in the checkpoint.
        label_smoothing: Cross-entropy label smoothing.
        **See ``TaskModule`` for the shared arguments.**
    """

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
        num_classes = len(self.class_names)
        resolution = self.data_meta.get("resolution", 224)
        self.example_input_array = torch.zeros(1, 3, resolution, resolution)  # model summary: shapes, FLOPs
        self.val_metrics = _metrics(num_classes, "val/")
        self.test_metrics = _metrics(num_classes, "test/")

    @property
    def chance_level(self) -> float:
        """Top-1 accuracy of guessing uniformly, printed beside the results."""
        return 1.0 / len(self.class_names)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def _loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, label_smoothing=self.label_smoothing)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = self._loss(self(batch["image"]), batch["target"])
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["target"]))
        return loss

    def _evaluate(self, batch: dict[str, Any], metrics: MetricCollection, stage: str) -> torch.Tensor:
        logits = self(batch["image"])
        self.log(f"{stage}/loss", self._loss(logits, batch["target"]), batch_size=len(logits), sync_dist=True)
        metrics.update(logits, batch["target"])
        self.log_dict(metrics, batch_size=len(logits), prog_bar=stage == "val")
        return logits

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, self.val_metrics, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        logits = self._evaluate(batch, self.test_metrics, "test")
        self._test_outputs.append((logits.softmax(-1).float().cpu(), batch["target"].cpu(), batch["meta"]["path"]))

    def on_test_epoch_start(self) -> None:
        self._test_outputs: list[tuple[torch.Tensor, torch.Tensor, list[str]]] = []

    def on_test_epoch_end(self) -> None:
        """Keep every test image's probabilities (gathered from all processes, padded repeats removed)."""
        self.last_evaluation = self.gather_per_image(self._test_outputs)
        self._test_outputs = []

    def write_evaluation(self, output_dir: Path, split: str) -> list[Path]:
        """After a test run: confusion matrix picture, per-class accuracy, most-confused pairs, predictions."""
        evaluation = getattr(self, "last_evaluation", None)
        if not evaluation or not evaluation["paths"]:
            return []
        return write_classification_report(
            output_dir,
            split,
            probabilities=evaluation["probabilities"],
            targets=evaluation["targets"],
            images=evaluation["paths"],
            class_names=self.class_names,
        )

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return {"probabilities": self(batch["image"]).softmax(-1), "meta": batch["meta"]}
