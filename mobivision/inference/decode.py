"""A head's graph outputs (numpy) -> its typed result, from the exported file's metadata.

numpy only, so ONNX Runtime needs no torch. The SSD decoding repeats ``mobivision/detection/postprocess.py``
(torchvision's ``BoxCoder.decode_single``, ``clip_boxes_to_image``, per-class top-k, ``batched_nms``) in numpy:
the ONNX path cannot import torchvision, and ``tests/test_inference.py`` holds the two equal.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mobivision.errors import WeightFileError
from mobivision.inference.preprocess import Placement
from mobivision.inference.results import Attributes, Classes, Detections, Location

BBOX_XFORM_CLIP = math.log(1000.0 / 16)  # torchvision's BoxCoder clamp of dw, dh


@dataclass(frozen=True)
class Options:
    """What a person asks: detections kept from ``score_threshold``, ``top_k`` classes / attributes / cells."""

    score_threshold: float = 0.3
    top_k: int = 5


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, computed in place in one new array (detections: 81 classes x 3234 anchors)."""
    e = x - x.max(axis=-1, keepdims=True)
    np.exp(e, out=e)
    e /= e.sum(axis=-1, keepdims=True)
    return e


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


Decoder = Callable[[dict[str, np.ndarray], dict[str, Any], list[Placement], Options, Any], list[Any]]
"""``decoder(outputs, meta, placements, options, side)`` -> one head result per image: ``outputs`` by the head's own
output names, ``meta`` its metadata entries, ``side`` its side-car data (geo: the cells file), or None."""


@dataclass(frozen=True)
class Reads:
    """What a decoder reads: its head's metadata ``entries`` and graph ``outputs``; ``or_outputs`` an alternative
    graph's outputs, with the ``or_entries`` that graph needs no more (a detector: the graph with NMS inside instead
    of raw SSD outputs and their decoding entries). ``mobivision/inference/metadata.py`` checks files against it."""

    entries: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    or_outputs: tuple[str, ...] = ()
    or_entries: tuple[str, ...] = ()


def reads(**what: tuple[str, ...]) -> Callable[[Decoder], Decoder]:
    """Decorator declaring what a decoder reads (``Reads``), beside the decoder; a plug-in's decoder may use it."""

    def declare(decoder: Decoder) -> Decoder:
        decoder.reads = Reads(**what)  # type: ignore[attr-defined]
        return decoder

    return declare


def decoder_for(meta: dict[str, Any]) -> Decoder:
    """The decoder a head's metadata names (``decoder``: ``"module:function"``, the task's ``decoder``), or for a
    file exported before that entry existed, the built-in one of its kind (``OLD_FILE_DECODERS``)."""
    path = meta.get("decoder") or f"{__name__}:{OLD_FILE_DECODERS.get(meta.get('kind', ''), '')}"
    module, _, function = path.partition(":")
    try:
        return getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as exc:
        raise WeightFileError(
            f"no decoder {path!r} for a head of kind {meta.get('kind')!r} (a plug-in task's package must be installed)"
        ) from exc


# Only for files exported before the ``decoder`` entry (mobivision 0.1.0 early builds): the decoder of each kind
# then. Every export writes the task's ``decoder``, so a new kind is never added here.
OLD_FILE_DECODERS = {
    "classification": "decode_classification",
    "attributes": "decode_attributes",
    "geo": "decode_geo",
    "detection": "decode_detection",
}


@reads(entries=("class_names",), outputs=("logits",))
def decode_classification(
    outputs: dict[str, np.ndarray],
    meta: dict[str, Any],
    placements: list[Placement],
    options: Options,
    side: Any = None,
) -> list[Classes]:
    """The ``top_k`` classes of each image."""
    names = meta["class_names"]
    probabilities = softmax(outputs["logits"].astype(np.float32))
    k = min(options.top_k, probabilities.shape[-1])
    order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :k]
    return [
        Classes([names[i] for i in idx], [float(p[i]) for i in idx])
        for p, idx in zip(probabilities, order, strict=True)
    ]


