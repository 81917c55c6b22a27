"""Detector export graphs: raw outputs as a tuple, and decoding + per-class NMS in the graph equal to
``mobivision.detection.postprocess`` in PyTorch and under ONNX Runtime, for any batch size."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mobivision import create_detector
from mobivision.export import SSDRawOutputs, SSDWithNMS, compare_detections, export_onnx, onnx_session, run_onnx

SIZE = 96


def _detector(classification: str = "cross_entropy", score_threshold: float = 0.3, calibrate=None):
    torch.manual_seed(0)
    detector = create_detector(
        "ssdlite",
        backbone="mobilenet_v1",
        num_classes=4,
        resolution=SIZE,
        width_mult=0.25,
        loss={"classification": classification},
        postprocess={"score_threshold": score_threshold, "max_detections": 20, "topk_candidates": 50},
    )
    return calibrate(detector, torch.randn(8, 3, SIZE, SIZE)) if calibrate else detector.eval()


def _threshold_for(detector, images: torch.Tensor, share: float) -> None:
    """Set the score threshold so that about ``share`` of the (anchor, class) scores of ``images`` pass it."""
    from mobivision.detection.postprocess import class_scores

    with torch.no_grad():
        scores = class_scores(detector(images)["cls_logits"], detector.loss_options.classification)
    threshold = float(scores.flatten().quantile(1 - share))
    detector.postprocess_options = replace(detector.postprocess_options, score_threshold=threshold)


def _padded(detections: list[dict[str, torch.Tensor]], k: int) -> list[np.ndarray]:
    """``decode_detections`` output in the padded layout of ``SSDWithNMS``."""
    boxes, scores, labels = (
        np.zeros((len(detections), k, 4)),
        np.zeros((len(detections), k)),
        np.zeros((len(detections), k), dtype=np.int64),
    )
    for i, d in enumerate(detections):
        n = len(d["scores"])
        boxes[i, :n], scores[i, :n], labels[i, :n] = d["boxes"], d["scores"], d["labels"]
    return [boxes, scores, labels, np.array([len(d["scores"]) for d in detections])]


@pytest.mark.parametrize("classification", ["cross_entropy", "focal"])
def test_nms_graph_in_pytorch_equals_decode_detections(classification: str, calibrate_bn) -> None:
    detector = _detector(classification, calibrate=calibrate_bn)
    images = torch.randn(3, 3, SIZE, SIZE) * 2
    _threshold_for(detector, images, 0.02)
    with torch.no_grad():
        expected = detector.predict(detector(images), (SIZE, SIZE))
        boxes, scores, labels, count = SSDWithNMS(detector, (SIZE, SIZE))(images)
    assert boxes.shape == (3, 20, 4) and scores.shape == (3, 20) and labels.dtype == torch.int64
    assert [len(d["scores"]) for d in expected] == count.tolist()
    assert int(count.sum()) > 0, "the test needs detections"
    for i, d in enumerate(expected):
        n = len(d["scores"])
        assert torch.equal(labels[i, :n], d["labels"]) and torch.allclose(scores[i, :n], d["scores"])
        assert torch.allclose(boxes[i, :n], d["boxes"])
        assert not labels[i, n:].any() and not scores[i, n:].any() and not boxes[i, n:].any()


def test_nms_graph_under_onnx_runtime_equals_pytorch_postprocessing(tmp_path: Path, calibrate_bn) -> None:
    detector = _detector(calibrate=calibrate_bn)
    path = export_onnx(
        SSDWithNMS(detector, (SIZE, SIZE)),
        tmp_path / "nms.onnx",
        input_size=(SIZE, SIZE),
        output_names=list(SSDWithNMS.output_names),
    )
    session = onnx_session(path, threads=1)
    assert [o.name for o in session.get_outputs()] == ["boxes", "scores", "labels", "num_detections"]
    ops = {node.op_type for node in __import__("onnx").load(str(path)).graph.node}
    assert "NonMaxSuppression" in ops
    for batch in (1, 4):
        images = torch.randn(batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(batch)) * 2
        with torch.no_grad():
            expected = _padded(detector.predict(detector(images), (SIZE, SIZE)), 20)
        got = run_onnx(session, images)
        assert got[0].shape == (batch, 20, 4) and got[3].shape == (batch,)
        diffs = compare_detections(expected, got)
        assert all(d.ok for d in diffs), diffs
        assert int(got[3].sum()) > 0


def test_nms_graph_keeps_nothing_above_a_score_no_class_reaches(tmp_path: Path, calibrate_bn) -> None:
    detector = _detector(score_threshold=0.999, calibrate=calibrate_bn)
    path = export_onnx(
        SSDWithNMS(detector, (SIZE, SIZE)),
        tmp_path / "n.onnx",
        input_size=(SIZE, SIZE),
        output_names=["b", "s", "l", "n"],
    )
    boxes, scores, labels, count = run_onnx(onnx_session(path), np.zeros((2, 3, SIZE, SIZE), np.float32))
    assert count.tolist() == [0, 0] and not boxes.any() and not scores.any() and not labels.any()


def test_raw_outputs_are_the_detectors_dict_as_a_tuple() -> None:
    detector = _detector()
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        expected = detector(images)
        got = SSDRawOutputs(detector)(images)
    for name, tensor in zip(SSDRawOutputs.output_names, got, strict=True):
        assert torch.equal(tensor, expected[name])
