"""Detector graphs for export: raw head outputs, and boxes after decoding and NMS inside the graph.

``SSDRawOutputs`` turns ``SSDDetector``'s output dict into the tuple ``(cls_logits, bbox_regression, anchors)``;
the anchors are those of the export resolution, a constant of the graph.

``SSDWithNMS`` repeats ``mobivision.detection.postprocess.decode_detections`` for a whole batch with fixed-size
outputs, so a runtime needs nothing after the graph: foreground scores (softmax or sigmoid), boxes decoded with
the detector's box coder and clipped to the image, the ``topk_candidates`` best anchors per image and class,
the score threshold, NMS per image and class, and the ``max_detections`` best per image. Outputs are
``boxes [B, K, 4]`` (xyxy input pixels), ``scores [B, K]``, ``labels [B, K]`` (1-based, int64) and
``num_detections [B]`` (int64): row ``b`` holds ``num_detections[b]`` detections, best first, then zeros.

NMS per (image, class) runs as ONNX ``NonMaxSuppression`` with one "batch" per (image, class) pair: exact
per-class suppression, no coordinate-offset trick. In PyTorch (eager or ``torch.jit``) the same selection runs
through ``torchvision.ops.batched_nms`` with the pair index as the category.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import batched_nms, clip_boxes_to_image

from mobivision.detection.postprocess import class_scores


class SSDRawOutputs(nn.Module):
    """``detector(images)`` as a tuple ``(cls_logits [B, A, C], bbox_regression [B, A, 4], anchors [A, 4])``."""

    output_names = ("cls_logits", "bbox_regression", "anchors")

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        outputs = self.detector(images)
        return outputs["cls_logits"], outputs["bbox_regression"], outputs["anchors"]


class _OnnxNMS(torch.autograd.Function):
    """ONNX ``NonMaxSuppression`` on ``boxes [N, k, 4]``, ``scores [N, 1, k]``: ``[M, 3]`` selected
    ``(row, 0, candidate)``. The forward (used while tracing) computes the same selection in PyTorch."""

    @staticmethod
    def forward(ctx, boxes, scores, max_output, iou_threshold, score_threshold):
        return _select(boxes, scores[:, 0], float(iou_threshold), float(score_threshold))

    @staticmethod
    def symbolic(g, boxes, scores, max_output, iou_threshold, score_threshold):
        return g.op("NonMaxSuppression", boxes, scores, max_output, iou_threshold, score_threshold)


def _select(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, score_threshold: float) -> torch.Tensor:
    """``[M, 3]`` ``(row, 0, candidate)`` kept by NMS within each row of ``boxes [N, k, 4]``, ``scores [N, k]``
    among the candidates scoring above ``score_threshold``."""
    rows, k = scores.shape
    flat_scores = scores.reshape(-1)
    row_index = torch.arange(rows, device=scores.device)[:, None].expand(rows, k).reshape(-1)
    candidates = torch.nonzero(flat_scores > score_threshold).reshape(-1)
    kept = candidates[
        batched_nms(boxes.reshape(-1, 4)[candidates], flat_scores[candidates], row_index[candidates], iou_threshold)
    ]
    row = kept // k
    return torch.stack([row, torch.zeros_like(row), kept - row * k], dim=1)


class SSDWithNMS(nn.Module):
    """Images -> ``(boxes, scores, labels, num_detections)`` after decoding and per-class NMS (module docstring).

    Args:
        detector: An ``SSDDetector`` (its ``box_coder``, ``loss_options.classification`` and
            ``postprocess_options`` decide the decoding).
        image_size: ``(height, width)`` of the inputs, for clipping.
    """

    output_names = ("boxes", "scores", "labels", "num_detections")

    def __init__(self, detector: nn.Module, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.detector = detector
        self.image_size = (int(image_size[0]), int(image_size[1]))
        options = detector.postprocess_options
        self.score_threshold = float(options.score_threshold)
        self.nms_iou = float(options.nms_iou)
        self.topk_candidates = int(options.topk_candidates)
        self.max_detections = int(options.max_detections)
        self.classification = detector.loss_options.classification

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        outputs = self.detector(images)
        cls_logits, regression, anchors = outputs["cls_logits"], outputs["bbox_regression"], outputs["anchors"]
        batch, num_anchors, num_classes = cls_logits.shape
        foreground = num_classes - 1
        scores = class_scores(cls_logits.float(), self.classification)  # [B, A, C-1]
        regression = regression.float()
        boxes = self.detector.box_coder.decode_single(
            regression.reshape(-1, 4), anchors.float()[None].expand_as(regression).reshape(-1, 4)
        )
        boxes = clip_boxes_to_image(boxes, self.image_size).reshape(batch, num_anchors, 4)
        k = min(self.topk_candidates, num_anchors)
        top_scores, top_anchors = scores.transpose(1, 2).topk(k, dim=2)  # [B, C-1, k]
        first = (torch.arange(batch, device=images.device) * num_anchors)[:, None, None]
        candidates = boxes.reshape(-1, 4)[(top_anchors + first).reshape(-1)].reshape(-1, k, 4)  # [B*(C-1), k, 4]
        top_scores = top_scores.reshape(-1, k)
        if torch.onnx.is_in_onnx_export():
            selected = _OnnxNMS.apply(
                candidates,
                top_scores[:, None],
                torch.tensor([k], dtype=torch.int64),
                torch.tensor([self.nms_iou], dtype=torch.float32),
                torch.tensor([self.score_threshold], dtype=torch.float32),
            )
        else:
            selected = _select(candidates, top_scores, self.nms_iou, self.score_threshold)
        flat = selected[:, 0] * k + selected[:, 2]
        kept = torch.zeros(top_scores.numel(), dtype=torch.bool, device=images.device)
        kept[flat] = True
        kept = kept & (top_scores.reshape(-1) > self.score_threshold)
        ranked = torch.where(kept, top_scores.reshape(-1), torch.full_like(top_scores.reshape(-1), -1.0))
        per_image = ranked.reshape(batch, foreground * k)
        best_scores, best = per_image.topk(min(self.max_detections, foreground * k), dim=1)
        valid = best_scores >= 0
        labels = torch.div(best, k, rounding_mode="floor") + 1
        image_first = (torch.arange(batch, device=images.device) * (foreground * k))[:, None]
        best_boxes = candidates.reshape(-1, 4)[(best + image_first).reshape(-1)].reshape(batch, -1, 4)
        return (
            best_boxes * valid[..., None].to(best_boxes.dtype),
            best_scores * valid.to(best_scores.dtype),
            labels * valid.to(labels.dtype),
            valid.sum(1),
        )
