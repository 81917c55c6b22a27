"""SSD machinery: anchors, matching, box coding, loss, decoding, detector construction."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from mobivision import create_detector, detector_preset, list_detectors
from mobivision.detection import AnchorGenerator, build_targets, make_box_coder, match_anchors, ssd_loss
from mobivision.detection.loss import hard_negative_mask
from mobivision.errors import ConfigError


@pytest.mark.parametrize("image_size", [(320, 320), (256, 384)])
def test_torchvision_layout_equals_default_box_generator(image_size: tuple[int, int]) -> None:
    feature_sizes = [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    ours = AnchorGenerator(num_levels=6, layout="torchvision", aspect_ratios=(2.0, 3.0), clip=True)
    reference = DefaultBoxGenerator([[2, 3]] * 6, min_ratio=0.2, max_ratio=0.95)
    maps = [torch.zeros(1, 1, *s) for s in feature_sizes]
    expected = reference(ImageList(torch.zeros(1, 3, *image_size), [image_size]), maps)[0]
    assert ours.num_anchors_per_location() == reference.num_anchors_per_location()
    torch.testing.assert_close(ours(feature_sizes, image_size), expected, atol=1e-4, rtol=0)


def test_tf_layout_reproduces_ssd_mobilenet_v1_anchors() -> None:
    generator = AnchorGenerator(
        num_levels=6, layout="tf", aspect_ratios=(1.0, 2.0, 0.5, 3.0, 0.3333), reduce_lowest_level=True, clip=False
    )
    assert generator.num_anchors_per_location() == [3, 6, 6, 6, 6, 6]
    sizes = [(19, 19), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    anchors = generator(sizes, (300, 300))
    assert anchors.shape == (1917, 4)  # the TF model's well-known anchor count
    centre = 300 / 19 / 2
    first = anchors[:3]  # location (0, 0) of the lowest level: (0.1, 1), (0.2, 2), (0.2, 0.5)
    w, h = first[:, 2] - first[:, 0], first[:, 3] - first[:, 1]
    torch.testing.assert_close(w, torch.tensor([30.0, 60 * math.sqrt(2), 60 / math.sqrt(2)]))
    torch.testing.assert_close(h, torch.tensor([30.0, 60 / math.sqrt(2), 60 * math.sqrt(2)]))
    torch.testing.assert_close((first[:, 0] + first[:, 2]) / 2, torch.full((3,), centre))
    last = anchors[-6:]  # the 1x1 level: scale 0.95 boxes and the interpolated sqrt(0.95 * 1.0) one
    assert float(last[-1, 2] - last[-1, 0]) == pytest.approx(300 * math.sqrt(0.95), rel=1e-5)
    assert float(last[0, 2] - last[0, 0]) == pytest.approx(0.95 * 300, rel=1e-5)


def test_tf_layout_keeps_ratio_one_anchors_square_on_wide_images() -> None:
    generator = AnchorGenerator(num_levels=2, layout="tf", aspect_ratios=(1.0,), clip=False)
    box = generator([(2, 4), (1, 2)], (200, 400))[0]
    assert float(box[2] - box[0]) == pytest.approx(float(box[3] - box[1]))


@pytest.mark.parametrize("name", list_detectors())
@pytest.mark.parametrize("size", [(320, 320), (200, 288)])
def test_anchor_count_per_level_matches_head_outputs(name: str, size: tuple[int, int]) -> None:
    preset = detector_preset(name)
    model = create_detector(preset["head"], backbone=preset["backbone"], num_classes=5, width_mult=0.25).eval()
    features = model.feature_maps(torch.zeros(1, 3, *size))
    per_location = model.anchor_generator.num_anchors_per_location()
    expected = sum(f.shape[-2] * f.shape[-1] * a for f, a in zip(features, per_location, strict=True))
    with torch.no_grad():
        out = model(torch.zeros(1, 3, *size))
    assert out["anchors"].shape == (expected, 4)
    assert out["cls_logits"].shape == (1, expected, 5) and out["bbox_regression"].shape == (1, expected, 4)


def test_ssd300_mobilenet_v1_matches_the_paper_size() -> None:
    model = create_detector("ssd", backbone="mobilenet_v1", num_classes=91).eval()
    params = sum(p.numel() for p in model.parameters())
    assert abs(params - 6.8e6) / 6.8e6 < 0.01  # MobileNets paper Table 13: 6.8 M
    assert model(torch.zeros(1, 3, 300, 300))["anchors"].shape == (1917, 4)


def test_box_coding_round_trips() -> None:
    coder = make_box_coder()
    assert coder.weights == (10.0, 10.0, 5.0, 5.0)
    anchors = torch.tensor([[10.0, 10, 50, 90], [0, 0, 300, 300], [100, 120, 130, 140]])
    boxes = torch.tensor([[12.0, 5, 60, 80], [30, 40, 200, 290], [90, 125, 150, 139]])
    codes = coder.encode_single(boxes, anchors)
    torch.testing.assert_close(coder.decode_single(codes, anchors), boxes, atol=1e-4, rtol=0)
    # TF's faster_rcnn_box_coder: ty = 10 * (yc - yca) / ha, th = 5 * log(h / ha)
    assert float(codes[0, 1]) == pytest.approx(10 * ((5 + 80) / 2 - 50) / 80, rel=1e-5)
    assert float(codes[0, 3]) == pytest.approx(5 * math.log(75 / 80), rel=1e-5)


def test_matcher_thresholds_and_forces_each_box_onto_its_best_anchor() -> None:
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 12], [20, 20, 30, 30], [50, 50, 100, 100]])
    gt = torch.tensor([[0.0, 0, 10, 11], [19, 19, 40, 40]])  # 2nd box: IoU 100/441 = 0.23 with anchor 2 only
    matches = match_anchors(gt, anchors, iou_threshold=0.5)
    assert matches.tolist() == [0, 0, 1, -1]  # anchor 2 forced onto box 1 despite IoU < 0.5
    assert match_anchors(torch.zeros(0, 4), anchors).tolist() == [-1, -1, -1, -1]


def test_targets_of_an_image_without_boxes_are_background() -> None:
    anchors = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    targets = [
        {"boxes": torch.tensor([[20.0, 20, 30, 31]]), "labels": torch.tensor([2])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)},
    ]
    labels, boxes = build_targets(targets, anchors, box_coder=make_box_coder())
    assert labels.tolist() == [[0, 2], [0, 0]]
    assert boxes.shape == (2, 2, 4) and boxes[1].abs().sum() == 0


def test_hard_negative_mining_keeps_three_highest_loss_negatives_per_positive() -> None:
    loss = torch.tensor([[0.1, 5.0, 0.2, 0.9, 0.3, 0.8, 0.7, 9.0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]])
    positive = torch.zeros_like(loss, dtype=torch.bool)
    positive[0, 7] = True  # one positive in image 0, none in image 1
    mask = hard_negative_mask(loss, positive, neg_pos_ratio=3)
    assert mask[0].nonzero().flatten().tolist() == [1, 3, 5]
    assert not mask[1].any()
    assert hard_negative_mask(loss, positive, neg_pos_ratio=3, min_negatives=2)[1].nonzero().flatten().tolist() == [
        6,
        7,
    ]


@pytest.mark.parametrize("classification", ["cross_entropy", "focal"])
def test_loss_is_finite_with_empty_targets_and_gradients_reach_the_backbone(classification: str) -> None:
    model = create_detector(
        "ssdlite", backbone="mobilenet_v1", num_classes=4, width_mult=0.25, loss={"classification": classification}
    )
    outputs = model(torch.randn(2, 3, 128, 128))
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}
    losses = model.loss(outputs, [empty, empty])
    assert torch.isfinite(losses["loss"]) and losses["num_positives"] == 0
    assert losses["loss_box"] == 0
    one = {"boxes": torch.tensor([[10.0, 20, 70, 90]]), "labels": torch.tensor([3])}
    losses = model.loss(model(torch.randn(2, 3, 128, 128)), [one, empty])
    assert torch.isfinite(losses["loss"]) and losses["num_positives"] > 0 and losses["loss_box"] > 0
    losses["loss"].backward()
    first_conv = model.backbone.layers.Conv2d_0.conv.weight
    assert first_conv.grad is not None and first_conv.grad.abs().sum() > 0


def test_cross_entropy_loss_matches_a_hand_computation() -> None:
    logits = torch.tensor([[[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0], [0.5, 0.5]]])
    cls_targets = torch.tensor([[1, 0, 0, 0, 0]])
    boxes = torch.zeros(1, 5, 4)
    targets = torch.zeros(1, 5, 4)
    targets[0, 0] = torch.tensor([0.5, 2.0, 0.0, 0.0])
    out = ssd_loss(logits, boxes, cls_targets, targets, neg_pos_ratio=3)
    ce = torch.nn.functional.cross_entropy(logits[0], torch.zeros(5, dtype=torch.long), reduction="none")
    positive = -torch.log_softmax(logits[0, 0], -1)[1]
    negatives = ce[[3, 1, 4]].sum()  # the three highest-loss negatives: anchors 3, 1, 4
    assert float(out["loss_cls"]) == pytest.approx(float(positive + negatives), rel=1e-6)
    assert float(out["loss_box"]) == pytest.approx(0.5 * 0.5**2 + (2.0 - 0.5), rel=1e-6)  # smooth L1, beta 1


def test_detector_rejects_bad_options_with_their_names() -> None:
    with pytest.raises(ConfigError, match="unknown detector head"):
        create_detector("yolo")
    with pytest.raises(ConfigError, match="no_such"):
        create_detector("ssdlite", width_mult=0.25, loss={"no_such": 1})
    with pytest.raises(ConfigError, match="output_stride"):
        create_detector("ssdlite", width_mult=0.25, output_stride=16)
    with pytest.raises(ConfigError, match="num_classes"):
        create_detector("ssdlite", width_mult=0.25, num_classes=1)
    with pytest.raises(ConfigError, match="did you mean"):
        detector_preset("ssdlite320_mobilenet_v3")


def test_predictions_are_sorted_capped_and_inside_the_image() -> None:
    model = create_detector(
        "ssdlite", backbone="mobilenet_v1", num_classes=3, width_mult=0.25, postprocess={"max_detections": 7}
    ).eval()
    with torch.no_grad():
        (det,) = model.predict(model(torch.randn(1, 3, 96, 128)), (96, 128))
    assert len(det["boxes"]) == 7
    assert torch.all(det["scores"][:-1] >= det["scores"][1:])
    assert det["boxes"][:, 0::2].min() >= 0 and det["boxes"][:, 0::2].max() <= 128
    assert det["boxes"][:, 1::2].max() <= 96 and set(det["labels"].tolist()) <= {1, 2}
