"""SSD extra feature layers and box predictors, plain or SSDLite (depthwise-separable).

SSD (Liu et al. 2016) on MobileNet as in the TF Object Detection API's ``ssd_mobilenet_v1_coco`` (the
MobileNets paper, Sec. 4.7): after the backbone taps come four extra layers, each a 1x1 convolution to
half depth and a 3x3 stride-2 convolution, of depths 512, 256, 256, 128 scaled by the width multiplier
(at least ``min_depth`` 16); boxes and classes are predicted by a 1x1 convolution per level. SSDLite
(MobileNetV2 paper, Sec. 6.3) makes the extra layers' 3x3 convolution depthwise (plus a 1x1 to full
depth) and the predictors a 3x3 depthwise convolution followed by a 1x1 convolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mobivision.layers import ConvBNAct

PREDICTOR_INIT_STD = 0.03  # TF's truncated_normal_initializer(stddev=0.03); torchvision's SSDLite _normal_init


def scaled_depth(depth: int, width_mult: float, min_depth: int) -> int:
    """TF's ``depth_fn``: ``max(int(depth * width_mult), min_depth)``."""
    return max(int(depth * width_mult), min_depth)


class SSDExtraLayers(nn.ModuleList):
    """Stride-2 blocks appended after the backbone's last tap; ``forward`` returns every block's output.

    Args:
        in_channels: Channels of the backbone's last tap.
        depths: Output depth of each block before width scaling.
        depthwise: SSDLite blocks (1x1 -> 3x3 depthwise stride 2 -> 1x1) instead of SSD's (1x1 -> 3x3).
        width_mult / min_depth: Depth scaling as TF's feature map generators do it.
        bn_eps / bn_momentum: The backbone's BatchNorm settings.
        padding: ``symmetric`` or ``tf`` (the backbone's padding).
    """

    def __init__(
        self,
        in_channels: int,
        depths: Sequence[int],
        *,
        depthwise: bool,
        width_mult: float = 1.0,
        min_depth: int = 16,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        padding: str = "symmetric",
    ) -> None:
        bn = {"bn_eps": bn_eps, "bn_momentum": bn_momentum, "padding": padding}
        blocks = []
        for depth in depths:
            out = scaled_depth(depth, width_mult, min_depth)
            mid = scaled_depth(depth // 2, width_mult, min_depth)
            if depthwise:
                block = nn.Sequential(
                    ConvBNAct(in_channels, mid, kernel_size=1, **bn),
                    ConvBNAct(mid, mid, kernel_size=3, stride=2, groups=mid, **bn),
                    ConvBNAct(mid, out, kernel_size=1, **bn),
                )
            else:
                block = nn.Sequential(
                    ConvBNAct(in_channels, mid, kernel_size=1, **bn),
                    ConvBNAct(mid, out, kernel_size=3, stride=2, **bn),
                )
            blocks.append(block)
            in_channels = out
        super().__init__(blocks)
        self.out_channels = [scaled_depth(d, width_mult, min_depth) for d in depths]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for block in self:
            x = block(x)
            outputs.append(x)
        return outputs


class SSDPredictor(nn.Module):
    """One output convolution per level, flattened to ``[B, sum(H*W*A), values_per_anchor]``.

    Args:
        in_channels: Channels of each level.
        num_anchors: Anchors per location of each level.
        values_per_anchor: Classes (incl. background) or 4 box offsets.
        kernel_size: 1 (TF's ssd_mobilenet_v1) or 3.
        depthwise: SSDLite predictor (depthwise k x k + BN + ReLU6, then 1x1).
        bias_init: Initial bias of the output convolutions (focal loss uses the prior's log-odds).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        num_anchors: Sequence[int],
        values_per_anchor: int,
        *,
        kernel_size: int,
        depthwise: bool,
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.values_per_anchor = values_per_anchor
        layers = []
        for channels, anchors in zip(in_channels, num_anchors, strict=True):
            out = nn.Conv2d(channels, anchors * values_per_anchor, 1 if depthwise else kernel_size)
            if not depthwise:
                out.padding = (kernel_size // 2, kernel_size // 2)
            nn.init.constant_(out.bias, bias_init)
            if depthwise:
                dw = ConvBNAct(
                    channels, channels, kernel_size=kernel_size, groups=channels, bn_eps=bn_eps, bn_momentum=bn_momentum
                )
                layers.append(nn.Sequential(dw, out))
            else:
                layers.append(out)
        self.levels = nn.ModuleList(layers)
        for module in self.levels.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=PREDICTOR_INIT_STD)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        outputs = []
        for feature, layer in zip(features, self.levels, strict=True):
            y = layer(feature)
            batch, _, height, width = y.shape
            # [B, A*K, H, W] -> [B, H, W, A, K] -> [B, H*W*A, K]: location-major, like the anchors
            y = y.view(batch, -1, self.values_per_anchor, height, width).permute(0, 3, 4, 1, 2)
            outputs.append(y.reshape(batch, -1, self.values_per_anchor))
        return torch.cat(outputs, dim=1)
