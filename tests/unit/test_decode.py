"""The numpy decoders (``mobivision/inference/decode.py``) on hand-made outputs, against the arithmetic each one
stands for, in milliseconds (``tests/test_inference.py`` checks them against the task-side code on real models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import batched_nms

from mobivision.errors import WeightFileError
from mobivision.inference.decode import (
    Options,
    decode_attributes,
    decode_classification,
    decode_detection,
    decode_geo,
    decoder_for,
)
from mobivision.inference.preprocess import Placement

IDENTITY = Placement(1.0, 1.0, 0.0, 0.0, (100, 100))


def test_classification_gives_the_top_k_softmax_probabilities_in_order() -> None:
    logits = np.array([[1.0, 3.0, 2.0, 3.0], [0.0, 0.0, 0.0, 5.0]], np.float32)
    meta, placements = {"class_names": list("abcd")}, [IDENTITY] * 2
    results = decode_classification({"logits": logits}, meta, placements, Options(top_k=3))
    expected = torch.softmax(torch.from_numpy(logits), -1).numpy()
    assert results[0].names == ["b", "d", "c"]  # ties keep the class order (a stable sort)
    assert results[0].probabilities == pytest.approx([expected[0, 1], expected[0, 3], expected[0, 2]], rel=1e-6)
    assert results[1].names[0] == "d" and len(results[1].names) == 3
    assert len(decode_classification({"logits": logits}, meta, placements, Options(top_k=9))[0].names) == 4  # all


def test_attributes_are_present_from_their_own_thresholds_most_probable_first() -> None:
    logits = np.array([[2.0, -1.0, 0.5]], np.float32)  # sigmoid 0.881, 0.269, 0.622
    meta = {"attribute_names": ["hat", "glasses", "smile"], "attribute_thresholds": [0.9, 0.2, 0.6]}
    (result,) = decode_attributes({"logits": logits}, meta, [IDENTITY], Options(top_k=5))
    assert result.present == ["smile", "glasses"]  # hat 0.881 < its 0.9; then by probability
    assert result.probabilities["hat"] == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-6)


def test_geo_answers_the_most_probable_cells_mean_location() -> None:
    cells = {"partitions": [{"tokens": ["47", "4c", "89"], "lat": [10.0, 20.0, 30.0], "lon": [1.0, 2.0, 3.0]}]}
    probabilities = np.array([[0.2, 0.7, 0.1]], np.float32)
    (result,) = decode_geo({"cell_probabilities": probabilities}, {}, [IDENTITY], Options(top_k=2), cells)
    assert (result.lat, result.lon) == (20.0, 2.0)
    assert [c["token"] for c in result.cells] == ["4c", "47"] and result.cells[0]["probability"] == 0.7
    with pytest.raises(WeightFileError, match="needs its cells"):
        decode_geo({"cell_probabilities": probabilities}, {}, [IDENTITY], Options(), None)


def test_detections_of_the_nms_graph_are_thresholded_and_mapped_to_original_pixels() -> None:
    outputs = {
        "boxes": np.array([[[10, 10, 20, 20], [0, 0, 50, 40], [5, 5, 6, 6]]], np.float32),
        "scores": np.array([[0.9, 0.5, 0.2]], np.float32),
        "labels": np.array([[2, 1, 1]], np.int64),
        "num_detections": np.array([3]),
    }
    meta = {"class_names": ["circle", "square"], "category_ids": [1, 7]}
    placement = Placement(2.0, 3.0, 0.0, 0.0, (120, 80))  # input 40 x 40 of an 80 x 120 image
    (result,) = decode_detection(outputs, meta, [placement], Options(score_threshold=0.3))
    assert result.labels.tolist() == [1, 0] and result.scores.tolist() == pytest.approx([0.9, 0.5])
    assert result.boxes.tolist() == [[20, 30, 40, 60], [0, 0, 80, 120]]  # scaled, clipped to 80 x 120
    assert [e["category_id"] for e in result.entries("x")] == [7, 1]


def test_raw_ssd_outputs_are_decoded_as_torchvision_decodes_them() -> None:
    rng = np.random.default_rng(0)
    anchors = np.concatenate([rng.uniform(0, 60, (50, 2)), rng.uniform(60, 100, (50, 2))], 1).astype(np.float32)
    regression = rng.normal(0, 0.3, (1, 50, 4)).astype(np.float32)
    logits = rng.normal(0, 2, (1, 50, 3)).astype(np.float32)  # background + 2 classes
    meta = {
        "class_names": ["a", "b"],
        "category_ids": [1, 2],
        "score_function": "softmax",
        "box_coder_weights": [10.0, 10.0, 5.0, 5.0],
        "postprocess": {"score_threshold": 0.2, "topk_candidates": 50, "nms_iou": 0.5, "max_detections": 20},
        "input_size": [100, 100],
    }
    outputs = {"cls_logits": logits, "bbox_regression": regression, "anchors": anchors}
    (result,) = decode_detection(outputs, meta, [IDENTITY], Options(score_threshold=0.2))
    # torchvision's BoxCoder.decode_single, clip, per-class score threshold and batched_nms
    from torchvision.models.detection._utils import BoxCoder

    boxes = BoxCoder((10.0, 10.0, 5.0, 5.0)).decode_single(torch.from_numpy(regression[0]), torch.from_numpy(anchors))
    boxes = boxes.clamp(0, 100)
    scores = torch.softmax(torch.from_numpy(logits[0]), -1)[:, 1:]
    rows, classes = torch.nonzero(scores > 0.2, as_tuple=True)
    kept = batched_nms(boxes[rows], scores[rows, classes], classes, 0.5)[:20]
    assert sorted(result.scores.tolist()) == pytest.approx(sorted(scores[rows, classes][kept].tolist()), rel=1e-5)
    assert len(result.boxes) == len(kept) > 0


def test_a_decoder_is_found_by_its_metadata_or_for_an_old_file_by_its_kind() -> None:
    assert decoder_for({"decoder": "mobivision.inference.decode:decode_geo"}) is decode_geo
    assert decoder_for({"kind": "classification"}) is decode_classification  # exported before the entry existed
    with pytest.raises(WeightFileError, match="no decoder 'nowhere:decode' for a head of kind 'x'"):
        decoder_for({"kind": "x", "decoder": "nowhere:decode"})
