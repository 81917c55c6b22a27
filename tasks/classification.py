"""Image classification task (the paper's ImageNet setting, Sec. 4.1, and fine-grained fine-tuning)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_accuracy

from mobivision import create_model
from mobivision.evaluation.classification import write_classification_report
from tasks.base import TaskModule

TOP_K = 5  # top-5 accuracy is reported for more than 5 classes


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
        resolution = self.data_meta.get("resolution", 224)
        self.example_input_array = torch.zeros(1, 3, resolution, resolution)  # model summary: shapes, FLOPs
        self._outputs: list[tuple[torch.Tensor, torch.Tensor, list[str]]] = []

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

    def _evaluate(self, batch: dict[str, Any], stage: str) -> None:
        """Keep, per image, its loss and top-k classes (+ probabilities on test), scored at the epoch's end."""
        logits = self(batch["image"]).float()
        target = batch["target"]
        losses = F.cross_entropy(logits, target, label_smoothing=self.label_smoothing, reduction="none")
        top = logits.topk(min(TOP_K, logits.shape[-1]), dim=-1).indices.float()
        columns = [losses[:, None], top] + ([logits.softmax(-1)] if stage == "test" else [])
        self._outputs.append((torch.cat(columns, dim=1).cpu(), target.cpu(), self._image_keys(batch)))

    def _image_keys(self, batch: dict[str, Any]) -> list[str]:
        """The images' paths; batches without them (plain tensors) get keys unique to each sample."""
        if "meta" in batch:
            return list(batch["meta"]["path"])
        start = sum(len(keys) for *_, keys in self._outputs)
        return [f"<rank {self.global_rank} sample {start + i}>" for i in range(len(batch["target"]))]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self._outputs: list[tuple[torch.Tensor, torch.Tensor, list[str]]] = []

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        self._score("val")

    def on_test_epoch_end(self) -> None:
        """Also keep every test image's probabilities for ``write_evaluation``."""
        self._score("test")

    def _score(self, stage: str) -> None:
        """Metrics over every image exactly once: under DDP, DistributedSampler pads the last shard by repeating
        images, so the outputs of all processes are gathered and merged per image path before scoring."""
        evaluation = self.gather_per_image(self._outputs)
        self._outputs = []
        if not evaluation["paths"]:
            return
        rows, targets = evaluation["probabilities"], evaluation["targets"]
        k = min(TOP_K, len(self.class_names))
        top = rows[:, 1 : 1 + k].long()
        predicted = top[:, 0]
        num_classes = len(self.class_names)
        metrics = {
            f"{stage}/loss": rows[:, 0].mean(),
            f"{stage}/top1": multiclass_accuracy(predicted, targets, num_classes, average="micro"),
            f"{stage}/mean_class_acc": multiclass_accuracy(predicted, targets, num_classes, average="macro"),
        }
        if num_classes > TOP_K:
            metrics[f"{stage}/top5"] = (top == targets[:, None]).any(dim=1).float().mean()
        # Every process computed the same values from the same gathered outputs.
        self.log_dict(metrics, prog_bar=stage == "val", sync_dist=True)
        if stage == "test":
            evaluation["probabilities"] = rows[:, 1 + k :]
            self.last_evaluation = evaluation

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
