"""Evaluation metrics for the tasks: COCO detection (pycocotools), with more to come.

See ``mobivision.evaluation.coco`` for what the COCO wrapper adds to pycocotools (validation, determinism,
zero-detection handling, per-class AP, merging of per-process results).
"""

from __future__ import annotations

from mobivision.evaluation.coco import (
    COCO_METRIC_KEYS,
    coco_evaluate,
    format_per_class_table,
    merge_detections,
    per_class_ap,
)

__all__ = ["COCO_METRIC_KEYS", "coco_evaluate", "format_per_class_table", "merge_detections", "per_class_ap"]
