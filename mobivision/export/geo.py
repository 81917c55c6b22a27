"""Geo-localization graph for export: the logits of every partitioning plus the combined cell probabilities."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mobivision.heads.geo import hierarchical_probabilities


class GeoOutputs(nn.Module):
    """``(logits_<partitioning> ..., cell_probabilities)``: the raw logits of each partitioning (coarsest first)
    and the probabilities over the finest partitioning's cells, multiplied by their coarser parents' when
    ``hierarchical`` (as ``GeoTask.cell_probabilities``), renormalised.

    Args:
        locator: Images -> list of logits per partitioning (``GeoLocator``).
        parents: For each coarser partitioning, the ``(C_finest,)`` index of the coarse cell holding each finest
            cell (-1: dropped).
        hierarchical: Combine the partitionings (else the finest softmax alone).
    """

    def __init__(self, locator: nn.Module, parents: Sequence[torch.Tensor], *, hierarchical: bool = True) -> None:
        super().__init__()
        self.locator = locator
        self.hierarchical = hierarchical
        for i, parent in enumerate(parents):
            self.register_buffer(f"parents_{i}", parent.clone().long(), persistent=False)
        self.num_parents = len(parents)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = list(self.locator(images))
        probabilities = [x.float().softmax(-1) for x in logits]
        if not self.hierarchical or len(probabilities) == 1:
            return (*logits, probabilities[-1])
        parents = [getattr(self, f"parents_{i}") for i in range(self.num_parents)]
        combined = hierarchical_probabilities(probabilities, parents)
        return (*logits, combined / combined.sum(-1, keepdim=True))
