"""mobivision: one MobileNet backbone under many mobile vision tasks.

Public API: ``create_model``, ``create_backbone``, ``list_models``, ``profile``.
"""

from mobivision.factory import create_backbone, create_model, list_models
from mobivision.profile import ModelCost, profile

__all__ = ["ModelCost", "create_backbone", "create_model", "list_models", "profile"]
__version__ = "0.1.0"
