"""Parity reports: tolerances relative to the output's scale, detections compared as sets, clear failures."""

from __future__ import annotations

import numpy as np
import pytest

from mobivision.errors import ExportError
from mobivision.export import FP32_ATOL, FP32_RTOL, compare_detections, compare_outputs, verify_parity


def test_tolerance_scales_with_the_outputs_magnitude() -> None:
    reference = [np.array([[100.0, -50.0]]), np.array([[0.001, 0.0]])]
    (big, small) = compare_outputs(reference, [reference[0] + 0.05, reference[1] + 0.05], ["big", "small"])
    assert big.tolerance == pytest.approx(FP32_ATOL + FP32_RTOL * 100) and big.ok
    assert not small.ok and small.max_abs_diff == pytest.approx(0.05)


def test_shape_and_count_mismatches_fail() -> None:
    (diff,) = compare_outputs([np.zeros((2, 3))], [np.zeros((2, 4))], ["logits"])
    assert not diff.ok and "shape" in diff.note
    (diff,) = compare_outputs([np.zeros(2), np.zeros(2)], [np.zeros(2)], ["a", "b"])
    assert not diff.ok and "1 outputs, expected 2" in diff.note


def _detections(rows: list[list[tuple[float, int, list[float]]]], k: int = 4) -> list[np.ndarray]:
    boxes, scores, labels = np.zeros((len(rows), k, 4)), np.zeros((len(rows), k)), np.zeros((len(rows), k), np.int64)
    for i, row in enumerate(rows):
        for j, (score, label, box) in enumerate(row):
            boxes[i, j], scores[i, j], labels[i, j] = box, score, label
    return [boxes, scores, labels, np.array([len(r) for r in rows])]


def test_detections_match_as_sets_when_near_equal_scores_swap_places() -> None:
    a = (0.90000, 1, [0, 0, 10, 10])
    b = (0.89999, 2, [5, 5, 20, 20])
    c = (0.5, 1, [30, 30, 40, 40])
    diffs = compare_detections(_detections([[a, b], [c]]), _detections([[b, a], [c]]))
    assert all(d.ok for d in diffs)
    assert diffs[3].note == "3 detections (PyTorch 3) on 2 images"


def test_detections_differing_in_count_label_or_box_fail() -> None:
    a, b = (0.9, 1, [0, 0, 10, 10]), (0.8, 2, [5, 5, 20, 20])
    count = compare_detections(_detections([[a, b]]), _detections([[a]]))
    assert not count[3].ok and not count[2].ok
    label = compare_detections(_detections([[a]]), _detections([[(0.9, 3, [0, 0, 10, 10])]]))
    assert not label[2].ok
    box = compare_detections(_detections([[a]]), _detections([[(0.9, 1, [0, 0, 10, 11])]]))
    assert not box[0].ok and box[0].max_abs_diff == pytest.approx(1.0)


def test_verify_parity_keeps_the_worst_difference_and_raises_with_the_report() -> None:
    def reference(x: np.ndarray) -> list[np.ndarray]:
        return [x.sum(1)]

    def exported(x: np.ndarray) -> list[np.ndarray]:
        return [x.sum(1) + (0.5 if x.shape[0] == 2 else 0.0)]

    inputs = [("random", np.ones((3, 4), np.float32)), ("val images", np.ones((2, 4), np.float32))]
    report = verify_parity(reference, exported, inputs, ["logits"], format="onnx")
    assert report.inputs == ["random [3, 4]", "val images [2, 4]"]
    assert not report.ok and report.max_abs_diff == pytest.approx(0.5)
    assert report.summary().startswith("FAILED: logits 0.5")
    with pytest.raises(ExportError, match=r"(?s)onnx output differs from PyTorch beyond tolerance\n.*logits"):
        report.raise_if_failed()
    good = verify_parity(reference, reference, inputs, ["logits"], format="onnx")
    assert good.ok and good.raise_if_failed() is good and good.summary().startswith("max diff 0")
