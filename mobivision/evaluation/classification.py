"""Classification evaluation: ``ClassificationEvaluator`` (loss, top-1/top-5, mean class accuracy) and the reports
at test time: confusion matrix (picture), per-class accuracy, most-confused pairs and per-image predictions, as
CSV files a user opens in a spreadsheet.

Fine-grained recognition (MobileNets paper Sec. 4.5) is judged by top-1 and mean per-class accuracy; the
confusion matrix and the most-confused pairs show *which* similar classes the model mixes up. The matrix
is torchmetrics' ``multiclass_confusion_matrix``; this module only formats and writes it.
"""

from __future__ import annotations

import csv
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_accuracy, multiclass_confusion_matrix

from mobivision.evaluation.evaluator import Evaluator, image_keys

TOP_K = 5  # top-5 accuracy is reported for more than 5 classes
MAX_LABELLED_CLASSES = 40  # beyond this, tick labels would be unreadable; the CSVs carry the names


def confusion_matrix(predictions: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[true, predicted]`` counts."""
    return multiclass_confusion_matrix(predictions, targets, num_classes)


def per_class_rows(matrix: torch.Tensor, class_names: Sequence[str]) -> list[dict[str, object]]:
    """Support, correct and accuracy of each class (accuracy empty for a class without test images)."""
    rows = []
    for index, name in enumerate(class_names):
        support, correct = int(matrix[index].sum()), int(matrix[index, index])
        rows.append(
            {"class": name, "support": support, "correct": correct, "accuracy": correct / support if support else ""}
        )
    return rows


def most_confused_pairs(
    matrix: torch.Tensor, class_names: Sequence[str], *, limit: int = 20
) -> list[dict[str, object]]:
    """Off-diagonal cells by count (ties by name): how often class ``true`` was taken for ``predicted``."""
    off_diagonal = matrix.clone()
    off_diagonal.fill_diagonal_(0)
    cells = [(int(off_diagonal[t, p]), t, p) for t, p in off_diagonal.nonzero().tolist()]
    cells.sort(key=lambda cell: (-cell[0], class_names[cell[1]], class_names[cell[2]]))
    return [
        {
            "true": class_names[t],
            "predicted": class_names[p],
            "count": count,
            "share_of_true": count / int(matrix[t].sum()),
        }
        for count, t, p in cells[:limit]
    ]


def write_csv(path: Path, rows: Sequence[dict[str, object]], fieldnames: Sequence[str]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fieldnames))
        writer.writeheader()
        writer.writerows(rows)
    return path


def plot_confusion_matrix(matrix: torch.Tensor, class_names: Sequence[str], path: Path) -> Path:
    """Row-normalised confusion matrix as a PNG (class names on the axes for up to 40 classes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = matrix.double() / matrix.sum(1, keepdim=True).clamp(min=1)
    labelled = len(class_names) <= MAX_LABELLED_CLASSES
    side = max(5.0, 0.25 * len(class_names)) if labelled else 8.0
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    image = ax.imshow(rates.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")
    if labelled:
        ticks = range(len(class_names))
        ax.set_xticks(ticks, class_names, rotation=90, fontsize=7)
        ax.set_yticks(ticks, class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix ({int(matrix.sum())} images)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_classification_report(
    output_dir: Path,
    split: str,
    *,
    probabilities: torch.Tensor,
    targets: torch.Tensor,
    images: Sequence[str],
    class_names: Sequence[str],
    top_k: int = 5,
) -> list[Path]:
    """Write ``confusion_<split>.png``, ``per_class_<split>.csv``, ``confused_pairs_<split>.csv`` and
    ``predictions_<split>.csv`` (image, true class, top-k classes with probabilities) into ``output_dir``."""
    output_dir = Path(output_dir)
    matrix = confusion_matrix(probabilities.argmax(1), targets, len(class_names))
    k = min(top_k, len(class_names))
    top_probabilities, top_classes = probabilities.topk(k, dim=1)
    predictions = [
        {
            "image": image,
            "true": class_names[target],
            "correct": int(classes[0] == target),
            **{f"top{i + 1}": class_names[c] for i, c in enumerate(classes)},
            **{f"p{i + 1}": round(p, 5) for i, p in enumerate(probs)},
        }
        for image, target, classes, probs in zip(
            images, targets.tolist(), top_classes.tolist(), top_probabilities.tolist(), strict=True
        )
    ]
    prediction_fields = ["image", "true", "correct"] + [f"{n}{i + 1}" for i in range(k) for n in ("top", "p")]
    return [
        plot_confusion_matrix(matrix, class_names, output_dir / f"confusion_{split}.png"),
        write_csv(
            output_dir / f"per_class_{split}.csv",
            per_class_rows(matrix, class_names),
            ["class", "support", "correct", "accuracy"],
        ),
        write_csv(
            output_dir / f"confused_pairs_{split}.csv",
            most_confused_pairs(matrix, class_names),
            ["true", "predicted", "count", "share_of_true"],
        ),
        write_csv(output_dir / f"predictions_{split}.csv", predictions, prediction_fields),
    ]


class ClassificationEvaluator(Evaluator):
    """Loss, top-1, top-5 (more than 5 classes) and mean class accuracy of a classifier's logits.

    Ground truth: each batch's ``target`` (class indices). With ``keep_probabilities`` every image's class
    probabilities are kept for ``write_report`` (test); otherwise only its loss and top-k classes.
    """

    lower_is_better = frozenset({"loss"})

    def __init__(self, class_names: Sequence[str], *, label_smoothing: float = 0.0, keep_probabilities: bool) -> None:
        super().__init__()
        self.class_names = list(class_names)
        self.label_smoothing = label_smoothing
        self.keep_probabilities = keep_probabilities
        self.top_k = min(TOP_K, len(self.class_names))

    def update(self, predictions: torch.Tensor, batch: dict[str, Any]) -> None:
        """``predictions``: ``[B, classes]`` logits."""
        logits, targets = predictions.detach().float().cpu(), batch["target"].cpu()
        losses = F.cross_entropy(logits, targets, label_smoothing=self.label_smoothing, reduction="none")
        top = logits.topk(self.top_k, dim=-1).indices
        probabilities = logits.softmax(-1) if self.keep_probabilities else [None] * len(logits)
        keys = image_keys(batch) if "meta" in batch else [f"<sample {len(self._rows) + i}>" for i in range(len(logits))]
        for key, row in zip(keys, zip(losses, top, targets, probabilities, strict=True), strict=True):
            self.add(key, row)

    def _compute(self, rows: dict[Hashable, Any]) -> dict[str, float]:
        losses, top, targets, _ = (list(column) for column in zip(*rows.values(), strict=True))
        top, targets = torch.stack(top), torch.stack(targets)
        num_classes = len(self.class_names)
        metrics = {
            "loss": float(torch.stack(losses).mean()),
            "top1": float(multiclass_accuracy(top[:, 0], targets, num_classes, average="micro")),
            "mean_class_acc": float(multiclass_accuracy(top[:, 0], targets, num_classes, average="macro")),
        }
        if num_classes > TOP_K:
            metrics["top5"] = float((top == targets[:, None]).any(dim=1).float().mean())
        return metrics

    def write_report(self, output_dir: Path, split: str) -> list[Path]:
        """Confusion matrix, per-class accuracy, most-confused pairs and every image's top-k (needs probabilities)."""
        if not self._rows or not self.keep_probabilities:
            return []
        _, _, targets, probabilities = zip(*self._rows.values(), strict=True)
        return write_classification_report(
            output_dir,
            split,
            probabilities=torch.stack(probabilities),
            targets=torch.stack(targets),
            images=[str(k) for k in self._rows],
            class_names=self.class_names,
        )
