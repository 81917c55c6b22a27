"""mobivision: one MobileNet backbone under many mobile vision tasks.

Public API: ``create_model``, ``create_backbone``, ``create_detector``, ``create_attribute_model``,
``create_geolocator``, ``create_multitask`` (one backbone, many heads), ``list_models``, ``list_detectors``,
``detector_preset``, ``profile``.
"""

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
from mobivision.multitask import MultiTaskModel, create_multitask
from mobivision.profiling import ModelCost, profile

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
    "profile",
]
__version__ = "0.1.0"
