"""Public constructors: ``create_model``, ``create_backbone``, ``create_detector`` and their ``list_*``.

One registry describes each architecture once (its backbone builder, classifier head shape and input
normalisation); both constructors read from it so there is a single place to add a model.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from mobivision.backbones.features import Backbone
from mobivision.backbones.mobilenet_v1 import MobileNetV1Backbone
from mobivision.backbones.pretrained import LoadedWeights, load_into, read_weights
from mobivision.backbones.torchvision_mobilenets import TorchvisionMobileNetBackbone
from mobivision.classifier import ImageClassifier
from mobivision.detection.anchors import AnchorGenerator
from mobivision.detector import LossOptions, PostprocessOptions, SSDDetector, options_from
from mobivision.errors import ConfigError
from mobivision.heads.classification import ClassifierHead
from mobivision.heads.ssd import PREDICTOR_INIT_STD, SSDExtraLayers
from mobivision.layers import TF_BN_MOMENTUM

INCEPTION_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # TF-Slim / Keras: pixels scaled to [-1, 1]
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass(frozen=True)
class _Arch:
    classifier_tap: str
    hidden_channels: int | None  # MobileNetV3's pre-logits layer, scaled by width like torchvision
    dropout: float
    mean_std: tuple[tuple[float, ...], tuple[float, ...]]


_ARCHS: dict[str, _Arch] = {
    # TF-Slim's dropout_keep_prob=0.999.
    "mobilenet_v1": _Arch("Conv2d_13_pointwise", None, 0.001, INCEPTION_MEAN_STD),
    "mobilenet_v2": _Arch("stride32", None, 0.2, IMAGENET_MEAN_STD),
    "mobilenet_v3_large": _Arch("stride32", 1280, 0.2, IMAGENET_MEAN_STD),
    "mobilenet_v3_small": _Arch("stride32", 1024, 0.2, IMAGENET_MEAN_STD),
}


def list_models() -> list[str]:
    """Names accepted by ``create_model`` and ``create_backbone``."""
    return sorted(_ARCHS)


def default_mean_std(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Input normalisation (mean, std on [0, 1] pixels) that ``name``'s reference weights expect."""
    return _check_name(name).mean_std


