"""Image-classification head: global average pooling, optional hidden layer, dropout, linear logits.

MobileNetV1 (paper Table 1, "Avg Pool / FC / Softmax") uses no hidden layer; MobileNetV3 adds a
1280/1024-wide hidden layer with hard-swish (MobileNetV3 paper, Sec. 5.3).
"""

from __future__ import annotations

import torch
from torch import nn


class ClassifierHead(nn.Module):
    """Pool -> [pre_fc -> act] -> dropout -> fc.

    Args:
        in_channels: Channels of the feature map it pools.
        num_classes: Number of logits; 0 gives an identity ``fc`` (features only).
        hidden_channels: Width of the optional hidden layer (``pre_fc``).
        dropout: Dropout probability before ``fc``.
    """

    def __init__(
        self, in_channels: int, *, num_classes: int, hidden_channels: int | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        if hidden_channels:
            self.pre_fc: nn.Module = nn.Linear(in_channels, hidden_channels)
            self.act: nn.Module = nn.Hardswish(inplace=True)
            self.num_features = hidden_channels
        else:
            self.pre_fc = nn.Identity()
            self.act = nn.Identity()
            self.num_features = in_channels
        self.dropout = nn.Dropout(p=dropout)
        self.reset(num_classes)

    def reset(self, num_classes: int) -> None:
        """Replace ``fc`` with a freshly initialised layer of ``num_classes`` outputs."""
        self.num_classes = num_classes
        self.fc: nn.Module = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if isinstance(self.fc, nn.Linear):
            nn.init.normal_(self.fc.weight, std=0.01)
            nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor, *, pre_logits: bool = False) -> torch.Tensor:
        x = self.act(self.pre_fc(self.pool(x).flatten(1)))
        if pre_logits:
            return x
        return self.fc(self.dropout(x))
