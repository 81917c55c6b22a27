"""Unit tests of ``mobivision.factory``: the registries, every ``create_*`` and their checks."""

from __future__ import annotations

import re

import pytest
import torch

from mobivision import (
    create_attribute_model,
    create_backbone,
    create_detector,
    create_model,
    detector_preset,
    list_detectors,
    list_models,
)
from mobivision.errors import ConfigError

NAMES = ["mobilenet_v1", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"]
SIZE = 64


def test_list_models() -> None:
    assert list_models() == NAMES


@pytest.mark.parametrize("name", list_models())
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


@pytest.mark.parametrize("name", list_models())
def test_every_model_name_builds_a_backbone(name: str) -> None:
    backbone = create_backbone(name, width_mult=0.25).eval()
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, SIZE, SIZE))
    assert list(features) == list(backbone.feature_specs)


@pytest.mark.parametrize("name", list_detectors())
def test_every_detector_name_builds_the_detector_it_names(name: str) -> None:
    head, resolution, backbone = re.fullmatch(r"(ssd|ssdlite)(\d+)_(.+)", name).groups()
    assert detector_preset(name) == {"head": head, "backbone": backbone, "resolution": int(resolution)}
    model = create_detector(name, num_classes=3, width_mult=0.25).eval()
    cfg = model.pretrained_cfg
    assert (cfg["head"], cfg["backbone"], cfg["resolution"]) == (head, backbone, int(resolution))
    with torch.no_grad():
        out = model(torch.randn(1, 3, SIZE, SIZE))
    assert out["cls_logits"].shape == (1, len(out["anchors"]), 3)


def test_a_preset_equals_its_head_on_its_backbone() -> None:
    torch.manual_seed(0)
    preset = create_detector("ssdlite320_mobilenet_v3_large", num_classes=4, width_mult=0.25, resolution=256)
    torch.manual_seed(0)
    explicit = create_detector("ssdlite", backbone="mobilenet_v3_large", num_classes=4, width_mult=0.25, resolution=256)
    assert preset.pretrained_cfg == explicit.pretrained_cfg
    pairs = zip(preset.state_dict().items(), explicit.state_dict().items(), strict=True)
    assert all(k == j and torch.equal(a, b) for (k, a), (j, b) in pairs)
    same = create_detector("ssd300_mobilenet_v1", backbone="mobilenet_v1", num_classes=4, width_mult=0.25)
    assert same.pretrained_cfg["resolution"] == 300


def test_a_head_name_keeps_its_defaults() -> None:
    cfg = create_detector("ssd", num_classes=4, width_mult=0.25).pretrained_cfg
    assert (cfg["head"], cfg["backbone"], cfg["resolution"]) == ("ssd", "mobilenet_v1", 320)


def test_a_conflicting_backbone_for_a_preset_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"'ssdlite320_mobilenet_v3_large'.*mobilenet_v3_large.*'mobilenet_v2'"):
        create_detector("ssdlite320_mobilenet_v3_large", backbone="mobilenet_v2")


def test_unknown_detector_or_attribute_backbone_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match=r"unknown detector.*did you mean 'ssdlite320_mobilenet_v3_large'"):
        create_detector("ssdlite320_mobilenet_v3_larg")
    with pytest.raises(ConfigError, match=r"unknown model 'mobilenet_v'.*did you mean"):
        create_attribute_model("mobilenet_v", num_attributes=3)


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v3_small"])
def test_attribute_model_gives_one_sigmoid_logit_per_attribute(name: str) -> None:
    model = create_attribute_model(name, num_attributes=40, width_mult=0.25, dropout=0.0).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, SIZE, SIZE)).shape == (2, 40)
    assert model.pretrained_cfg["score_function"] == "sigmoid"
    assert model.pretrained_cfg["architecture"] == name
    with pytest.raises(ConfigError, match=r"num_attributes.*0"):
        create_attribute_model(name, num_attributes=0)
