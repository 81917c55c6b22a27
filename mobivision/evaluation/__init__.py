"""Evaluation metrics and evaluators of the tasks (``Evaluator``: evaluator.py).

See ``mobivision.evaluation.coco`` for what the COCO wrapper adds to pycocotools (validation, determinism,
zero-detection handling, per-class AP); per-process results are merged by ``Evaluator.compute``.
"""

from __future__ import annotations

from mobivision.evaluation.coco import (
    COCO_METRIC_KEYS,
    CocoEvaluator,
    coco_evaluate,
    format_per_class_table,
    per_class_ap,
    to_coco_results,
)

__all__ = [
    "COCO_METRIC_KEYS",
    "CocoEvaluator",
    "coco_evaluate",
    "format_per_class_table",
    "per_class_ap",
    "to_coco_results",
]
