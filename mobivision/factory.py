"""Public constructors: ``create_model``, ``create_backbone``, ``list_models``.

One registry describes each architecture once (its backbone builder, classifier head shape and input
normalisation); both constructors read from it so there is a single place to add a model.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from mobivision.backbones.features import Backbone
from mobivision.backbones.mobilenet_v1 import MobileNetV1Backbone
from mobivision.backbones.pretrained import LoadedWeights, load_into, read_weights
from mobivision.backbones.torchvision_mobilenets import TorchvisionMobileNetBackbone
from mobivision.classifier import ImageClassifier
from mobivision.errors import ConfigError
from mobivision.heads.classification import ClassifierHead
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
    if padding != "symmetric" or bn_eps is not None or bn_momentum is not None or min_depth != 8:
        raise ConfigError(
            f"{name}: padding, bn_eps, bn_momentum and min_depth are MobileNetV1 options; "
            "torchvision's MobileNetV2/V3 fix them"
        )
    return TorchvisionMobileNetBackbone(
        name, width_mult=width_mult, output_stride=output_stride, out_features=out_features
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
) -> Backbone:
    """Build a backbone returning ``dict[name, Tensor]`` with declared ``feature_specs``.

    Pretrained classifier weights of any supported format load into the body; their head is ignored.
    See ``create_model`` for the arguments.
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
    )
    _init_weights(backbone)
    if weights is not None:
        load_into(backbone, weights, arch=name, prefix="backbone.")
    return backbone
