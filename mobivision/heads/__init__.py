"""Task heads built from a backbone's ``feature_specs``."""

from mobivision.heads.classification import ClassifierHead

__all__ = ["ClassifierHead"]
