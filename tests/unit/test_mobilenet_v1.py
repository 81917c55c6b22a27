"""Unit tests of ``mobivision.backbones.mobilenet_v1`` against TF-Slim's MobileNetV1 (REFERENCE.md).

Expected channels, strides and dilations are derived here from REFERENCE.md's architecture table and
TF-Slim's ``mobilenet_v1_base`` rules, not read back from the library.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mobivision import create_backbone, create_model
from mobivision.backbones.mobilenet_v1 import MobileNetV1Backbone
from mobivision.errors import ConfigError
from mobivision.layers import ConvBNAct

# REFERENCE.md, "MobileNetV1 architecture": (stride, channels at width 1.0) for Conv2d_0 .. Conv2d_13.
TABLE = [(2, 32), (1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), *[(1, 512)] * 5, (2, 1024), (1, 1024)]
ENDPOINTS = ["Conv2d_0"] + [f"Conv2d_{i}_{kind}" for i in range(1, 14) for kind in ("depthwise", "pointwise")]
SIZE = 64  # divisible by 32, so every feature map is exactly input / stride


def expected_endpoints(width: float, output_stride: int, min_depth: int = 8) -> dict[str, tuple[int, int]]:
    """(channels, stride) per endpoint: ``max(int(d * w), min_depth)`` and the stride capped by output_stride."""
    out: dict[str, tuple[int, int]] = {}
    stride, in_channels = 1, 3
    for i, (layer_stride, depth) in enumerate(TABLE):
        stride = min(stride * layer_stride, output_stride)
        channels = max(int(depth * width), min_depth)
        if i == 0:
            out["Conv2d_0"] = (channels, stride)
        else:
            out[f"Conv2d_{i}_depthwise"] = (in_channels, stride)
            out[f"Conv2d_{i}_pointwise"] = (channels, stride)
        in_channels = channels
    return out


def run_all(backbone: nn.Module, size: int = SIZE) -> dict[str, torch.Tensor]:
    backbone.eval()
    with torch.no_grad():
        return backbone(torch.randn(1, 3, size, size))


@pytest.mark.parametrize("output_stride", [8, 16, 32])
@pytest.mark.parametrize("width", [0.25, 0.5, 0.75, 1.0, 0.35])
def test_feature_specs_match_forward_and_reference(width: float, output_stride: int) -> None:
    backbone = MobileNetV1Backbone(width_mult=width, output_stride=output_stride, out_features=ENDPOINTS)
    features = run_all(backbone)
    expected = expected_endpoints(width, output_stride)
    assert list(features) == list(backbone.feature_specs) == ENDPOINTS
    for name, tensor in features.items():
        spec = backbone.feature_specs[name]
        assert tensor.shape[1] == spec.channels, name
        assert tensor.shape[-2] * spec.stride == SIZE and tensor.shape[-1] * spec.stride == SIZE, name
        assert (spec.channels, spec.stride) == expected[name], name


def test_min_depth_raises_narrow_layers() -> None:
    backbone = MobileNetV1Backbone(width_mult=0.25, min_depth=16, out_features=["Conv2d_0", "Conv2d_1_pointwise"])
    features = run_all(backbone)
    # int(32 * 0.25) = 8 and int(64 * 0.25) = 16: the stem is raised to 16, Conv2d_1 already is 16.
    assert features["Conv2d_0"].shape[1] == 16
    assert features["Conv2d_1_pointwise"].shape[1] == 16
    assert backbone.layers.Conv2d_1_depthwise.conv.groups == 16
    assert MobileNetV1Backbone(width_mult=0.25, out_features=["Conv2d_0"]).feature_specs["Conv2d_0"].channels == 8


def conv_geometry(backbone: MobileNetV1Backbone) -> dict[int, tuple[int, int]]:
    """(stride, dilation) of each depthwise conv, by layer index."""
    convs = {i: backbone.layers.get_submodule(f"Conv2d_{i}_depthwise").conv for i in range(1, 14)}
    return {i: (conv.stride[0], conv.dilation[0]) for i, conv in convs.items()}


def test_output_stride_16_follows_tf_slim() -> None:
    geometry = conv_geometry(MobileNetV1Backbone(output_stride=16, out_features=ENDPOINTS))
    # TF-Slim: current_stride reaches 16 after Conv2d_11, so Conv2d_12 keeps rate 1 but loses its stride,
    # and every later layer runs at rate 2.
    assert geometry[12] == (1, 1)
    assert geometry[13] == (1, 2)
    assert geometry[6] == (2, 1) and geometry[11] == (1, 1)


def test_output_stride_8_follows_tf_slim() -> None:
    geometry = conv_geometry(MobileNetV1Backbone(output_stride=8, out_features=ENDPOINTS))
    # Worked by hand from mobilenet_v1_base: current_stride is 8 after Conv2d_4; from then on layer_stride=1,
    # layer_rate=rate and rate *= conv_def.stride, so Conv2d_5 and 6 run at rate 1 (rate becomes 2 after 6),
    # Conv2d_7..12 at rate 2 (rate becomes 4 after 12) and Conv2d_13 at rate 4.
    expected = {1: (1, 1), 2: (2, 1), 3: (1, 1), 4: (2, 1), 5: (1, 1), 6: (1, 1)}
    expected |= {i: (1, 2) for i in range(7, 13)} | {13: (1, 4)}
    assert geometry == expected


def test_output_stride_32_has_no_dilation() -> None:
    geometry = conv_geometry(MobileNetV1Backbone(out_features=ENDPOINTS))
    assert geometry == {i: (TABLE[i][0], 1) for i in range(1, 14)}


def test_every_conv_is_bias_free_then_batchnorm_then_relu6() -> None:
    backbone = MobileNetV1Backbone(width_mult=0.25, out_features=ENDPOINTS)
    assert list(dict(backbone.layers.named_children())) == ENDPOINTS
    for name, layer in backbone.layers.named_children():
        assert isinstance(layer, ConvBNAct), name
        conv, bn, act = layer.children()
        assert isinstance(conv, nn.Conv2d) and conv.bias is None, name
        assert isinstance(bn, nn.BatchNorm2d) and bn.num_features == conv.out_channels, name
        assert isinstance(act, nn.ReLU6), name
    assert sum(isinstance(m, nn.Conv2d) for m in backbone.modules()) == 27
    # ReLU6 really clips: a large input saturates the stem at 6 and nothing goes below 0.
    backbone.eval()
    with torch.no_grad():
        stem = backbone(torch.randn(1, 3, 32, 32) * 100)["Conv2d_0"]
    assert stem.max().item() == 6.0 and stem.min().item() == 0.0


@pytest.mark.parametrize(
    ("width", "conv_params"),
    [(1.0, 3_185_088), (0.75, 1_800_144)],  # REFERENCE.md: "Base network (no logits)" parameter counts
)
def test_base_network_parameters_match_reference(width: float, conv_params: int) -> None:
    backbone = MobileNetV1Backbone(width_mult=width, out_features=["Conv2d_13_pointwise"])
    assert sum(m.weight.numel() for m in backbone.modules() if isinstance(m, nn.Conv2d)) == conv_params
    assert backbone.layers.Conv2d_0.conv.weight.numel() == int(864 * width)  # "Conv2d_0 alone 864 params"


def same_weights(padding: str) -> MobileNetV1Backbone:
    """A width-0.25 body with the factory's He init (PyTorch's default init fades to ~0 after 27 layers)."""
    torch.manual_seed(0)
    return create_backbone("mobilenet_v1", width_mult=0.25, padding=padding, out_features=ENDPOINTS[-1:]).eval()


@pytest.mark.parametrize("layer_name", ["Conv2d_0", "Conv2d_2_depthwise"])
def test_tf_padding_pads_after_on_even_inputs(layer_name: str) -> None:
    conv = same_weights("tf").layers.get_submodule(layer_name).conv
    assert conv.stride == (2, 2)
    x = torch.randn(2, conv.in_channels, 16, 16)
    with torch.no_grad():
        ours = conv(x)
        tf_same = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, stride=2, groups=conv.groups)
        symmetric = F.conv2d(x, conv.weight, stride=2, padding=1, groups=conv.groups)
    assert ours.shape == (2, conv.out_channels, 8, 8)
    torch.testing.assert_close(ours, tf_same, rtol=0, atol=0)
    assert (ours - symmetric).abs().max() > 1e-3
    x_odd = torch.randn(2, conv.in_channels, 17, 17)  # TF 'SAME' pads odd sizes (1, 1), like PyTorch
    with torch.no_grad():
        torch.testing.assert_close(
            conv(x_odd), F.conv2d(x_odd, conv.weight, stride=2, padding=1, groups=conv.groups), rtol=0, atol=0
        )


def test_tf_padding_changes_the_network_only_on_even_sizes(calibrate_bn) -> None:
    tf_net, sym_net = same_weights("tf"), same_weights("symmetric")
    odd = torch.randn(2, 3, 65, 65)
    calibrate_bn(tf_net, odd)
    sym_net.load_state_dict(tf_net.state_dict())
    with torch.no_grad():
        # 65 -> 33 -> 17 -> 9 -> 5 -> 3: every strided conv sees an odd size, so both paddings agree.
        torch.testing.assert_close(tf_net(odd), sym_net(odd), rtol=0, atol=1e-5)
        even = torch.randn(2, 3, 64, 64)
        tf_out, sym_out = tf_net(even)["Conv2d_13_pointwise"], sym_net(even)["Conv2d_13_pointwise"]
    assert tf_out.abs().mean() > 0.1  # alive, so a zero difference could not pass by fading
    assert (tf_out - sym_out).abs().max() > 0.1


def test_bn_eps_and_momentum_reach_every_batchnorm() -> None:
    backbone = MobileNetV1Backbone(width_mult=0.25, bn_eps=1e-3, bn_momentum=3e-4, out_features=ENDPOINTS)
    model = create_model("mobilenet_v1", width_mult=0.25, bn_eps=2e-3, bn_momentum=0.05)
    for module, (eps, momentum) in ((backbone, (1e-3, 3e-4)), (model, (2e-3, 0.05))):
        norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
        assert len(norms) == 27
        assert all(bn.eps == eps and bn.momentum == momentum for bn in norms)
    assert model.pretrained_cfg["bn_eps"] == 2e-3


def test_out_features_truncate_the_body_and_keep_network_order() -> None:
    backbone = MobileNetV1Backbone(out_features=["Conv2d_5_pointwise", "Conv2d_3_pointwise"])
    assert backbone.out_features == ["Conv2d_3_pointwise", "Conv2d_5_pointwise"]
    assert list(backbone.feature_specs) == ["Conv2d_3_pointwise", "Conv2d_5_pointwise"]
    assert len(backbone.layers) == 11  # Conv2d_0 + (depthwise, pointwise) x 5
    assert list(dict(backbone.layers.named_children()))[-1] == "Conv2d_5_pointwise"
    assert list(run_all(backbone)) == ["Conv2d_3_pointwise", "Conv2d_5_pointwise"]
    assert len(MobileNetV1Backbone(out_features=["Conv2d_5_depthwise"]).layers) == 10
    # Default endpoints are the TF Object Detection API's taps, high to low resolution.
    default = MobileNetV1Backbone(width_mult=0.25)
    assert list(run_all(default)) == [f"Conv2d_{i}_pointwise" for i in (1, 3, 5, 11, 13)]
    assert len(default.layers) == 27


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"out_features": ["Conv2d_14_pointwise"]}, "Conv2d_14_pointwise"),
        ({"out_features": []}, "out_features"),
        ({"width_mult": 0}, "0"),
        ({"width_mult": -0.5}, "-0.5"),
        ({"width_mult": "1.0"}, "'1.0'"),
        ({"output_stride": 12}, "12"),
        ({"padding": "same"}, "'same'"),
    ],
)
def test_bad_configuration_raises_config_error_naming_the_value(kwargs: dict, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        MobileNetV1Backbone(**kwargs)
    assert named in str(info.value)


@pytest.fixture
def classifier() -> nn.Module:
    torch.manual_seed(0)
    return create_model("mobilenet_v1", width_mult=0.25, num_classes=7).eval()


def test_classifier_feature_and_head_api(classifier: nn.Module) -> None:
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        features = classifier.forward_features(x)
        assert features.shape == (2, 256, 2, 2)
        pooled = classifier.forward_head(features, pre_logits=True)
        torch.testing.assert_close(pooled, features.mean(dim=(2, 3)))
        logits = classifier.forward_head(features)
        assert logits.shape == (2, 7)
        torch.testing.assert_close(classifier(x), logits)
    assert classifier.num_classes == 7 and classifier.num_features == 256


def test_reset_classifier(classifier: nn.Module) -> None:
    x = torch.randn(2, 3, SIZE, SIZE)
    classifier.reset_classifier(3)
    assert classifier(x).shape == (2, 3)
    assert classifier.pretrained_cfg["num_classes"] == 3
    classifier.reset_classifier(0)
    with torch.no_grad():
        torch.testing.assert_close(classifier(x), classifier.forward_head(classifier.forward_features(x), True))
    assert classifier(x).shape == (2, 256)


def test_gradients_reach_the_stem(classifier: nn.Module) -> None:
    classifier.train()
    loss = F.cross_entropy(classifier(torch.randn(4, 3, SIZE, SIZE)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    grad = classifier.backbone.layers.Conv2d_0.conv.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
