"""Unit tests of ``mobivision.factory``: the registry, ``create_model`` / ``create_backbone`` and their checks."""

from __future__ import annotations

import pytest
import torch

from mobivision import create_backbone, create_model, list_models
from mobivision.errors import ConfigError

NAMES = ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]
SIZE = 64


def test_list_models() -> None:
    assert list_models() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_create_model_gives_logits(name: str) -> None:
    model = create_model(name, width_mult=0.5, num_classes=5).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, SIZE, SIZE))
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()
    cfg = model.pretrained_cfg
    assert (cfg["architecture"], cfg["width_mult"], cfg["num_classes"], cfg["padding"]) == (name, 0.5, 5, "symmetric")
    # REFERENCE.md: TF-Slim MobileNetV1 inputs are scaled to [-1, 1]; torchvision uses ImageNet statistics.
    assert cfg["mean"] == ([0.5] * 3 if name == "mobilenet_v1" else [0.485, 0.456, 0.406])


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mobilenet_v3_small"])
def test_v3_classifier_at_output_stride_16(name: str) -> None:
    # create_model documents output_stride 16 for MobileNetV3 (torchvision's dilated last stage).
    model = create_model(name, width_mult=0.5, num_classes=3, output_stride=16).eval()
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, 3, SIZE, SIZE))
        assert model.forward_head(features).shape == (1, 3)
    assert features.shape[-1] == SIZE // 16


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'mobilenet_v3_larg'.*did you mean 'mobilenet_v3_large'"):
        create_model("mobilenet_v3_larg")
    with pytest.raises(ConfigError, match="'resnet50'"):
        create_backbone("resnet50")


@pytest.mark.parametrize("width", [0, -1, "a", None, True])
@pytest.mark.parametrize("constructor", [create_model, create_backbone])
def test_bad_width_raises_config_error(constructor, width) -> None:
    with pytest.raises(ConfigError, match=f"width_mult.*{width!r}"):
        constructor("mobilenet_v1", width_mult=width)
    with pytest.raises(ConfigError, match="width_mult"):
        constructor("mobilenet_v2", width_mult=width)


@pytest.mark.parametrize("num_classes", [-1, 2.5, "10"])
def test_bad_num_classes_raises_config_error(num_classes) -> None:
    with pytest.raises(ConfigError, match=f"num_classes.*{num_classes!r}"):
        create_model("mobilenet_v1", width_mult=0.25, num_classes=num_classes)


def test_num_classes_zero_gives_pooled_features() -> None:
    model = create_model("mobilenet_v1", width_mult=0.25, num_classes=0).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, SIZE, SIZE)).shape == (1, 256)


@pytest.mark.parametrize(
    ("name", "out_features"),
    [
        ("mobilenet_v1", ["Conv2d_13_pointwise", "Conv2d_1_pointwise", "Conv2d_5_pointwise"]),
        ("mobilenet_v3_large", ["stride32", "stride16_expansion", "stride8"]),
        ("mobilenet_v2", None),
    ],
)
def test_create_backbone_returns_high_to_low_resolution(name: str, out_features: list[str] | None) -> None:
    backbone = create_backbone(name, width_mult=0.5, out_features=out_features).eval()
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, SIZE, SIZE))
    sizes = [tensor.shape[-1] for tensor in features.values()]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
    assert list(features) == list(backbone.feature_specs)
    if out_features is not None:
        assert set(features) == set(out_features)
    for name_, tensor in features.items():
        assert tensor.shape[1] == backbone.feature_specs[name_].channels


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_small"])
@pytest.mark.parametrize(("option", "value"), [("padding", "tf"), ("min_depth", 16)])
@pytest.mark.parametrize("constructor", [create_model, create_backbone])
def test_v1_only_options_are_rejected_for_torchvision_models(constructor, name: str, option: str, value) -> None:
    with pytest.raises(ConfigError, match=option):
        constructor(name, **{option: value})


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_large"])
def test_batchnorm_settings_reach_torchvision_models(name: str) -> None:
    backbone = create_backbone(name, width_mult=0.5, bn_eps=1e-3, bn_momentum=0.03)
    norms = [m for m in backbone.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.eps == 1e-3 and m.momentum == 0.03 for m in norms)


def test_reduced_tail_halves_the_last_mobilenet_v3_stage() -> None:
    full = create_backbone("mobilenet_v3_large", out_features=["stride32"])
    reduced = create_backbone("mobilenet_v3_large", out_features=["stride32"], reduced_tail=True)
    assert reduced.feature_specs["stride32"].channels == full.feature_specs["stride32"].channels // 2 == 480
    with pytest.raises(ConfigError, match="reduced_tail"):
        create_backbone("mobilenet_v2", reduced_tail=True)


def test_v1_options_are_applied() -> None:
    model = create_model("mobilenet_v1", width_mult=0.25, padding="tf", bn_eps=1e-3, output_stride=16)
    assert model.pretrained_cfg["padding"] == "tf" and model.pretrained_cfg["bn_eps"] == 1e-3
    with torch.no_grad():
        assert model.eval().forward_features(torch.randn(1, 3, SIZE, SIZE)).shape[-1] == SIZE // 16
    with pytest.raises(ConfigError, match="'same'"):
        create_model("mobilenet_v1", padding="same")
