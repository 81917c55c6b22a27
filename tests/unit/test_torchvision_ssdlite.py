"""Our SSDLite on MobileNetV3-Large with torchvision's weights computes what torchvision's model computes."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection import ssdlite320_mobilenet_v3_large
from torchvision.models.detection.image_list import ImageList

from mobivision import create_detector
from mobivision.detection.torchvision_ssdlite import convert_torchvision_ssdlite, load_torchvision_ssdlite
from mobivision.errors import WeightFileError


@pytest.fixture(scope="module")
def pair(randomize_bn) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    reference = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=91)
    reference = randomize_bn(reference, seed=3).eval()
    ours = create_detector("ssdlite", backbone="mobilenet_v3_large", num_classes=91).eval()
    load_torchvision_ssdlite(ours, reference.state_dict())
    return reference, ours


def test_same_parameters_and_batchnorm_settings(pair) -> None:
    reference, ours = pair
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in reference.parameters()) == 3_440_060
    norms = [m for m in ours.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(m.eps == 1e-3 and m.momentum == 0.03 for m in norms)


def test_head_outputs_anchors_and_detections_equal_torchvision(pair) -> None:
    reference, ours = pair
    x = torch.rand(2, 3, 320, 320) * 2 - 1  # already normalised: torchvision's mean/std are 0.5
    with torch.no_grad():
        features = list(reference.backbone(x).values())
        head = reference.head(features)
        anchors = reference.anchor_generator(ImageList(x, [(320, 320)] * 2), features)
        expected = reference.postprocess_detections(head, anchors, [(320, 320)] * 2)
        outputs = ours(x)
    assert torch.equal(outputs["cls_logits"], head["cls_logits"])
    assert torch.equal(outputs["bbox_regression"], head["bbox_regression"])
    torch.testing.assert_close(outputs["anchors"], anchors[0], atol=1e-4, rtol=0)
    for theirs, mine in zip(expected, ours.predict(outputs, (320, 320)), strict=True):
        assert len(mine["boxes"]) == len(theirs["boxes"]) == 300
        torch.testing.assert_close(mine["scores"], theirs["scores"])
        torch.testing.assert_close(mine["boxes"], theirs["boxes"], atol=1e-3, rtol=0)
        assert torch.equal(mine["labels"], theirs["labels"])


def test_foreign_state_dict_is_refused() -> None:
    with pytest.raises(WeightFileError, match="unexpected keys"):
        convert_torchvision_ssdlite({"features.0.weight": torch.zeros(1)}, c4_index=13)
