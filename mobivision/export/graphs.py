"""``ExportGraph``: a network to deploy (images -> named outputs), what each output means and how to compare it.

Tasks declare their graphs (``TaskModule.export_graphs``); the exporter writes every format of a graph and checks
it with the graph's ``compare`` against the PyTorch module.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mobivision.export.parity import compare_outputs


@dataclass
class ExportGraph:
    """``module`` maps ``[B, 3, H, W]`` images to a tuple in ``output_names`` order; ``meanings`` go into the
    exported file's metadata; ``compare`` checks an exported file's outputs against the module's."""

    module: nn.Module
    output_names: list[str]
    meanings: dict[str, str]
    compare: Callable[..., Any] = compare_outputs


class SingleOutput(nn.Module):
    """A network with one tensor output (logits) as an export graph module."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)
