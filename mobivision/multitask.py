"""One backbone, many heads: ``MultiTaskModel`` runs the backbone once per batch and feeds every head.

A head is the network of a single task (``SSDDetector``, ``ImageClassifier``, ``GeoLocator``) whose ``backbone``
points at the shared one without owning it: its ``forward_from_features(features, images)`` reads the feature maps
it declares (a detector its two taps and then its extra layers, the others the last map through their own pooling),
and called on its own (``model.heads["faces"](images)``) it still runs the shared backbone. Each head keeps its
``loss`` / ``predict`` (detectors) and ``pretrained_cfg``. Built by ``create_multitask`` (ARCHITECTURE.md,
"One backbone, many heads").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobivision.backbones.features import Backbone
from mobivision.errors import ConfigError
from mobivision.factory import (
    backbone_bn_eps,
    create_attribute_model,
    create_backbone,
    create_detector,
    create_geolocator,
    create_model,
    detector_taps,
    last_feature_map,
)


def _last_map(name: str) -> tuple[str, ...]:
    return (last_feature_map(name),)


# The networks of the built-in kinds that ``create_multitask`` (the library's own API) builds by kind: the
# constructor (on a throw-away backbone of the same architecture and options) and the backbone taps it reads. The
# training layer needs no entry here: a multi-task model builds each head through the task of its kind (its
# ``backbone_taps``), so a plug-in kind goes into a multi-task model without this table.
HEAD_NETWORKS: dict[str, tuple[Callable[..., nn.Module], Callable[[str], tuple[str, ...]]]] = {
    "detection": (
        lambda backbone, head="ssdlite", **options: create_detector(head, backbone=backbone, **options),
        detector_taps,
    ),
    "classification": (lambda backbone, **options: create_model(backbone, **options), _last_map),
    "attributes": (lambda backbone, **options: create_attribute_model(backbone, **options), _last_map),
    "geo": (lambda backbone, **options: create_geolocator(backbone, **options), _last_map),
}


def share_module(owner: nn.Module, attribute: str, module: nn.Module) -> nn.Module:
    """Point ``owner.<attribute>`` at ``module`` without registering it as ``owner``'s sub-module; returns ``owner``.

    A shared module is owned (saved, moved, counted) once, by the multi-task model; an ordinary assignment would
    register it in every user, saving its weights once per head and converting it once per head.
    """
    owner._modules.pop(attribute, None)
    object.__setattr__(owner, attribute, module)  # nn.Module.__setattr__ would register it
    return owner


class MultiTaskModel(nn.Module):
    """A backbone returning every tap the heads need, and the heads by name.

    ``forward(images)`` returns ``{head name: that head's outputs}`` (a detector's dict, a classifier's logits, a
    geolocator's list of logits) from one backbone pass.
    """

    def __init__(self, backbone: Backbone, heads: Mapping[str, nn.Module], *, pretrained_cfg: dict[str, Any]) -> None:
        super().__init__()
        if not heads:
            raise ConfigError("a multi-task model needs at least one head")
        self.backbone = backbone
        self.heads = nn.ModuleDict({name: share_module(head, "backbone", backbone) for name, head in heads.items()})
        self.pretrained_cfg = dict(pretrained_cfg)

    def forward(self, images: torch.Tensor) -> dict[str, Any]:
        features = self.backbone(images)
        return self.forward_from_features(features, images)

    def forward_from_features(self, features: dict[str, torch.Tensor], images: torch.Tensor) -> dict[str, Any]:
        """Every head's outputs from the backbone's feature maps."""
        return {name: head.forward_from_features(features, images) for name, head in self.heads.items()}


def shared_backbone(name: str, taps: Iterable[str], **options: Any) -> tuple[Backbone, dict[str, Any]]:
    """The backbone returning every tap in ``taps`` (the heads' together; ``create_backbone`` ``options``,
    pretrained weights loaded), and the backbone settings each head's network must be built with so that its
    channels and BatchNorm fit (width, depth, padding, BatchNorm epsilon and momentum as resolved, e.g. from TF
    weights)."""
    body = create_backbone(name, out_features=list(dict.fromkeys(taps)), **options)
    bn = next(m for m in body.modules() if isinstance(m, nn.BatchNorm2d))
    settings = {
        "width_mult": options.get("width_mult", 1.0),
        "min_depth": options.get("min_depth", 8),
        "padding": getattr(body, "padding", None),
        "bn_eps": bn.eps,
        "bn_momentum": bn.momentum,
    }
    return body, settings


def create_multitask(
    backbone: str = "mobilenet_v1",
    *,
    heads: Mapping[str, Mapping[str, Any]],
    width_mult: float = 1.0,
    pretrained: str | Path | None = None,
    min_depth: int = 8,
    padding: str | None = None,
    bn_eps: float | None = None,
    bn_momentum: float | None = None,
) -> MultiTaskModel:
    """A shared MobileNet backbone under several heads, any mix of kinds (several of one kind allowed).

    Args:
        backbone: One of ``list_models()``.
        heads: ``{name: {"kind": detection|classification|attributes|geo, **options}}``; the options are those of
            ``create_detector`` (``head``, ``num_classes``, ``resolution``, ``extra_depths``, ``anchors``, ``loss``,
            ``postprocess``), ``create_model`` (``num_classes``, ``dropout``), ``create_attribute_model``
            (``num_attributes``, ``dropout``) or ``create_geolocator`` (``cells_per_partition``, ``dropout``).
        width_mult / pretrained / min_depth / padding: Backbone options, see ``create_model``; ``pretrained``
            weights load into the shared backbone.
        bn_eps / bn_momentum: BatchNorm of the backbone and of every head's own layers. One backbone has one
            setting: the classifier's (PyTorch's 1e-5 / 0.1 for MobileNetV1, torchvision's for V2/V3, TF's with
            TF weights) unless given; detectors alone default to 1e-3 / 0.03.

    Returns:
        A ``MultiTaskModel`` in training mode; its ``pretrained_cfg`` names each head's kind.
    """
    if not heads:
        raise ConfigError("create_multitask: heads is empty; give at least one {name: {kind: ...}}")
    kinds = {}
    for name, options in heads.items():
        kind = options.get("kind")
        if kind not in HEAD_NETWORKS:
            raise ConfigError(f"heads.{name}.kind must be one of {sorted(HEAD_NETWORKS)}, got {kind!r}")
        kinds[name] = kind
    body, settings = shared_backbone(
        backbone,
        [tap for kind in kinds.values() for tap in HEAD_NETWORKS[kind][1](backbone)],
        width_mult=width_mult,
        pretrained=pretrained,
        min_depth=min_depth,
        padding=padding,
        bn_eps=bn_eps,
        bn_momentum=bn_momentum,
    )
    built = {
        name: HEAD_NETWORKS[kinds[name]][0](backbone, **settings, **{k: v for k, v in options.items() if k != "kind"})
        for name, options in heads.items()
    }
    return MultiTaskModel(
        body,
        built,
        pretrained_cfg={
            "architecture": f"multitask_{backbone}",
            "backbone": backbone,
            "width_mult": width_mult,
            "bn_eps": backbone_bn_eps(body),
            "heads": dict(kinds),
        },
    )
