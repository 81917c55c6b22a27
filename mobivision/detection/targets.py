"""Anchor matching and box coding: the training targets of SSD (SSD paper Sec. 2.2, "Matching strategy").

Each ground-truth box is matched to every anchor it overlaps with IoU >= 0.5, and additionally forced
onto its single best anchor so that no object goes unmatched (TF Object Detection API's
``force_match_for_each_row``; torchvision's ``SSDMatcher``). Matched boxes are encoded relative to their
anchor with the Faster R-CNN coder and weights (10, 10, 5, 5) (TF's ``faster_rcnn_box_coder``
``scale_factors``). Both pieces are torchvision's own; this module only batches them and handles images
without boxes, for which ``SSDMatcher`` raises.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.models.detection._utils import BoxCoder, SSDMatcher
from torchvision.ops import box_iou

BOX_CODER_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def make_box_coder(weights: Sequence[float] = BOX_CODER_WEIGHTS) -> BoxCoder:
    """torchvision's box coder with the SSD weights (x, y, w, h)."""
    return BoxCoder(weights=tuple(float(w) for w in weights))


def match_anchors(gt_boxes: torch.Tensor, anchors: torch.Tensor, *, iou_threshold: float = 0.5) -> torch.Tensor:
    """Index of the matched ground-truth box per anchor, or -1 for background.

    Args:
        gt_boxes: ``[G, 4]`` xyxy boxes of one image (G may be 0).
        anchors: ``[A, 4]`` xyxy anchors.
        iou_threshold: Minimum IoU of a match (each box also gets its best anchor).
    """
    if gt_boxes.numel() == 0:
        return torch.full((anchors.shape[0],), -1, dtype=torch.int64, device=anchors.device)
    matches = SSDMatcher(iou_threshold)(box_iou(gt_boxes, anchors))
    return matches.clamp(min=-1)  # the Matcher's -2 ("between thresholds") cannot occur with one threshold


def build_targets(
    targets: list[dict[str, torch.Tensor]],
    anchors: torch.Tensor,
    *,
    box_coder: BoxCoder,
    iou_threshold: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class targets ``[B, A]`` (0 = background) and encoded box targets ``[B, A, 4]`` for a batch.

    Box targets of background anchors are zeros; the loss only reads those of matched anchors.
    """
    labels, boxes = [], []
    for target in targets:
        gt_boxes, gt_labels = target["boxes"].to(anchors), target["labels"].to(anchors.device)
        matched = match_anchors(gt_boxes, anchors, iou_threshold=iou_threshold)
        positive = matched >= 0
        cls = torch.zeros(anchors.shape[0], dtype=torch.int64, device=anchors.device)
        reg = torch.zeros_like(anchors)
        if positive.any():
            cls[positive] = gt_labels[matched[positive]]
            reg[positive] = box_coder.encode_single(gt_boxes[matched[positive]], anchors[positive])
        labels.append(cls)
        boxes.append(reg)
    return torch.stack(labels), torch.stack(boxes)
