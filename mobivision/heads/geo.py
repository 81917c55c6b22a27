"""Geo-localization head (PlaNet): one classifier over S2 cells per partitioning, on the pooled features.

PlaNet (Weyand et al., 2016) classifies a photo into one of the cells of an adaptive S2 partition of the globe
and predicts the cell's mean training location; the MobileNets paper re-trained it on MobileNet (Sec. 4.4).
GeoEstimation (Müller-Budack et al., 2018) trains several partitionings (coarse / middle / fine) at once and
multiplies a fine cell's probability by those of the coarser cells containing it ("hierarchical"
prediction); ``hierarchical_probabilities`` does that.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mobivision.classifier import ImageClassifier
from mobivision.errors import ConfigError


class GeoHead(nn.Module):
    """Dropout, then one linear layer per partitioning (``num_cells[i]`` logits each)."""

    def __init__(self, in_features: int, num_cells: Sequence[int], *, dropout: float = 0.0) -> None:
        super().__init__()
        if not num_cells or min(num_cells) < 1:
            raise ConfigError(f"every partitioning needs at least one cell, got {list(num_cells)}")
        self.dropout = nn.Dropout(p=dropout)
        self.classifiers = nn.ModuleList(nn.Linear(in_features, n) for n in num_cells)
        for layer in self.classifiers:
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: torch.Tensor) -> list[torch.Tensor]:
        features = self.dropout(features)
        return [layer(features) for layer in self.classifiers]


class GeoLocator(nn.Module):
    """A classifier backbone (its logits layer removed) under a ``GeoHead``: images -> cell logits per
    partitioning. ``backbone`` is the classifier's backbone (for parameter groups and freezing)."""

    def __init__(self, classifier: ImageClassifier, num_cells: Sequence[int], *, dropout: float = 0.0) -> None:
        super().__init__()
        classifier.reset_classifier(0)
        self.backbone = classifier.backbone
        self.pool = classifier.head  # global pooling (+ the architecture's hidden layer), no logits
        self.feature_name = classifier.feature_name
        self.pretrained_cfg = classifier.pretrained_cfg
        self.head = GeoHead(classifier.num_features, num_cells, dropout=dropout)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.forward_from_features(self.backbone(images), images)

    def forward_from_features(self, features: dict[str, torch.Tensor], images: torch.Tensor) -> list[torch.Tensor]:
        """``forward`` from the backbone's feature maps (the multi-task model's one backbone pass)."""
        return self.head(self.pool(features[self.feature_name], pre_logits=True))


def hierarchical_probabilities(probabilities: Sequence[torch.Tensor], parents: Sequence[torch.Tensor]) -> torch.Tensor:
    """Probabilities over the finest partitioning's cells, each multiplied by those of its coarser parents.

    Args:
        probabilities: ``(N, C_i)`` softmax outputs per partitioning, coarsest first, finest last.
        parents: For each coarser partitioning ``i`` (all but the last), a ``(C_last,)`` long tensor: the index
            of the cell of partitioning ``i`` that contains each finest cell, or -1 where that coarser cell was
            dropped (factor 1: no evidence either way).
    """
    if len(parents) != len(probabilities) - 1:
        raise ValueError(f"need one parent map per coarser partitioning: {len(parents)} for {len(probabilities)}")
    combined = probabilities[-1]
    for coarse, parent in zip(probabilities[:-1], parents, strict=True):
        factor = coarse[:, parent.clamp(min=0)]
        combined = combined * torch.where(parent >= 0, factor, torch.ones_like(factor))
    return combined