@reads(entries=("attribute_names", "attribute_thresholds"), outputs=("logits",))
def decode_attributes(
    outputs: dict[str, np.ndarray],
    meta: dict[str, Any],
    placements: list[Placement],
    options: Options,
    side: Any = None,
) -> list[Attributes]:
    """Every attribute's probability and the present ones, at the tuned thresholds."""
    names, thresholds = meta["attribute_names"], np.asarray(meta["attribute_thresholds"], dtype=np.float32)
    results = []
    for probabilities in sigmoid(outputs["logits"].astype(np.float32)):
        present = sorted(np.flatnonzero(probabilities >= thresholds), key=lambda i: -probabilities[i])
        results.append(
            Attributes(
                {n: float(p) for n, p in zip(names, probabilities, strict=True)},
                [names[i] for i in present],
                options.top_k,
            )
        )
    return results


@reads(outputs=("cell_probabilities",))  # and its cells, the side file the runtime reads (side_file)
def decode_geo(
    outputs: dict[str, np.ndarray],
    meta: dict[str, Any],
    placements: list[Placement],
    options: Options,
    side: Any = None,
) -> list[Location]:
    """The most probable cell's mean training location and the ``top_k`` cells (``side``: the cells file)."""
    probabilities, cells = outputs["cell_probabilities"], side
    if cells is None:
        raise WeightFileError("a geo head needs its cells (the <name>.cells.json file beside the model)")
    finest = cells["partitions"][-1]
    k = min(options.top_k, probabilities.shape[-1])
    results = []
    for image in probabilities.astype(np.float32):
        order = np.argsort(-image, kind="stable")[:k]
        top = [
            {"token": finest["tokens"][i], "lat": finest["lat"][i], "lon": finest["lon"][i], "probability": p}
            for i, p in ((i, round(float(image[i]), 5)) for i in order)
        ]
        results.append(Location(float(finest["lat"][order[0]]), float(finest["lon"][order[0]]), top))
    return results


# --- detection ----------------------------------------------------------------------------------------------


@reads(
    entries=("class_names", "category_ids", "postprocess", "score_function", "box_coder_weights"),
    outputs=("cls_logits", "bbox_regression", "anchors"),
    or_outputs=("boxes", "scores", "labels", "num_detections"),
    or_entries=("postprocess", "score_function", "box_coder_weights"),
)
def decode_detection(
    outputs: dict[str, np.ndarray],
    meta: dict[str, Any],
    placements: list[Placement],
    options: Options,
    side: Any = None,
) -> list[Detections]:
    """Boxes in original pixels (raw SSD outputs decoded here, or a graph with NMS inside)."""
    if "boxes" in outputs:  # the graph with NMS inside (model_nms.onnx)
        per_image = [
            (outputs["boxes"][i, :n], outputs["scores"][i, :n], outputs["labels"][i, :n].astype(np.int64))
            for i, n in enumerate(outputs["num_detections"].reshape(-1).astype(int))
        ]
    else:
        per_image = decode_ssd(
            outputs["cls_logits"], outputs["bbox_regression"], outputs["anchors"], meta, options.score_threshold
        )
    results = []
    for (boxes, scores, labels), placement in zip(per_image, placements, strict=True):
        keep = scores >= options.score_threshold
        results.append(
            Detections(
                placement.to_original(boxes[keep].astype(np.float32)),
                scores[keep].astype(np.float32),
                labels[keep] - 1,  # 1-based (0 is the background) -> index into class_names
                list(meta["class_names"]),
                list(meta["category_ids"]),
                options.score_threshold,
            )
        )
    return results


