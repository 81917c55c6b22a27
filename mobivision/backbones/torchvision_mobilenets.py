"""MobileNetV2 (arXiv 1801.04381) and MobileNetV3 (arXiv 1905.02244) from torchvision, behind the
mobivision backbone contract.

torchvision's ``features`` Sequential is kept as is (so its state dicts load unchanged); endpoints are
tapped by stride: ``stride{2,4,8,16,32}`` is the last block at that stride, and ``stride16_expansion`` is
the 1x1 expansion inside the first stride-32 block, the "C4" tap that SSDLite uses (MobileNetV2 paper,
Sec. 6.3; torchvision's ``ssdlite320_mobilenet_v3_large``).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import torch
from torch import nn
from torchvision.models import mobilenetv3
from torchvision.models.mobilenetv2 import MobileNetV2

from mobivision.backbones.features import Backbone, FeatureSpec
from mobivision.backbones.mobilenet_v1 import validate_width
from mobivision.errors import ConfigError

EXPANSION_TAP = "stride16_expansion"


def build_torchvision_mobilenet(
    name: str,
    *,
    width_mult: float,
    output_stride: int,
    bn_eps: float | None = None,
    bn_momentum: float | None = None,
    reduced_tail: bool = False,
) -> nn.Module:
    """The torchvision classifier network ``name`` at ``width_mult`` (random weights).

    ``bn_eps`` / ``bn_momentum`` replace torchvision's BatchNorm defaults (its SSDLite uses 1e-3 / 0.03);
    ``reduced_tail`` halves MobileNetV3's last stage (torchvision's SSDLite without a pretrained backbone).
    """
    validate_width(width_mult)
    norm_layer = None
    if bn_eps is not None or bn_momentum is not None:
        norm_layer = partial(
            nn.BatchNorm2d, eps=1e-5 if bn_eps is None else bn_eps, momentum=0.1 if bn_momentum is None else bn_momentum
        )
    if name == "mobilenet_v2":
        if output_stride != 32:
            raise ConfigError(f"mobilenet_v2 supports output_stride 32 only, got {output_stride!r}")
        if reduced_tail:
            raise ConfigError("reduced_tail is a MobileNetV3 option; mobilenet_v2 has no reduced tail")
        return MobileNetV2(width_mult=width_mult, norm_layer=norm_layer)
    if output_stride not in (16, 32):
        raise ConfigError(f"{name} supports output_stride 16 or 32, got {output_stride!r}")
    settings, last_channel = mobilenetv3._mobilenet_v3_conf(
        name, width_mult=width_mult, reduced_tail=reduced_tail, dilated=output_stride == 16
    )
    return mobilenetv3.MobileNetV3(settings, last_channel, norm_layer=norm_layer)


def _block_stride(block: nn.Module) -> int:
    """Product of the strides of a block's convolutions (read from its structure, not by running it)."""
    stride = 1
    for module in block.modules():
        if isinstance(module, nn.Conv2d):
            stride *= module.stride[0]
    return stride


def _is_dilated(block: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) and m.dilation[0] > 1 for m in block.modules())


def _block_out_channels(block: nn.Module) -> int:
    return [m for m in block.modules() if isinstance(m, nn.Conv2d)][-1].out_channels


def _block_layers(block: nn.Module) -> nn.Sequential:
    """The inner Sequential of a torchvision inverted-residual block (``conv`` in V2, ``block`` in V3)."""
    return block.conv if hasattr(block, "conv") else block.block


class TorchvisionMobileNetBackbone(Backbone):
    """torchvision MobileNetV2 / V3 ``features`` returning stride-tapped endpoints.

    Args:
        name: ``mobilenet_v2``, ``mobilenet_v3_large`` or ``mobilenet_v3_small``.
        width_mult: Width multiplier.
        output_stride: 32, or 16 for V3 (dilated last stage, as torchvision's DeepLab/LR-ASPP).
        bn_eps / bn_momentum / reduced_tail: See ``build_torchvision_mobilenet``.
        out_features: Endpoint names; default all ``stride*`` taps except the expansion.
    """

    def __init__(
        self,
        name: str,
        *,
        width_mult: float = 1.0,
        output_stride: int = 32,
        bn_eps: float | None = None,
        bn_momentum: float | None = None,
        reduced_tail: bool = False,
        out_features: list[str] | tuple[str, ...] | None = None,
    ) -> None:
        super().__init__()
        self.width_mult = width_mult
        self.features = build_torchvision_mobilenet(
            name,
            width_mult=width_mult,
            output_stride=output_stride,
            bn_eps=bn_eps,
            bn_momentum=bn_momentum,
            reduced_tail=reduced_tail,
        ).features
        self._taps, self._expansion_block = self._find_taps(output_stride)
        self.default_out_features = tuple(n for n in self.all_feature_specs if n != EXPANSION_TAP)
        self._select_features(out_features)

    def _find_taps(self, output_stride: int) -> tuple[dict[int, str], int]:
        """Endpoint name per block index, and the index of the block holding the expansion tap."""
        specs: dict[str, tuple[int, FeatureSpec]] = {}
        stride, expansion_block = 1, -1
        for index, block in enumerate(self.features):
            block_stride = _block_stride(block)
            if stride == 16 and expansion_block < 0 and (block_stride == 2 or _is_dilated(block)):
                expansion_block = index
                expansion = _block_layers(block)[0]
                specs[EXPANSION_TAP] = (index, FeatureSpec(expansion.out_channels, 16))
            stride *= block_stride
            specs[f"stride{stride}"] = (index, FeatureSpec(_block_out_channels(block), stride))
        ordered = sorted(specs.items(), key=lambda item: (item[1][0], item[0] != EXPANSION_TAP))
        self.all_feature_specs = {name: spec for name, (_, spec) in ordered}
        taps = {index: name for name, (index, _) in ordered if name != EXPANSION_TAP}
        return taps, expansion_block

    def _blocks(self) -> Iterator[tuple[int, nn.Module]]:
        last = max(i for i, n in self._taps.items() if n in self.out_features)
        if EXPANSION_TAP in self.out_features:
            last = max(last, self._expansion_block)
        yield from enumerate(self.features[: last + 1])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features: dict[str, torch.Tensor] = {}
        for index, block in self._blocks():
            if index == self._expansion_block and EXPANSION_TAP in self.out_features:
                layers = _block_layers(block)
                x = layers[0](x)
                features[EXPANSION_TAP] = x
                x = layers[1:](x)  # the stride-2 block has no residual connection
            else:
                x = block(x)
            name = self._taps.get(index)
            if name in self.out_features:
                features[name] = x
        return features
