"""Public constructors: ``create_model``, ``create_backbone``, ``create_detector``, ``create_attribute_model``,
``create_geolocator`` and their ``list_*``.

Each architecture is registered once (``_ARCHS``: backbone builder, endpoints, classifier head shape, input
normalisation, the options it takes) and each detector name once (``_DETECTORS``); the constructors read
those records and never test names, so adding a model is one entry.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from torch import nn
from torchvision.models._utils import _make_divisible

from mobivision.backbones.features import Backbone
from mobivision.backbones.mobilenet_v1 import MobileNetV1Backbone
from mobivision.backbones.pretrained import LoadedWeights, load_into, read_weights
from mobivision.backbones.torchvision_mobilenets import TorchvisionMobileNetBackbone
from mobivision.classifier import ImageClassifier
from mobivision.detection.anchors import AnchorGenerator
from mobivision.detector import LossOptions, PostprocessOptions, SSDDetector, options_from
from mobivision.errors import ConfigError
from mobivision.heads.classification import ClassifierHead
from mobivision.heads.geo import GeoLocator
from mobivision.heads.ssd import PREDICTOR_INIT_STD, SSDExtraLayers
from mobivision.layers import TF_BN_MOMENTUM

if TYPE_CHECKING:
    from typing_extensions import Unpack

INCEPTION_MEAN_STD = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # TF-Slim / Keras: pixels scaled to [-1, 1]
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# Options only some architectures take, with the value that means "not used".
_SPECIFIC_OPTIONS: dict[str, Any] = {"reduced_tail": False, "padding": "symmetric", "min_depth": 8}


def _mobilenet_v1_backbone(
    name: str, *, bn_eps: float | None, bn_momentum: float | None, **options: Any
) -> MobileNetV1Backbone:
    """MobileNetV1's builder; BatchNorm defaults to PyTorch's."""
    return MobileNetV1Backbone(
        bn_eps=1e-5 if bn_eps is None else bn_eps, bn_momentum=0.1 if bn_momentum is None else bn_momentum, **options
    )


@dataclass(frozen=True)
class _Arch:
    """Everything the constructors know about one architecture."""

    build: Callable[..., Backbone]  # (name, width_mult=, output_stride=, bn_eps=, bn_momentum=, out_features=, ...)
    classifier_tap: str  # endpoint the classifier pools; "{stride}" is min(output_stride, 32)
    detector_taps: tuple[str, str]  # stride 16 and 32 (the SSDLite "C4" tap is the expansion layer)
    mean_std: tuple[tuple[float, ...], tuple[float, ...]]
    dropout: float
    hidden_channels: int | None = None  # pre-logits layer of the classifier
    hidden_scales_with_width: bool = False  # as torchvision's MobileNetV3 last channel
    options: frozenset[str] = frozenset()  # those of ``_SPECIFIC_OPTIONS`` it takes (passed on to ``build``)
    padding_from_weights: bool = False  # the weights' metadata may set padding and BatchNorm epsilon


_MOBILENET_V2 = _Arch(
    build=TorchvisionMobileNetBackbone,
    classifier_tap="stride{stride}",
    detector_taps=("stride16_expansion", "stride32"),
    mean_std=IMAGENET_MEAN_STD,
    dropout=0.2,
)
_MOBILENET_V3_LARGE = replace(
    _MOBILENET_V2, hidden_channels=1280, hidden_scales_with_width=True, options=frozenset({"reduced_tail"})
)
_ARCHS: dict[str, _Arch] = {
    "mobilenet_v1": _Arch(
        build=_mobilenet_v1_backbone,
        classifier_tap="Conv2d_13_pointwise",
        detector_taps=("Conv2d_11_pointwise", "Conv2d_13_pointwise"),
        mean_std=INCEPTION_MEAN_STD,
        dropout=0.001,  # TF-Slim's dropout_keep_prob=0.999
        options=frozenset({"padding", "min_depth"}),
        padding_from_weights=True,
    ),
    "mobilenet_v2": _MOBILENET_V2,
    "mobilenet_v3_large": _MOBILENET_V3_LARGE,
    "mobilenet_v3_small": replace(_MOBILENET_V3_LARGE, hidden_channels=1024),
}

_T = TypeVar("_T")


def _lookup(table: dict[str, _T], name: str, what: str) -> _T:
    """``table[name]``, or a ConfigError suggesting the closest name."""
    if name not in table:
        close = difflib.get_close_matches(str(name), table, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown {what} {name!r}{hint}; expected one of {sorted(table)}")
    return table[name]


def _check_count(what: str, value: Any, minimum: int, meaning: str = "") -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{what} must be an integer >= {minimum}{meaning}, got {value!r}")


def list_models() -> list[str]:
    """Names accepted by ``create_model``, ``create_backbone`` and the ``backbone`` of the other constructors."""
    return sorted(_ARCHS)


def last_feature_map(name: str) -> str:
    """The endpoint of backbone ``name`` a classifier-like head reads at output stride 32."""
    return _lookup(_ARCHS, name, "model").classifier_tap.format(stride=32)


def detector_taps(name: str) -> tuple[str, ...]:
    """The endpoints of backbone ``name`` an SSD detector reads: its stride 16 and 32 taps."""
    return _lookup(_ARCHS, name, "model").detector_taps


def default_mean_std(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Input normalisation (mean, std on [0, 1] pixels) that ``name``'s reference weights expect."""
    return _lookup(_ARCHS, name, "model").mean_std


