"""SSD training loss: smooth L1 on matched boxes plus classification with hard negative mining.

Sec. 2.2 of the SSD paper and ``ssd_mobilenet_v1_coco``: localisation is smooth L1 (Huber, delta 1)
over positive anchors; classification is softmax cross-entropy over the positives and the hardest
negatives, at most ``neg_pos_ratio`` (3) negatives per positive, chosen per image by their loss. Both
terms are divided by the number of positives in the batch. ``classification="focal"`` replaces mined
cross-entropy by sigmoid focal loss over all anchors (RetinaNet; ``torchvision.ops.sigmoid_focal_loss``).
Written by hand because torchvision keeps its version inside ``SSD.compute_loss``, tied to its model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import sigmoid_focal_loss

from mobivision.errors import ConfigError

CLASSIFICATION_LOSSES = ("cross_entropy", "focal")


def hard_negative_mask(loss: torch.Tensor, positive: torch.Tensor, *, neg_pos_ratio: float, min_negatives: int = 0):
    """Per image, the ``neg_pos_ratio * positives`` (at least ``min_negatives``) negatives of highest loss."""
    num_negatives = (neg_pos_ratio * positive.sum(1, keepdim=True)).long().clamp(min=min_negatives)
    negative_loss = loss.detach().masked_fill(positive, float("-inf"))
    order = negative_loss.argsort(dim=1, descending=True)
    rank = order.argsort(dim=1)
    return (rank < num_negatives) & ~positive


def ssd_loss(
    cls_logits: torch.Tensor,
    bbox_regression: torch.Tensor,
    cls_targets: torch.Tensor,
    box_targets: torch.Tensor,
    *,
    classification: str = "cross_entropy",
    neg_pos_ratio: float = 3.0,
    min_negatives: int = 0,
    focal_alpha: float = 0.25,
    focal_gamma: float = 2.0,
    box_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """``{"loss", "loss_cls", "loss_box", "num_positives"}`` for head outputs and matched targets.

    Args:
        cls_logits: ``[B, A, C]`` logits, class 0 is background.
        bbox_regression: ``[B, A, 4]`` encoded box predictions.
        cls_targets: ``[B, A]`` class per anchor, 0 = background.
        box_targets: ``[B, A, 4]`` encoded targets (read at positive anchors only).
        classification: ``cross_entropy`` (with hard negative mining) or ``focal``.
        neg_pos_ratio: Negatives kept per positive.
        min_negatives: Negatives kept even in images without positives (TF's ``min_negatives_per_image``).
    """
    if classification not in CLASSIFICATION_LOSSES:
        raise ConfigError(f"classification loss must be one of {CLASSIFICATION_LOSSES}, got {classification!r}")
    positive = cls_targets > 0
    num_positives = positive.sum()
    normaliser = num_positives.clamp(min=1).to(cls_logits.dtype)
    loss_box = F.smooth_l1_loss(bbox_regression[positive], box_targets[positive], beta=1.0, reduction="sum")
    if classification == "cross_entropy":
        ce = F.cross_entropy(cls_logits.flatten(0, 1), cls_targets.flatten(), reduction="none").view_as(cls_targets)
        negative = hard_negative_mask(ce, positive, neg_pos_ratio=neg_pos_ratio, min_negatives=min_negatives)
        loss_cls = ce[positive | negative].sum()
    else:  # sigmoid per foreground class; background anchors have all-zero targets
        one_hot = F.one_hot(cls_targets, cls_logits.shape[-1])[..., 1:].to(cls_logits.dtype)
        loss_cls = sigmoid_focal_loss(
            cls_logits[..., 1:], one_hot, alpha=focal_alpha, gamma=focal_gamma, reduction="sum"
        )
    loss_cls = loss_cls / normaliser
    loss_box = box_weight * loss_box / normaliser
    return {"loss": loss_cls + loss_box, "loss_cls": loss_cls, "loss_box": loss_box, "num_positives": num_positives}
