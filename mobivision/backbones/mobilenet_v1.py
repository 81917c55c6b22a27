"""MobileNetV1 (Howard et al. 2017, arXiv 1704.04861, Sec. 3 and Table 1), exact to TF-Slim.

The body is a 3x3 stem followed by 13 depthwise-separable blocks; every convolution is followed by
BatchNorm and ReLU6. Layer names follow TF-Slim's endpoints (``Conv2d_0``, ``Conv2d_1_depthwise``,
``Conv2d_1_pointwise``, ...), so recipes and ported weights read like the TF Object Detection API's.
Width multiplier (Sec. 3.3), ``min_depth``, atrous ``output_stride`` and TF 'SAME' padding follow
``mobilenet_v1.py`` in TF-Slim. (Table 1 prints stride 2 for the second-to-last depthwise layer; TF-Slim
and the paper's own counts use stride 1, as here.)
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from mobivision.backbones.features import Backbone, FeatureSpec
from mobivision.errors import ConfigError
from mobivision.layers import PADDINGS, ConvBNAct


@dataclass(frozen=True)
class _LayerDef:
    kind: str  # "conv" (full 3x3) or "separable" (depthwise 3x3 + pointwise 1x1)
    stride: int
    depth: int


# TF-Slim's MOBILENETV1_CONV_DEFS.
MOBILENET_V1_CONV_DEFS: tuple[_LayerDef, ...] = (
    _LayerDef("conv", 2, 32),
    _LayerDef("separable", 1, 64),
    _LayerDef("separable", 2, 128),
    _LayerDef("separable", 1, 128),
    _LayerDef("separable", 2, 256),
    _LayerDef("separable", 1, 256),
    _LayerDef("separable", 2, 512),
    *(_LayerDef("separable", 1, 512) for _ in range(5)),
    _LayerDef("separable", 2, 1024),
    _LayerDef("separable", 1, 1024),
)

DEFAULT_OUT_FEATURES = (
    "Conv2d_1_pointwise",
    "Conv2d_3_pointwise",
    "Conv2d_5_pointwise",
    "Conv2d_11_pointwise",
    "Conv2d_13_pointwise",
)


def scaled_depth(depth: int, *, width_mult: float, min_depth: int) -> int:
    """TF-Slim's depth rounding: ``max(int(depth * width_mult), min_depth)``."""
    return max(int(depth * width_mult), min_depth)


def validate_width(width_mult: float) -> None:
    """Reject a width multiplier that cannot build a network."""
    if not isinstance(width_mult, int | float) or isinstance(width_mult, bool) or width_mult <= 0:
        raise ConfigError(f"width_mult must be a number > 0, got {width_mult!r}")


class MobileNetV1Backbone(Backbone):
    """MobileNetV1 body returning the requested TF-Slim endpoints.

    Args:
        width_mult: The paper's width multiplier alpha (any value > 0).
        min_depth: Smallest channel count after scaling (TF-Slim's default 8).
        output_stride: 8, 16 or 32; strides beyond it become dilation (atrous convolution).
        padding: ``"symmetric"`` (PyTorch style) or ``"tf"`` (TF 'SAME', for TF-trained weights).
        bn_eps: BatchNorm epsilon (TF-Slim uses 1e-3, see ``mobivision.layers.TF_BN_EPS``).
        bn_momentum: BatchNorm momentum in PyTorch's convention (TF's decay 0.9997 is 0.0003).
        out_features: Endpoint names to return; the body stops after the last one.
    """

    def __init__(
        self,
        *,
        width_mult: float = 1.0,
        min_depth: int = 8,
        output_stride: int = 32,
        padding: str = "symmetric",
        bn_eps: float = 1e-5,
        bn_momentum: float = 0.1,
        out_features: list[str] | tuple[str, ...] | None = None,
    ) -> None:
        super().__init__()
        validate_width(width_mult)
        if output_stride not in (8, 16, 32):
            raise ConfigError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
        if padding not in PADDINGS:
            raise ConfigError(f"padding must be one of {PADDINGS}, got {padding!r}")
        self.width_mult = width_mult
        self.padding = padding
        self.default_out_features = DEFAULT_OUT_FEATURES
        layers, specs = self._build_layers(
            width_mult=width_mult,
            min_depth=min_depth,
            output_stride=output_stride,
            padding=padding,
            bn_eps=bn_eps,
            bn_momentum=bn_momentum,
        )
        self.all_feature_specs = specs
        self._select_features(out_features)
        last = list(layers).index(self.out_features[-1])
        self.layers = nn.Sequential(OrderedDict(list(layers.items())[: last + 1]))

    @staticmethod
    def _build_layers(
        *,
        width_mult: float,
        min_depth: int,
        output_stride: int,
        padding: str,
        bn_eps: float,
        bn_momentum: float,
    ) -> tuple[dict[str, nn.Module], dict[str, FeatureSpec]]:
        """Layers and their specs, with TF-Slim's atrous bookkeeping (``current_stride`` and ``rate``)."""
        common = {"padding": padding, "bn_eps": bn_eps, "bn_momentum": bn_momentum}
        layers: dict[str, nn.Module] = {}
        specs: dict[str, FeatureSpec] = {}
        current_stride, rate, in_channels = 1, 1, 3
        for index, layer_def in enumerate(MOBILENET_V1_CONV_DEFS):
            if current_stride == output_stride:
                layer_stride, layer_rate = 1, rate
                rate *= layer_def.stride
            else:
                layer_stride, layer_rate = layer_def.stride, 1
                current_stride *= layer_def.stride
            depth = scaled_depth(layer_def.depth, width_mult=width_mult, min_depth=min_depth)
            if layer_def.kind == "conv":
                name = f"Conv2d_{index}"
                layers[name] = ConvBNAct(in_channels, depth, kernel_size=3, stride=layer_stride, **common)
            else:
                name = f"Conv2d_{index}_depthwise"
                layers[name] = ConvBNAct(
                    in_channels,
                    in_channels,
                    kernel_size=3,
                    stride=layer_stride,
                    dilation=layer_rate,
                    groups=in_channels,
                    **common,
                )
                specs[name] = FeatureSpec(in_channels, current_stride)
                name = f"Conv2d_{index}_pointwise"
                layers[name] = ConvBNAct(in_channels, depth, kernel_size=1, **common)
            specs[name] = FeatureSpec(depth, current_stride)
            in_channels = depth
        return layers, specs

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features: dict[str, torch.Tensor] = {}
        wanted = set(self.out_features)
        for name, layer in self.layers.named_children():
            x = layer(x)
            if name in wanted:
                features[name] = x
        return features
