"""Classification reports: confusion matrix, per-class accuracy, most-confused pairs, predictions CSV."""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from mobivision.evaluation.classification import (
    confusion_matrix,
    most_confused_pairs,
    per_class_rows,
    write_classification_report,
)

NAMES = ["crow", "raven", "rook"]
TARGETS = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2])
PREDICTED = torch.tensor([0, 1, 1, 1, 1, 0, 1, 2])


def test_confusion_matrix_and_per_class_accuracy() -> None:
    matrix = confusion_matrix(PREDICTED, TARGETS, 3)
    assert matrix.tolist() == [[1, 2, 0], [1, 3, 0], [0, 0, 1]]
    rows = per_class_rows(matrix, NAMES)
    assert [(r["class"], r["support"], r["correct"]) for r in rows] == [("crow", 3, 1), ("raven", 4, 3), ("rook", 1, 1)]
    assert rows[0]["accuracy"] == 1 / 3 and rows[1]["accuracy"] == 0.75


def test_class_without_test_images_has_empty_accuracy() -> None:
    rows = per_class_rows(confusion_matrix(torch.tensor([0]), torch.tensor([0]), 2), ["a", "b"])
    assert rows[1] == {"class": "b", "support": 0, "correct": 0, "accuracy": ""}


def test_most_confused_pairs_are_ordered_by_count() -> None:
    pairs = most_confused_pairs(confusion_matrix(PREDICTED, TARGETS, 3), NAMES)
    assert [(p["true"], p["predicted"], p["count"]) for p in pairs] == [("crow", "raven", 2), ("raven", "crow", 1)]
    assert pairs[0]["share_of_true"] == 2 / 3


def test_report_files(tmp_path: Path) -> None:
    probabilities = torch.nn.functional.one_hot(PREDICTED, 3).float() * 0.8 + 0.2 / 3
    images = [f"img{i}.jpg" for i in range(len(TARGETS))]
    files = write_classification_report(
        tmp_path, "test", probabilities=probabilities, targets=TARGETS, images=images, class_names=NAMES
    )
    assert [f.name for f in files] == [
        "confusion_test.png",
        "per_class_test.csv",
        "confused_pairs_test.csv",
        "predictions_test.csv",
    ]
    assert files[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(files[3]) as f:
        predictions = list(csv.DictReader(f))
    assert len(predictions) == 8 and predictions[1]["true"] == "crow" and predictions[1]["top1"] == "raven"
    assert [int(p["correct"]) for p in predictions] == (PREDICTED == TARGETS).int().tolist()
    assert float(predictions[0]["p1"]) > float(predictions[0]["p2"]) and "top3" in predictions[0]