def _check_name(name: str) -> _Arch:
    if name not in _ARCHS:
        close = difflib.get_close_matches(str(name), _ARCHS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown model {name!r}{hint}; expected one of {list_models()}")
    return _ARCHS[name]


def _build_backbone(
    name: str,
    *,
    width_mult: float,
    out_features: list[str] | tuple[str, ...] | None,
    output_stride: int,
    min_depth: int,
    padding: str,
    bn_eps: float | None,
    bn_momentum: float | None,
    reduced_tail: bool = False,
) -> Backbone:
    if name == "mobilenet_v1":
        return MobileNetV1Backbone(
            width_mult=width_mult,
            min_depth=min_depth,
            output_stride=output_stride,
            padding=padding,
            bn_eps=1e-5 if bn_eps is None else bn_eps,
            bn_momentum=0.1 if bn_momentum is None else bn_momentum,
            out_features=out_features,
        )
    if reduced_tail and name != "mobilenet_v3_large" and name != "mobilenet_v3_small":
        raise ConfigError(f"{name}: reduced_tail is a MobileNetV3 option")
    if padding != "symmetric" or min_depth != 8:
        raise ConfigError(
            f"{name}: padding and min_depth are MobileNetV1 options; torchvision's MobileNetV2/V3 fix them"
        )
    return TorchvisionMobileNetBackbone(
        name,
        width_mult=width_mult,
        output_stride=output_stride,
        bn_eps=bn_eps,
        bn_momentum=bn_momentum,
        reduced_tail=reduced_tail,
        out_features=out_features,
    )


def _init_weights(module: nn.Module) -> None:
    """He init for convs (fan-out, as torchvision's MobileNets), unit BatchNorm."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _norm_and_padding(
    name: str, weights: LoadedWeights | None, padding: str | None, bn_eps: float | None, bn_momentum: float | None
) -> tuple[str, float | None, float | None]:
    """Padding and BatchNorm settings: explicit arguments win, then what the weights were trained with.

    Weights trained in TensorFlow (TF-Slim, Keras, or our files converted from them) need TF 'SAME'
    padding and TF's BatchNorm epsilon to reproduce TensorFlow's outputs. MobileNetV2/V3 fix their own.
    """
    meta = weights.metadata if weights is not None and name == "mobilenet_v1" else {}
    tf_trained = weights is not None and (
        weights.source_format in ("tf_slim", "keras") or meta.get("source_format") in ("tf_slim", "keras")
    )
    padding = padding or meta.get("padding") or ("tf" if tf_trained else "symmetric")
    if bn_eps is None and "bn_eps" in meta:
        bn_eps = float(meta["bn_eps"])
    if bn_momentum is None and tf_trained:
        bn_momentum = TF_BN_MOMENTUM
    return padding, bn_eps, bn_momentum


def create_model(
    name: str,
    *,
    width_mult: float = 1.0,
    num_classes: int = 1000,
    pretrained: str | Path | None = None,
    dropout: float | None = None,
    output_stride: int = 32,
    min_depth: int = 8,
    padding: str | None = None,
    bn_eps: float | None = None,
    bn_momentum: float | None = None,
) -> ImageClassifier:
    """Build a classifier, optionally from pretrained weights.

    Args:
        name: One of ``list_models()``.
        width_mult: Width multiplier alpha (paper Sec. 3.3).
        num_classes: Logits; if it differs from the weights' classes the classifier is re-initialised
            and the skipped keys are reported (1001-class TF-Slim weights into 1000 drop the background).
        pretrained: Local file, folder or URL of weights in any format ``read_weights`` detects.
        dropout: Dropout before the logits (architecture default when None).
        output_stride: 32, or 8/16 with dilation (MobileNetV1), 16 (MobileNetV3).
        min_depth: MobileNetV1's smallest channel count.
        padding: ``"symmetric"`` or ``"tf"``; default ``"tf"`` for TF-Slim/Keras weights, else symmetric.
        bn_eps: BatchNorm epsilon (default 1e-5, or TF's 1e-3 for TF-Slim/Keras weights).
        bn_momentum: BatchNorm momentum, PyTorch convention.

    Returns:
        An ``ImageClassifier`` in training mode.
    """
    arch = _check_name(name)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 0:
        raise ConfigError(f"num_classes must be an integer >= 0, got {num_classes!r}")
    weights = read_weights(pretrained) if pretrained is not None else None
    padding, bn_eps, bn_momentum = _norm_and_padding(name, weights, padding, bn_eps, bn_momentum)
    backbone = _build_backbone(
        name,
        width_mult=width_mult,
        out_features=[_classifier_tap(name, arch, output_stride)],
        output_stride=output_stride,
        min_depth=min_depth,
        padding=padding,
        bn_eps=bn_eps,
        bn_momentum=bn_momentum,
    )
    hidden = arch.hidden_channels
    if hidden is not None and name.startswith("mobilenet_v3"):
        hidden = _v3_hidden_channels(hidden, width_mult)
    head = ClassifierHead(
        backbone.feature_specs[backbone.out_features[-1]].channels,
        num_classes=num_classes,
        hidden_channels=hidden,
        dropout=arch.dropout if dropout is None else dropout,
    )
    mean, std = arch.mean_std
    model = ImageClassifier(
        backbone,
        head,
        pretrained_cfg={
            "architecture": name,
            "width_mult": width_mult,
            "padding": padding,
            "bn_eps": backbone_bn_eps(backbone),
            "mean": list(mean),
            "std": list(std),
            "num_classes": num_classes,
            "label_offset": 0,
        },
    )
    _init_weights(model)
    if weights is not None:
        load_into(model, weights, arch=name)
    return model


def _classifier_tap(name: str, arch: _Arch, output_stride: int) -> str:
    """The endpoint the classifier pools: MobileNetV2/V3's last tap is named by its (dilated) stride."""
    return arch.classifier_tap if name == "mobilenet_v1" else f"stride{min(output_stride, 32)}"


def _v3_hidden_channels(hidden: int, width_mult: float) -> int:
    """torchvision scales MobileNetV3's last channel with the width multiplier."""
    from torchvision.models._utils import _make_divisible

    return _make_divisible(hidden * width_mult, 8)


def backbone_bn_eps(backbone: nn.Module) -> float:
    """Epsilon of the backbone's first BatchNorm."""
    return next(m.eps for m in backbone.modules() if isinstance(m, nn.BatchNorm2d))


def create_backbone(
    name: str,
    *,
    width_mult: float = 1.0,
    out_features: list[str] | tuple[str, ...] | None = None,
    pretrained: str | Path | None = None,
    output_stride: int = 32,
    min_depth: int = 8,
    padding: str | None = None,
    bn_eps: float | None = None,
    bn_momentum: float | None = None,
    reduced_tail: bool = False,
) -> Backbone:
    """Build a backbone returning ``dict[name, Tensor]`` with declared ``feature_specs``.

    Pretrained classifier weights of any supported format load into the body; their head is ignored.
    See ``create_model`` for the arguments; ``reduced_tail`` halves MobileNetV3's last stage.
    """
    _check_name(name)
    weights = read_weights(pretrained) if pretrained is not None else None
    padding, bn_eps, bn_momentum = _norm_and_padding(name, weights, padding, bn_eps, bn_momentum)
    backbone = _build_backbone(
        name,
        width_mult=width_mult,
        out_features=out_features,
        output_stride=output_stride,
        min_depth=min_depth,
        padding=padding,
        bn_eps=bn_eps,
        bn_momentum=bn_momentum,
        reduced_tail=reduced_tail,
    )
    _init_weights(backbone)
    if weights is not None:
        load_into(backbone, weights, arch=name, prefix="backbone.")
    return backbone


@dataclass(frozen=True)
class _DetectorHead:
    """What distinguishes SSD (TF Object Detection API) from SSDLite (MobileNetV2 paper, torchvision)."""

    depthwise: bool
    predictor_kernel_size: int
    anchors: dict[str, Any]
    postprocess: dict[str, Any]
    # BatchNorm of every layer: torchvision's SSDLite uses eps 1e-3, momentum 0.03; TF uses eps 1e-3 with
    # decay 0.9997 (momentum 3e-4), which only suits runs of 100k+ steps, so SSD uses 0.03 too (configurable).
    bn_eps: float = 1e-3
    bn_momentum: float = 0.03


_DETECTOR_HEADS: dict[str, _DetectorHead] = {
    # ssd_mobilenet_v1_coco.config: 1x1 box predictor, ssd_anchor_generator, NMS 0.6, 100 detections.
    "ssd": _DetectorHead(
        depthwise=False,
        predictor_kernel_size=1,
        anchors={
            "layout": "tf",
            "aspect_ratios": (1.0, 2.0, 0.5, 3.0, 0.3333),
            "reduce_lowest_level": True,
            "clip": False,
        },
        postprocess={"score_threshold": 0.001, "nms_iou": 0.6, "topk_candidates": 100, "max_detections": 100},
    ),
    # torchvision's ssdlite320_mobilenet_v3_large: DefaultBoxGenerator([[2, 3]] * 6), NMS 0.55, 300 detections.
    "ssdlite": _DetectorHead(
        depthwise=True,
        predictor_kernel_size=3,
        anchors={"layout": "torchvision", "aspect_ratios": (2.0, 3.0), "reduce_lowest_level": False, "clip": True},
        postprocess={"score_threshold": 0.001, "nms_iou": 0.55, "topk_candidates": 300, "max_detections": 300},
    ),
}

# Backbone endpoints the detector taps: stride 16 and 32 (the SSDLite "C4" tap is the expansion layer).
_DETECTOR_TAPS = {
    "mobilenet_v1": ("Conv2d_11_pointwise", "Conv2d_13_pointwise"),
    "mobilenet_v2": ("stride16_expansion", "stride32"),
    "mobilenet_v3_large": ("stride16_expansion", "stride32"),
    "mobilenet_v3_small": ("stride16_expansion", "stride32"),
}

_DETECTORS = {
    "ssd300_mobilenet_v1": ("ssd", "mobilenet_v1", 300),
    "ssdlite320_mobilenet_v1": ("ssdlite", "mobilenet_v1", 320),
    "ssdlite320_mobilenet_v2": ("ssdlite", "mobilenet_v2", 320),
    "ssdlite320_mobilenet_v3_large": ("ssdlite", "mobilenet_v3_large", 320),
    "ssdlite320_mobilenet_v3_small": ("ssdlite", "mobilenet_v3_small", 320),
}


def list_detectors() -> list[str]:
    """Named detector presets: ``create_detector(**detector_preset(name))``."""
    return sorted(_DETECTORS)


def detector_preset(name: str) -> dict[str, Any]:
    """``{"head", "backbone", "resolution"}`` of a named detector."""
    if name not in _DETECTORS:
        close = difflib.get_close_matches(str(name), _DETECTORS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown detector {name!r}{hint}; expected one of {list_detectors()}")
    head, backbone, resolution = _DETECTORS[name]
    return {"head": head, "backbone": backbone, "resolution": resolution}


def create_detector(
    head: str = "ssdlite",
    *,
    backbone: str = "mobilenet_v1",
    num_classes: int = 91,
    resolution: int = 320,
    width_mult: float = 1.0,
    pretrained: str | Path | None = None,
    output_stride: int = 32,
    min_depth: int = 8,
    padding: str | None = None,
    bn_eps: float | None = None,
    bn_momentum: float | None = None,
    reduced_tail: bool | None = None,
    extra_depths: tuple[int, ...] | list[int] = (512, 256, 256, 128),
    extra_min_depth: int = 16,
    anchors: dict[str, Any] | None = None,
    loss: dict[str, Any] | None = None,
    postprocess: dict[str, Any] | None = None,
) -> SSDDetector:
    """Build an SSD (``head="ssd"``) or SSDLite detector on a MobileNet backbone.

    Args:
        head: ``ssd`` (TF Object Detection API's ssd_mobilenet_v1) or ``ssdlite``.
        backbone: One of ``list_models()``.
        num_classes: Classes including background (index 0).
        resolution: Default square input size, recorded for inference (any size works).
        width_mult: Width multiplier of the backbone and the extra layers.
        pretrained: Classifier weights (any format ``read_weights`` detects) for the backbone.
        output_stride: Must be 32: SSD taps the stride-16 and stride-32 feature maps.
        min_depth / padding: Backbone options, see ``create_model``.
        bn_eps / bn_momentum: BatchNorm of all layers (default 1e-3 / 0.03, torchvision's SSDLite).
        reduced_tail: MobileNetV3's halved last stage; default as torchvision's SSDLite: on when the
            backbone is trained from scratch.
        extra_depths: Depths of the extra layers before width scaling.
        extra_min_depth: Smallest depth of an extra layer (TF's ``min_depth`` 16).
        anchors: Overrides of the head's ``AnchorGenerator`` options (``min_scale``, ``max_scale``, ...).
        loss: ``LossOptions`` overrides; postprocess: ``PostprocessOptions`` overrides.
    """
    if head not in _DETECTOR_HEADS:
        raise ConfigError(f"unknown detector head {head!r}; expected one of {sorted(_DETECTOR_HEADS)}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer >= 2 (background + classes), got {num_classes!r}")
    if output_stride != 32:
        raise ConfigError(
            f"detectors tap stride 16 and 32 feature maps: backbone.output_stride must be 32, got {output_stride}"
        )
    spec = _DETECTOR_HEADS[head]
    arch = _check_name(backbone)
    body = create_backbone(
        backbone,
        width_mult=width_mult,
        out_features=_DETECTOR_TAPS[backbone],
        pretrained=pretrained,
        min_depth=min_depth,
        padding=padding,
        bn_eps=spec.bn_eps if bn_eps is None else bn_eps,
        bn_momentum=spec.bn_momentum if bn_momentum is None else bn_momentum,
        reduced_tail=(pretrained is None)
        if reduced_tail is None and backbone.startswith("mobilenet_v3")
        else bool(reduced_tail),
    )
    bn = next(m for m in body.modules() if isinstance(m, nn.BatchNorm2d))
    extras = SSDExtraLayers(
        list(body.feature_specs.values())[-1].channels,
        tuple(extra_depths),
        depthwise=spec.depthwise,
        width_mult=width_mult,
        min_depth=extra_min_depth,
        bn_eps=bn.eps,
        bn_momentum=bn.momentum,
        padding=getattr(body, "padding", "symmetric"),
    )
    for module in extras.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, std=PREDICTOR_INIT_STD)
    anchor_options = {**spec.anchors, **dict(anchors or {})}
    try:
        generator = AnchorGenerator(num_levels=len(body.out_features) + len(extras), **anchor_options)
    except TypeError as exc:
        raise ConfigError(f"anchors: {exc}") from exc
    mean, std = arch.mean_std
    return SSDDetector(
        body,
        num_classes=num_classes,
        extras=extras,
        predictor_kernel_size=spec.predictor_kernel_size,
        depthwise_predictors=spec.depthwise,
        anchors=generator,
        loss=options_from(LossOptions, loss, "loss"),
        postprocess=options_from(PostprocessOptions, {**spec.postprocess, **dict(postprocess or {})}, "postprocess"),
        pretrained_cfg={
            "architecture": f"{head}_{backbone}",
            "head": head,
            "backbone": backbone,
            "width_mult": width_mult,
            "resolution": resolution,
            "num_classes": num_classes,
            "mean": list(mean),
            "std": list(std),
            "bn_eps": bn.eps,
        },
    )