def decode_ssd(
    cls_logits: np.ndarray,
    bbox_regression: np.ndarray,
    anchors: np.ndarray,
    meta: dict[str, Any],
    keep_from: float = 0.0,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image ``(boxes [N, 4] xyxy input pixels, scores [N], labels [N] 1-based)``, best first, as
    ``decode_detections`` makes them, restricted to scores >= ``keep_from``. Candidates below ``keep_from`` are
    dropped before NMS, which keeps the same boxes: in greedy NMS a box is only ever suppressed by a higher-scoring
    one, and the kept boxes at or above ``keep_from`` are a prefix of the full result."""
    options = meta["postprocess"]
    height, width = meta["input_size"]
    cls_logits, bbox_regression = np.asarray(cls_logits, np.float32), np.asarray(bbox_regression, np.float32)
    anchors = np.asarray(anchors, np.float32)
    results = []
    for logits, regression in zip(cls_logits, bbox_regression, strict=True):  # per image: its scores stay in cache
        scores = sigmoid(logits[:, 1:]) if meta["score_function"] == "sigmoid" else softmax(logits)[:, 1:]
        # Per class the topk_candidates best anchors above the thresholds: thresholding first and then keeping
        # each class's k best is the same set as torch's top-k then threshold, and it sorts only the survivors.
        anchors_kept, classes = np.nonzero((scores > options["score_threshold"]) & (scores >= keep_from))
        candidate_scores = scores[anchors_kept, classes]
        order = np.lexsort((-candidate_scores, classes))  # by class, best first within a class
        classes, anchors_kept, candidate_scores = classes[order], anchors_kept[order], candidate_scores[order]
        within = np.arange(len(classes)) - np.searchsorted(classes, classes) < options["topk_candidates"]
        top_scores, top_anchors, labels = candidate_scores[within], anchors_kept[within], classes[within] + 1
        candidates = _decode_boxes(regression[top_anchors], anchors[top_anchors], meta["box_coder_weights"])
        candidates[:, 0::2] = candidates[:, 0::2].clip(0, width)
        candidates[:, 1::2] = candidates[:, 1::2].clip(0, height)
        kept = _batched_nms(candidates, top_scores, labels, options["nms_iou"])[: options["max_detections"]]
        results.append((candidates[kept], top_scores[kept], labels[kept]))
    return results


def _decode_boxes(regression: np.ndarray, anchors: np.ndarray, weights: list[float]) -> np.ndarray:
    """torchvision's ``BoxCoder.decode_single`` (Faster R-CNN coder), float32 as there."""
    wx, wy, ww, wh = (np.float32(w) for w in weights)
    widths, heights = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    ctr_x, ctr_y = anchors[:, 0] + np.float32(0.5) * widths, anchors[:, 1] + np.float32(0.5) * heights
    dx, dy = regression[:, 0] / wx, regression[:, 1] / wy
    dw = np.minimum(regression[:, 2] / ww, np.float32(BBOX_XFORM_CLIP))
    dh = np.minimum(regression[:, 3] / wh, np.float32(BBOX_XFORM_CLIP))
    pred_ctr_x, pred_ctr_y = dx * widths + ctr_x, dy * heights + ctr_y
    half_w, half_h = np.float32(0.5) * (np.exp(dw) * widths), np.float32(0.5) * (np.exp(dh) * heights)
    return np.stack([pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h], axis=1)


def _batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by per-class greedy NMS, by decreasing score (torchvision's ``batched_nms``: classes kept
    apart by offsetting each class's boxes beyond the others')."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = labels.astype(np.float32) * (boxes.max() + np.float32(1))
    shifted = boxes + offsets[:, None]
    order = np.argsort(-scores, kind="stable")
    areas = (shifted[:, 2] - shifted[:, 0]) * (shifted[:, 3] - shifted[:, 1])
    keep = []
    suppressed = np.zeros(len(boxes), dtype=bool)
    for position, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[position + 1 :]
        rest = rest[~suppressed[rest]]
        width = (np.minimum(shifted[i, 2], shifted[rest, 2]) - np.maximum(shifted[i, 0], shifted[rest, 0])).clip(0)
        height = (np.minimum(shifted[i, 3], shifted[rest, 3]) - np.maximum(shifted[i, 1], shifted[rest, 1])).clip(0)
        inter = width * height
        suppressed[rest[inter / (areas[i] + areas[rest] - inter) > iou_threshold]] = True
    return np.asarray(keep, dtype=np.int64)