def _norm_and_padding(
    arch: _Arch, weights: LoadedWeights | None, padding: str | None, bn_eps: float | None, bn_momentum: float | None
) -> tuple[str, float | None, float | None]:
    """Padding and BatchNorm settings: explicit arguments win, then what the weights were trained with.

    Weights trained in TensorFlow (TF-Slim, Keras, or our files converted from them) need TF 'SAME'
    padding and TF's BatchNorm epsilon to reproduce TensorFlow's outputs. MobileNetV2/V3 fix their own.
    """
    meta = weights.metadata if weights is not None and arch.padding_from_weights else {}
    tf_trained = weights is not None and (
        weights.source_format in ("tf_slim", "keras") or meta.get("source_format") in ("tf_slim", "keras")
    )
    padding = padding or meta.get("padding") or ("tf" if tf_trained else "symmetric")
    if bn_eps is None and "bn_eps" in meta:
        bn_eps = float(meta["bn_eps"])
    if bn_momentum is None and tf_trained:
        bn_momentum = TF_BN_MOMENTUM
    return padding, bn_eps, bn_momentum


def _new_backbone(
    name: str,
    pretrained: str | Path | None,
    *,
    width_mult: float,
    out_features: list[str] | tuple[str, ...] | None,
    output_stride: int,
    min_depth: int,
    padding: str | None,
    bn_eps: float | None,
    bn_momentum: float | None,
    reduced_tail: bool = False,
) -> tuple[Backbone, LoadedWeights | None]:
    """The registered backbone (random weights) and the read ``pretrained`` weights, not loaded yet."""
    arch = _ARCHS[name]
    weights = read_weights(pretrained) if pretrained is not None else None
    padding, bn_eps, bn_momentum = _norm_and_padding(arch, weights, padding, bn_eps, bn_momentum)
    specific = {"reduced_tail": reduced_tail, "padding": padding, "min_depth": min_depth}
    for option, unused in _SPECIFIC_OPTIONS.items():
        if option not in arch.options and specific[option] != unused:
            takers = [n for n, a in _ARCHS.items() if option in a.options]
            raise ConfigError(f"{name}: {option} applies to {takers} only, got {option}={specific[option]!r}")
    backbone = arch.build(
        name,
        width_mult=width_mult,
        output_stride=output_stride,
        bn_eps=bn_eps,
        bn_momentum=bn_momentum,
        out_features=out_features,
        **{k: v for k, v in specific.items() if k in arch.options},
    )
    return backbone, weights


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
    arch = _lookup(_ARCHS, name, "model")
    _check_count("num_classes", num_classes, 0)
    backbone, weights = _new_backbone(
        name,
        pretrained,
        width_mult=width_mult,
        out_features=[arch.classifier_tap.format(stride=min(output_stride, 32))],
        output_stride=output_stride,
        min_depth=min_depth,
        padding=padding,
        bn_eps=bn_eps,
        bn_momentum=bn_momentum,
    )
    hidden = arch.hidden_channels
    if hidden is not None and arch.hidden_scales_with_width:
        hidden = _make_divisible(hidden * width_mult, 8)
    head = ClassifierHead(
        backbone.feature_specs[backbone.out_features[-1]].channels,
        num_classes=num_classes,
        hidden_channels=hidden,
        dropout=arch.dropout if dropout is None else dropout,
    )
    mean, std = default_mean_std(name)
    model = ImageClassifier(
        backbone,
        head,
        pretrained_cfg={
            "architecture": name,
            "width_mult": width_mult,
            "padding": getattr(backbone, "padding", "symmetric"),
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
    _lookup(_ARCHS, name, "model")
    backbone, weights = _new_backbone(
        name,
        pretrained,
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


class BackboneOptions(TypedDict, total=False):
    """``create_model``'s backbone options, as taken by ``create_attribute_model`` and ``create_geolocator``."""

    width_mult: float
    pretrained: str | Path | None
    output_stride: int
    min_depth: int
    padding: str | None
    bn_eps: float | None
    bn_momentum: float | None


def create_attribute_model(
    backbone: str = "mobilenet_v1",
    *,
    num_attributes: int,
    dropout: float | None = None,
    **options: Unpack[BackboneOptions],
) -> ImageClassifier:
    """Multi-label network (MobileNets paper Sec. 4.5): one independent sigmoid logit per attribute.

    ``pretrained_cfg["score_function"]`` is ``"sigmoid"``; see ``create_model`` for the other arguments.
    """
    _check_count("num_attributes", num_attributes, 1)
    model = create_model(backbone, num_classes=num_attributes, dropout=dropout, **options)
    model.pretrained_cfg["score_function"] = "sigmoid"
    return model


def create_geolocator(
    backbone: str = "mobilenet_v1",
    *,
    cells_per_partition: Sequence[int],
    dropout: float = 0.0,
    **options: Unpack[BackboneOptions],
) -> GeoLocator:
    """PlaNet geolocation network (MobileNets paper Sec. 4.4): one cell classifier per partitioning.

    ``cells_per_partition`` gives each partitioning's cell count, coarsest first; ``dropout`` applies to the
    pooled features before the cell classifiers. See ``create_model`` for the other arguments.
    """
    return GeoLocator(create_model(backbone, num_classes=0, **options), cells_per_partition, dropout=dropout)


@dataclass(frozen=True)
class _DetectorHead:
    """What distinguishes SSD (TF Object Detection API) from SSDLite (MobileNetV2 paper, torchvision)."""

    name: str
    depthwise: bool
    predictor_kernel_size: int
    anchors: dict[str, Any]
    postprocess: dict[str, Any]
    # BatchNorm of every layer: torchvision's SSDLite uses eps 1e-3, momentum 0.03; TF uses eps 1e-3 with
    # decay 0.9997 (momentum 3e-4), which only suits runs of 100k+ steps, so SSD uses 0.03 too (configurable).
    bn_eps: float = 1e-3
    bn_momentum: float = 0.03


# ssd_mobilenet_v1_coco.config: 1x1 box predictor, ssd_anchor_generator, NMS 0.6, 100 detections.
_SSD = _DetectorHead(
    "ssd",
    depthwise=False,
    predictor_kernel_size=1,
    anchors={"layout": "tf", "aspect_ratios": (1.0, 2.0, 0.5, 3.0, 0.3333), "reduce_lowest_level": True, "clip": False},
    postprocess={"score_threshold": 0.001, "nms_iou": 0.6, "topk_candidates": 100, "max_detections": 100},
)
# torchvision's ssdlite320_mobilenet_v3_large: DefaultBoxGenerator([[2, 3]] * 6), NMS 0.55, 300 detections.
_SSDLITE = _DetectorHead(
    "ssdlite",
    depthwise=True,
    predictor_kernel_size=3,
    anchors={"layout": "torchvision", "aspect_ratios": (2.0, 3.0), "reduce_lowest_level": False, "clip": True},
    postprocess={"score_threshold": 0.001, "nms_iou": 0.55, "topk_candidates": 300, "max_detections": 300},
)


@dataclass(frozen=True)
class _Detector:
    """A name ``create_detector`` accepts: a head on the ``backbone`` argument, or a preset that fixes it."""

    head: _DetectorHead
    backbone: str  # the preset's backbone, or the head's default one
    resolution: int  # default of the ``resolution`` argument
    preset: bool = True


_DETECTORS: dict[str, _Detector] = {
    "ssd": _Detector(_SSD, "mobilenet_v1", 320, preset=False),
    "ssdlite": _Detector(_SSDLITE, "mobilenet_v1", 320, preset=False),
    "ssd300_mobilenet_v1": _Detector(_SSD, "mobilenet_v1", 300),
    "ssdlite320_mobilenet_v1": _Detector(_SSDLITE, "mobilenet_v1", 320),
    "ssdlite320_mobilenet_v2": _Detector(_SSDLITE, "mobilenet_v2", 320),
    "ssdlite320_mobilenet_v3_large": _Detector(_SSDLITE, "mobilenet_v3_large", 320),
    "ssdlite320_mobilenet_v3_small": _Detector(_SSDLITE, "mobilenet_v3_small", 320),
}


def list_detectors() -> list[str]:
    """Named detector presets, each accepted by ``create_detector`` (which also takes the heads ``ssd``/``ssdlite``)."""
    return sorted(name for name, detector in _DETECTORS.items() if detector.preset)


def detector_preset(name: str) -> dict[str, Any]:
    """``{"head", "backbone", "resolution"}`` of a named detector."""
    detector = _lookup({n: _DETECTORS[n] for n in list_detectors()}, name, "detector")
    return {"head": detector.head.name, "backbone": detector.backbone, "resolution": detector.resolution}


def create_detector(
    name: str = "ssdlite",
    *,
    backbone: str | None = None,
    num_classes: int = 91,
    resolution: int | None = None,
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
    """Build an SSD or SSDLite detector on a MobileNet backbone.

    Args:
        name: A preset of ``list_detectors()`` (it fixes head, backbone and default resolution), or a head:
            ``ssd`` (TF Object Detection API's ssd_mobilenet_v1) or ``ssdlite``.
        backbone: One of ``list_models()`` (default ``mobilenet_v1`` for a head); a preset's or nothing.
        num_classes: Classes including background (index 0).
        resolution: Default square input size, recorded for inference (any size works); default the
            preset's, 320 for a head.
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
    detector = _lookup(_DETECTORS, name, "detector head or preset")
    spec = detector.head
    if backbone is None:
        backbone = detector.backbone
    elif detector.preset and backbone != detector.backbone:
        raise ConfigError(
            f"detector {name!r} is {spec.name} on {detector.backbone}, but backbone={backbone!r} was given; "
            f"for another backbone use create_detector({spec.name!r}, backbone={backbone!r})"
        )
    _check_count("num_classes", num_classes, 2, " (background + classes)")
    if output_stride != 32:
        raise ConfigError(
            f"detectors tap stride 16 and 32 feature maps: backbone.output_stride must be 32, got {output_stride}"
        )
    arch = _lookup(_ARCHS, backbone, "model")
    body = create_backbone(
        backbone,
        width_mult=width_mult,
        out_features=arch.detector_taps,
        pretrained=pretrained,
        min_depth=min_depth,
        padding=padding,
        bn_eps=spec.bn_eps if bn_eps is None else bn_eps,
        bn_momentum=spec.bn_momentum if bn_momentum is None else bn_momentum,
        reduced_tail=("reduced_tail" in arch.options and pretrained is None)
        if reduced_tail is None
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
    mean, std = default_mean_std(backbone)
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
            "architecture": f"{spec.name}_{backbone}",
            "head": spec.name,
            "backbone": backbone,
            "width_mult": width_mult,
            "resolution": detector.resolution if resolution is None else resolution,
            "num_classes": num_classes,
            "mean": list(mean),
            "std": list(std),
            "bn_eps": bn.eps,
        },
    )
