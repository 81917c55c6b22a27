"""Unit tests of ``mobivision.backbones.torchvision_mobilenets`` (MobileNetV2 / V3 behind the backbone contract).

Every endpoint is checked against torchvision's own network: our ``features`` load torchvision's state dict
unchanged, ``stride{s}`` equals the output of the last torchvision block whose output is at stride ``s``
(found here by running torchvision block by block), and ``stride16_expansion`` equals the C4 tap of
torchvision's SSDLite extractor, ``features[:k]`` then ``features[k].block[0]`` with ``k`` the last block
that reduces resolution (MobileNetV2 paper Sec. 6.3; ``torchvision.models.detection.ssdlite``).
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from mobivision.backbones.torchvision_mobilenets import EXPANSION_TAP, TorchvisionMobileNetBackbone
from mobivision.errors import ConfigError

NAMES = ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]
SIZE = 64
ALL_TAPS = ["stride2", "stride4", "stride8", "stride16", EXPANSION_TAP, "stride32"]


def torchvision_net(name: str, width: float, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(width_mult=width, **kwargs).eval()


def ours_like(reference: nn.Module, name: str, width: float, **kwargs) -> TorchvisionMobileNetBackbone:
    backbone = TorchvisionMobileNetBackbone(name, width_mult=width, **kwargs)
    backbone.features.load_state_dict(reference.features.state_dict())  # identical keys and shapes
    return backbone.eval()


def block_outputs(features: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    outputs = []
    for block in features:
        x = block(x)
        outputs.append(x)
    return outputs


def c4_index(features: nn.Sequential) -> int:
    """Index of the last block that reduces resolution (torchvision marks V3's with ``_is_cn``)."""
    if any(hasattr(block, "_is_cn") for block in features):
        return [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)][-1]
    return [i for i, block in enumerate(features) if getattr(block, "stride", 1) == 2][-1]


def expansion_layer(block: nn.Module) -> nn.Module:
    return block.block[0] if hasattr(block, "block") else block.conv[0]


@pytest.mark.parametrize("width", [1.0, 0.5])
@pytest.mark.parametrize("name", NAMES)
def test_every_endpoint_matches_torchvision(name: str, width: float) -> None:
    reference = torchvision_net(name, width)
    backbone = ours_like(reference, name, width, out_features=ALL_TAPS)
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        features = backbone(x)
        blocks = block_outputs(reference.features, x)
        k = c4_index(reference.features)
        c4 = expansion_layer(reference.features[k])(reference.features[:k](x))
    assert list(features) == list(backbone.feature_specs)
    assert list(features) == ["stride2", "stride4", "stride8", "stride16", EXPANSION_TAP, "stride32"]
    for tap, tensor in features.items():
        spec = backbone.feature_specs[tap]
        assert tensor.shape[1] == spec.channels, tap
        assert tensor.shape[-1] * spec.stride == SIZE and tensor.shape[-2] * spec.stride == SIZE, tap
    for stride in (2, 4, 8, 16, 32):
        last = max(i for i, out in enumerate(blocks) if out.shape[-1] == SIZE // stride)
        torch.testing.assert_close(features[f"stride{stride}"], blocks[last], rtol=0, atol=0)
    torch.testing.assert_close(features[EXPANSION_TAP], c4, rtol=0, atol=0)
    torch.testing.assert_close(features["stride32"], reference.features(x), rtol=0, atol=0)


def test_v3_large_expansion_tap_is_ssdlite_c4() -> None:
    # torchvision's ssdlite320_mobilenet_v3_large taps 672 channels at stride 16 (REFERENCE.md, SSDLite).
    spec = TorchvisionMobileNetBackbone("mobilenet_v3_large").all_feature_specs[EXPANSION_TAP]
    assert (spec.channels, spec.stride) == (672, 16)


@pytest.mark.parametrize("name", NAMES)
def test_default_endpoints_exclude_the_expansion_and_stop_early(name: str) -> None:
    backbone = TorchvisionMobileNetBackbone(name)
    assert backbone.out_features == ["stride2", "stride4", "stride8", "stride16", "stride32"]
    shallow = TorchvisionMobileNetBackbone(name, out_features=["stride8", "stride4"])
    assert shallow.out_features == ["stride4", "stride8"]
    with torch.no_grad():
        features = shallow.eval()(torch.randn(1, 3, SIZE, SIZE))
    assert list(features) == ["stride4", "stride8"]
    assert features["stride8"].shape[-1] == SIZE // 8


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mobilenet_v3_small"])
def test_v3_output_stride_16_matches_torchvision_dilated(name: str) -> None:
    reference = torchvision_net(name, 1.0, dilated=True)
    backbone = ours_like(reference, name, 1.0, output_stride=16, out_features=None)
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        features = backbone(x)
        expected = reference.features(x)
    assert max(spec.stride for spec in backbone.all_feature_specs.values()) == 16
    last = list(features)[-1]
    assert backbone.feature_specs[last] == backbone.all_feature_specs[last]
    assert features[last].shape[-1] == SIZE // 16
    torch.testing.assert_close(features[last], expected, rtol=0, atol=0)
    for tap, tensor in features.items():
        assert tensor.shape[1] == backbone.feature_specs[tap].channels, tap
        assert tensor.shape[-1] * backbone.feature_specs[tap].stride == SIZE, tap


@pytest.mark.parametrize(
    ("name", "output_stride"), [("mobilenet_v2", 16), ("mobilenet_v2", 8), ("mobilenet_v3_large", 8)]
)
def test_unsupported_output_stride_raises(name: str, output_stride: int) -> None:
    with pytest.raises(ConfigError, match=f"{name}.*{output_stride}"):
        TorchvisionMobileNetBackbone(name, output_stride=output_stride)


def test_unknown_endpoint_raises_naming_it() -> None:
    with pytest.raises(ConfigError, match="stride64"):
        TorchvisionMobileNetBackbone("mobilenet_v2", out_features=["stride64"])
