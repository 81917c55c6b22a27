"""The two COCOeval engines of ``coco_evaluate`` (faster-coco-eval's C++ and pycocotools) give the same numbers."""

from __future__ import annotations

import numpy as np
import pytest

from mobivision.errors import ConfigError
from mobivision.evaluation.coco import COCO_METRIC_KEYS, ENGINES, CocoEvaluator, coco_evaluate, engine_version

# The engines round the last bit of a precision differently now and then (C++ vs numpy); nothing larger.
TOLERANCE = 1e-12


def varied_data(seed: int) -> tuple[dict, list[dict]]:
    """Ground truth and results with crowds, images without objects, a category without ground truth, images
    without detections, near-duplicate and many detections, boxes of every area range."""
    rng = np.random.default_rng(seed)
    images = [{"id": 100 + 7 * i, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in range(40)]
    categories = [{"id": c, "name": f"class{c}"} for c in (1, 3, 4, 9)]  # 9: no ground truth anywhere
    annotations, results = [], []
    for n, image in enumerate(images):
        if n % 7 == 0:
            continue  # an image without objects (still evaluated)
        for _ in range(int(rng.integers(1, 8))):
            w, h = (float(v) for v in rng.choice([8.0, 24.0, 60.0, 150.0]) * rng.uniform(0.6, 1.6, 2))
            x, y = float(rng.uniform(0, 640 - w)), float(rng.uniform(0, 480 - h))
            category = int(rng.choice([1, 3, 4]))
            crowd = int(rng.random() < 0.08)
            annotations.append({"id": len(annotations) + 1, "image_id": image["id"], "category_id": category,
                                "bbox": [x, y, w, h], "area": w * h, "iscrowd": crowd})  # fmt: skip
            if n % 5 != 3:  # every fifth image from the third on: no detection at all
                for _ in range(int(rng.integers(1, 4))):  # near-duplicates of the object
                    jitter = rng.normal(0, 0.1 * min(w, h), 4)
                    box = [x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]), max(1.0, h + jitter[3])]
                    results.append({"image_id": image["id"], "category_id": category, "bbox": box,
                                    "score": float(rng.random())})  # fmt: skip
        if n % 5 != 3:
            clutter = 150 if n % 9 == 1 else int(rng.integers(0, 20))  # many detections on some images
            for _ in range(clutter):
                w, h = (float(v) for v in rng.uniform(4, 200, 2))
                box = [float(rng.uniform(0, 600)), float(rng.uniform(0, 440)), w, h]
                category = int(rng.choice([1, 3, 4, 9]))
                results.append({"image_id": image["id"], "category_id": category, "bbox": box,
                                "score": float(rng.random())})  # fmt: skip
    return {"images": images, "annotations": annotations, "categories": categories}, results


@pytest.mark.parametrize("seed", range(4))
def test_both_engines_give_the_same_stats_and_per_class_table(seed: int) -> None:
    gt, results = varied_data(seed)
    fast = coco_evaluate(gt, results, per_class=True, engine="faster_coco_eval")
    reference = coco_evaluate(gt, results, per_class=True, engine="pycocotools")
    for key in COCO_METRIC_KEYS:
        assert fast[key] == pytest.approx(reference[key], abs=TOLERANCE), key
    assert 0.05 < reference["AP"] < 0.95 and reference["APs"] > -1  # a non-trivial case
    assert [(r["category_id"], r["name"]) for r in fast["per_class"]] == [
        (r["category_id"], r["name"]) for r in reference["per_class"]
    ]
    for mine, theirs in zip(fast["per_class"], reference["per_class"], strict=True):
        assert mine["AP"] == pytest.approx(theirs["AP"], abs=TOLERANCE)
        assert mine["AP50"] == pytest.approx(theirs["AP50"], abs=TOLERANCE)
    assert fast["per_class"][-1]["AP"] == reference["per_class"][-1]["AP"] == -1.0  # class9: no ground truth


def test_both_engines_agree_on_a_subset_and_on_no_detections() -> None:
    gt, results = varied_data(7)
    subset = [image["id"] for image in gt["images"][::3]]
    chosen = [r for r in results if r["image_id"] in subset]
    fast, reference = (coco_evaluate(gt, chosen, image_ids=subset, engine=e) for e in ENGINES)
    assert [fast[k] for k in COCO_METRIC_KEYS] == pytest.approx([reference[k] for k in COCO_METRIC_KEYS], abs=1e-12)
    for engine in ENGINES:
        empty = coco_evaluate(gt, [], per_class=True, engine=engine)
        assert all(empty[k] == 0.0 for k in COCO_METRIC_KEYS)
        assert {row["AP"] for row in empty["per_class"]} <= {0.0, -1.0}


def test_an_unknown_engine_is_a_config_error_naming_the_choices() -> None:
    gt, results = varied_data(0)
    with pytest.raises(ConfigError, match=r"engine must be one of \('faster_coco_eval', 'pycocotools'\)"):
        coco_evaluate(gt, results, engine="fast")
    with pytest.raises(ConfigError, match="engine must be one of"):
        CocoEvaluator("gt.json", category_ids=[1], class_names=["a"], engine="cocoapi")
    evaluator = CocoEvaluator("gt.json", category_ids=[1], class_names=["a"])
    assert evaluator.computed_by == engine_version("faster_coco_eval") and evaluator.computed_by[-1].isdigit()
