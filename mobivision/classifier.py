"""``ImageClassifier``: a backbone's last feature map under a ``ClassifierHead`` (timm-style API)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mobivision.backbones.features import Backbone
from mobivision.heads.classification import ClassifierHead


class ImageClassifier(nn.Module):
    """Maps ``(N, 3, H, W)`` float images to ``(N, num_classes)`` logits.

    ``pretrained_cfg`` records what inference needs (architecture, width, mean/std, input size, label
    offset, class names); it travels into converted weight files and checkpoints.
    """

    def __init__(self, backbone: Backbone, head: ClassifierHead, *, pretrained_cfg: dict[str, Any]) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.pretrained_cfg = dict(pretrained_cfg)
        (self.feature_name,) = backbone.out_features

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    @property
    def num_features(self) -> int:
        return self.head.num_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, ``(N, C, H/32, W/32)`` at output stride 32."""
        return self.backbone(x)[self.feature_name]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool a feature map and classify it; ``pre_logits`` returns the pooled features."""
        return self.head(x, pre_logits=pre_logits)

    def reset_classifier(self, num_classes: int) -> None:
        """New randomly initialised logits layer (0 removes it)."""
        self.head.reset(num_classes)
        self.pretrained_cfg.pop("classes", None)
        self.pretrained_cfg["num_classes"] = num_classes
        self.pretrained_cfg["label_offset"] = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_from_features(self, features: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
        """``forward`` from the backbone's feature maps (the multi-task model's one backbone pass)."""
        return self.forward_head(features[self.feature_name])
