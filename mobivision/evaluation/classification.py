"""Classification reports at test time: confusion matrix (picture), per-class accuracy, most-confused
pairs and per-image predictions, as CSV files a user opens in a spreadsheet.

Fine-grained recognition (MobileNets paper Sec. 4.5) is judged by top-1 and mean per-class accuracy; the
confusion matrix and the most-confused pairs show *which* similar classes the model mixes up. The matrix
is torchmetrics' ``multiclass_confusion_matrix``; this module only formats and writes it.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import torch
from torchmetrics.functional.classification import multiclass_confusion_matrix

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
