"""mobivision: one MobileNet backbone under many mobile vision tasks.

Public API: ``create_model``, ``create_backbone``, ``create_detector``, ``create_attribute_model``,
``create_geolocator``, ``create_multitask`` (one backbone, many heads), ``list_models``, ``list_detectors``,
``detector_preset``, ``profile``; ``load`` (an exported model for inference).

The names resolve lazily (PEP 562): importing a torch-free submodule such as ``mobivision.inference.preprocess``
must not import torch through this package's ``__init__``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mobivision.factory import (
        create_attribute_model,
        create_backbone,
        create_detector,
        create_geolocator,
        create_model,
        detector_preset,
        list_detectors,
        list_models,
    )
    from mobivision.inference import load
    from mobivision.multitask import MultiTaskModel, create_multitask
    from mobivision.profiling import ModelCost, profile

_LAZY: dict[str, str] = {
    "create_attribute_model": "mobivision.factory",
    "create_backbone": "mobivision.factory",
    "create_detector": "mobivision.factory",
    "create_geolocator": "mobivision.factory",
    "create_model": "mobivision.factory",
    "detector_preset": "mobivision.factory",
    "list_detectors": "mobivision.factory",
    "list_models": "mobivision.factory",
    "MultiTaskModel": "mobivision.multitask",
    "create_multitask": "mobivision.multitask",
    "ModelCost": "mobivision.profiling",
    "profile": "mobivision.profiling",
    "load": "mobivision.inference",
}

__all__ = [
    "ModelCost",
    "MultiTaskModel",
    "create_attribute_model",
    "create_backbone",
    "create_detector",
    "create_geolocator",
    "create_model",
    "create_multitask",
    "detector_preset",
    "list_detectors",
    "list_models",
    "load",
    "profile",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
