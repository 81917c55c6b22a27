"""``SSDDetector``: a MobileNet backbone, SSD extra layers, box predictors, anchors, loss and decoding.

The head contract (ARCHITECTURE.md, "Layers"): ``forward(images) -> dict`` of raw outputs (class logits, box offsets
and the anchors they refer to), ``loss(outputs, targets) -> dict`` and ``predict(outputs, image_size)``
-> boxes, scores and labels per image. Anchors follow the feature-map sizes the backbone really
produces, so any input size works. Built by ``mobivision.create_detector``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from mobivision.backbones.features import Backbone
from mobivision.detection.anchors import AnchorGenerator
from mobivision.detection.loss import CLASSIFICATION_LOSSES, ssd_loss
from mobivision.detection.postprocess import decode_detections
from mobivision.detection.targets import BOX_CODER_WEIGHTS, build_targets, make_box_coder
from mobivision.errors import ConfigError
from mobivision.heads.ssd import SSDExtraLayers, SSDPredictor


@dataclass(frozen=True)
class LossOptions:
    """Matching and loss settings (SSD paper Sec. 2.2; ``ssd_mobilenet_v1_coco``)."""

    iou_threshold: float = 0.5
    box_coder_weights: tuple[float, float, float, float] = BOX_CODER_WEIGHTS
    classification: str = "cross_entropy"
    neg_pos_ratio: float = 3.0
    min_negatives: int = 0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    box_weight: float = 1.0


@dataclass(frozen=True)
class PostprocessOptions:
    """Decoding settings: score threshold, per-class NMS IoU, candidates per class, detections kept."""

    score_threshold: float = 0.001
    nms_iou: float = 0.6
    topk_candidates: int = 100
    max_detections: int = 100


def options_from(cls: type, values: dict[str, Any] | None, where: str):
    """Build an options dataclass, naming an unknown key instead of raising a bare TypeError."""
    values = dict(values or {})
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; expected some of {sorted(known)}")
    if "box_coder_weights" in values:
        values["box_coder_weights"] = tuple(float(w) for w in values["box_coder_weights"])
    return cls(**values)


class SSDDetector(nn.Module):
    """SSD / SSDLite on a MobileNet backbone.

    Args:
        backbone: Returns the two tapped feature maps (stride 16 and 32).
        num_classes: Classes including background at index 0 (COCO: 91 with TF's label map, 81 contiguous).
        extras: Extra stride-2 layers after the last tap.
        predictor_kernel_size: 1 (SSD as in ``ssd_mobilenet_v1_coco``) or 3 (SSDLite).
        depthwise_predictors: SSDLite predictors.
        anchors: Default box generator with one level per feature map.
        loss: Matching and loss options.
        postprocess: Decoding options.
        pretrained_cfg: What inference needs (architecture, resolution, mean/std, label map).
    """

    def __init__(
        self,
        backbone: Backbone,
        *,
        num_classes: int,
        extras: SSDExtraLayers,
        predictor_kernel_size: int,
        depthwise_predictors: bool,
        anchors: AnchorGenerator,
        loss: LossOptions,
        postprocess: PostprocessOptions,
        pretrained_cfg: dict[str, Any],
    ) -> None:
        super().__init__()
        if loss.classification not in CLASSIFICATION_LOSSES:
            raise ConfigError(
                f"loss.classification must be one of {CLASSIFICATION_LOSSES}, got {loss.classification!r}"
            )
        self.backbone = backbone
        self.extras = extras
        channels = [spec.channels for spec in backbone.feature_specs.values()] + extras.out_channels
        num_anchors = anchors.num_anchors_per_location()
        if len(channels) != len(num_anchors):
            raise ConfigError(f"{len(channels)} feature maps but anchors for {len(num_anchors)} levels")
        bn = next(m for m in backbone.modules() if isinstance(m, nn.BatchNorm2d))
        predictor = {
            "kernel_size": predictor_kernel_size,
            "depthwise": depthwise_predictors,
            "bn_eps": bn.eps,
            "bn_momentum": bn.momentum,
        }
        # Focal loss starts from a 1% foreground prior (RetinaNet Sec. 4.1) so background does not swamp it.
        prior_bias = -4.59512 if loss.classification == "focal" else 0.0
        self.classifier = SSDPredictor(channels, num_anchors, num_classes, bias_init=prior_bias, **predictor)
        self.box_regressor = SSDPredictor(channels, num_anchors, 4, **predictor)
        self.anchor_generator = anchors
        self.loss_options = loss
        self.postprocess_options = postprocess
        self.box_coder = make_box_coder(loss.box_coder_weights)
        self.num_classes = num_classes
        self.pretrained_cfg = dict(pretrained_cfg)
        self.feature_names = list(backbone.out_features)  # the two taps (a shared backbone may return more)

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Backbone taps followed by the extra layers' outputs, high to low resolution."""
        return self._levels(self.backbone(images))

    def _levels(self, features: dict[str, torch.Tensor]) -> list[torch.Tensor]:
        taps = [features[name] for name in self.feature_names]
        return taps + self.extras(taps[-1])

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"cls_logits" [B,A,C], "bbox_regression" [B,A,4], "anchors" [A,4] xyxy input pixels}``."""
        return self.forward_from_features(self.backbone(images), images)

    def forward_from_features(self, features: dict[str, torch.Tensor], images: torch.Tensor) -> dict[str, torch.Tensor]:
        """``forward`` from the backbone's feature maps (``images`` gives the input size, device and dtype): the
        multi-task model runs the backbone once for every head (``mobivision.multitask``)."""
        features = self._levels(features)
        anchors = self.anchor_generator([f.shape[-2:] for f in features], tuple(images.shape[-2:]))
        return {
            "cls_logits": self.classifier(features),
            "bbox_regression": self.box_regressor(features),
            "anchors": anchors.to(device=images.device, dtype=images.dtype),
        }

    def loss(self, outputs: dict[str, torch.Tensor], targets: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Matched targets and the SSD loss; ``targets`` hold xyxy ``boxes`` and 1-based ``labels``."""
        options = self.loss_options
        cls_targets, box_targets = build_targets(
            targets, outputs["anchors"].float(), box_coder=self.box_coder, iou_threshold=options.iou_threshold
        )
        return ssd_loss(
            outputs["cls_logits"].float(),
            outputs["bbox_regression"].float(),
            cls_targets,
            box_targets,
            classification=options.classification,
            neg_pos_ratio=options.neg_pos_ratio,
            min_negatives=options.min_negatives,
            focal_alpha=options.focal_alpha,
            focal_gamma=options.focal_gamma,
            box_weight=options.box_weight,
        )

    @torch.no_grad()
    def predict(self, outputs: dict[str, torch.Tensor], image_size: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
        """Detections per image in input pixels, best first."""
        return decode_detections(
            outputs["cls_logits"].float(),
            outputs["bbox_regression"].float(),
            outputs["anchors"].float(),
            image_size=image_size,
            box_coder=self.box_coder,
            classification=self.loss_options.classification,
            **asdict(self.postprocess_options),
        )
