"""Unit tests of the COCO detection evaluation (``mobivision.evaluation.coco``).

The reference is pycocotools itself: the twelve metrics must equal ``COCOeval.stats`` computed directly,
while inputs are validated (unknown images or categories raise ``DataError``), zero detections give 0.0
with a warning, and the order of the results does not matter.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import json
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mobivision.errors import DataError
from mobivision.evaluation import (
    COCO_METRIC_KEYS,
    CocoEvaluator,
    coco_evaluate,
    format_per_class_table,
    per_class_ap,
)
from mobivision.evaluation.coco import _checked_box_results, _load_results

IMAGE_IDS = (10, 20, 30, 40)
CATEGORIES = ({"id": 1, "name": "cat"}, {"id": 3, "name": "dog"}, {"id": 7, "name": "bird"})
# (w, h): small (area < 32²), medium (< 96²), large
SIZES = ((20.0, 18.0), (50.0, 60.0), (150.0, 120.0))


@pytest.fixture
def gt() -> dict[str, Any]:
    """Four 640x480 images with gapped ids, three categories with gapped ids, boxes of all three sizes.

    No ``info`` or ``licenses`` keys, which some pycocotools versions require.
    """
    annotations = []
    for n, image_id in enumerate(IMAGE_IDS):
        for k in range(3 + n % 2):
            w, h = SIZES[(n + k) % 3]
            cat = CATEGORIES[(n + 2 * k) % 3]["id"]
            bbox = [10.0 + 160.0 * k, 20.0 + 40.0 * n, w, h]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat,
                    "bbox": bbox,
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    images = [{"id": i, "width": 640, "height": 480, "file_name": f"{i}.jpg"} for i in IMAGE_IDS]
    return {"images": images, "annotations": annotations, "categories": [dict(c) for c in CATEGORIES]}


def perfect_results(gt: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]), "score": 1.0}
        for a in gt["annotations"]
    ]


def noisy_results(gt: dict[str, Any], seed: int = 0) -> list[dict[str, Any]]:
    """Jittered boxes, a few missed objects, wrong classes and false positives; distinct random scores."""
    rng = np.random.default_rng(seed)
    results = []
    for ann in gt["annotations"]:
        if rng.random() < 0.15:
            continue  # missed
        x, y, w, h = ann["bbox"]
        jitter = rng.normal(0.0, 0.12, size=4) * [w, h, w, h]
        bbox = [x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]), max(1.0, h + jitter[3])]
        cat = ann["category_id"] if rng.random() > 0.15 else 3 if ann["category_id"] != 3 else 7
        results.append({"image_id": ann["image_id"], "category_id": cat, "bbox": bbox, "score": 0.0})
    for image_id in IMAGE_IDS:
        for _ in range(3):
            w, h = rng.uniform(10, 200, size=2)
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(rng.choice([1, 3, 7])),
                    "bbox": [float(rng.uniform(0, 400)), float(rng.uniform(0, 300)), float(w), float(h)],
                    "score": 0.0,
                }
            )
    scores = rng.permutation(len(results)) / len(results) + 0.01  # distinct, so no ties
    for det, score in zip(results, scores, strict=True):
        det["score"] = float(score)
        det["bbox"] = [float(v) for v in det["bbox"]]
    return results


def write_json(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def reference_stats(gt_path: Path, results: list[dict[str, Any]], image_ids: list[int] | None = None) -> np.ndarray:
    """``COCOeval.stats`` computed with pycocotools directly, in the results' order."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        coco_eval = COCOeval(coco_gt, coco_dt, iouType="bbox")
        if image_ids is not None:
            coco_eval.params.imgIds = image_ids
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval.stats


def metrics_only(out: dict[str, Any]) -> dict[str, float]:
    assert set(out) == set(COCO_METRIC_KEYS)
    return out


def test_perfect_predictions_score_one(gt: dict[str, Any]) -> None:
    out = metrics_only(coco_evaluate(gt, perfect_results(gt)))
    assert out["AP"] == 1.0
    assert out["AP50"] == 1.0
    assert out["APs"] == out["APm"] == out["APl"] == 1.0
    assert out["AR100"] == 1.0
    assert all(isinstance(v, float) for v in out.values())


def test_matches_pycocotools_on_noisy_results(gt: dict[str, Any], tmp_path: Path) -> None:
    gt_path = write_json(tmp_path / "gt.json", gt)
    results = noisy_results(gt)
    expected = reference_stats(gt_path, results)
    out = metrics_only(coco_evaluate(gt, results, engine="pycocotools"))
    ap_keys = ("AP", "AP50", "AP75", "APs", "APm", "APl")
    assert (*ap_keys, "AR1", "AR10", "AR100", "ARs", "ARm", "ARl") == COCO_METRIC_KEYS
    assert [out[k] for k in COCO_METRIC_KEYS] == [float(v) for v in expected]
    assert 0.1 < out["AP"] < 0.9  # non-trivial: neither perfect nor empty


def test_no_detections_give_zeros_and_a_warning(
    gt: dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for results in ([], write_json(tmp_path / "empty.json", [])):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mobivision"):
            out = metrics_only(coco_evaluate(gt, results))
        assert out == dict.fromkeys(COCO_METRIC_KEYS, 0.0)
        warnings = [r for r in caplog.records if r.name == "mobivision" and r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "no detections" in warnings[0].getMessage()


def test_no_detections_with_per_class_rows(gt: dict[str, Any]) -> None:
    out = coco_evaluate(gt, [], per_class=True)
    assert [row["AP"] for row in out["per_class"]] == [0.0, 0.0, 0.0]


def test_gt_without_annotations_gives_zeros_and_a_warning(gt: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    results = perfect_results(gt)
    gt["annotations"] = []
    with caplog.at_level(logging.WARNING, logger="mobivision"):
        out = metrics_only(coco_evaluate(gt, results))
    assert out == dict.fromkeys(COCO_METRIC_KEYS, 0.0)
    assert any("no annotations" in r.getMessage() for r in caplog.records if r.name == "mobivision")


def test_result_order_does_not_matter_even_with_score_ties(gt: dict[str, Any], tmp_path: Path) -> None:
    # On the first annotation, two tied detections: one tight (IoU ~0.9) and one loose (IoU ~0.6). At IoU
    # 0.75 the result depends on which pycocotools sees first, so raw pycocotools is order dependent.
    ann = gt["annotations"][1]
    x, y, w, h = ann["bbox"]
    tight = {"image_id": ann["image_id"], "category_id": ann["category_id"], "bbox": [x, y, w * 0.9, h], "score": 0.5}
    loose = {"image_id": ann["image_id"], "category_id": ann["category_id"], "bbox": [x, y, w * 0.6, h], "score": 0.5}
    results = [*noisy_results(gt, seed=1), tight, loose]
    for det in results[:6]:
        det["score"] = 0.5  # more ties, across images and categories
    shuffled = list(results)
    random.Random(0).shuffle(shuffled)

    gt_path = write_json(tmp_path / "gt.json", gt)
    raw = {tuple(reference_stats(gt_path, order)) for order in (results, [*results[:-2], loose, tight])}
    assert len(raw) == 2, "the test case should make raw pycocotools order dependent"

    first = coco_evaluate(gt, results, per_class=True)
    assert coco_evaluate(gt, shuffled, per_class=True) == first
    assert coco_evaluate(gt, [*results[:-2], loose, tight], per_class=True) == first
    assert coco_evaluate(gt, list(reversed(results)), per_class=True) == first


def test_input_forms_agree_and_are_not_modified(gt: dict[str, Any], tmp_path: Path) -> None:
    results = noisy_results(gt, seed=2)
    gt_path = write_json(tmp_path / "gt.json", gt)
    res_path = write_json(tmp_path / "results.json", results)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
    gt_before, coco_before, results_before = copy.deepcopy(gt), copy.deepcopy(coco_gt.dataset), copy.deepcopy(results)

    outs = [
        coco_evaluate(g, r) for g in (gt_path, str(gt_path), coco_gt, gt) for r in (res_path, str(res_path), results)
    ]
    assert all(out == outs[0] for out in outs)
    assert outs[0]["AP"] > 0.1
    assert gt == gt_before
    assert coco_gt.dataset == coco_before
    assert all("ignore" not in a for a in coco_gt.anns.values())
    assert results == results_before


def test_image_ids_restrict_the_evaluation(gt: dict[str, Any], tmp_path: Path) -> None:
    subset = [20, 40]
    results = [d for d in noisy_results(gt, seed=3) if d["image_id"] in subset]
    sub_gt = {
        "images": [i for i in gt["images"] if i["id"] in subset],
        "annotations": [a for a in gt["annotations"] if a["image_id"] in subset],
        "categories": gt["categories"],
    }
    expected = coco_evaluate(sub_gt, results)
    out = coco_evaluate(gt, results, image_ids=subset)
    assert out == expected
    assert [out[k] for k in COCO_METRIC_KEYS] == [
        float(v) for v in reference_stats(write_json(tmp_path / "g.json", sub_gt), results)
    ]
    # Evaluating all images with the same results differs (the other images' objects count as missed).
    assert coco_evaluate(gt, results)["AR100"] < out["AR100"]


def test_unknown_image_ids_raise(gt: dict[str, Any]) -> None:
    with pytest.raises(DataError, match=r"image_ids not in the ground truth: \[99\]"):
        coco_evaluate(gt, [], image_ids=[10, 99])


def test_result_outside_evaluated_images_raises_naming_the_id(gt: dict[str, Any]) -> None:
    results = perfect_results(gt)
    with pytest.raises(DataError, match=r"not evaluated.*\[30, 40\]"):
        coco_evaluate(gt, results, image_ids=[10, 20])
    stray = {"image_id": 555, "category_id": 1, "bbox": [0.0, 0.0, 5.0, 5.0], "score": 0.3}
    with pytest.raises(DataError, match=r"\[555\]"):
        coco_evaluate(gt, [*results, stray])


def test_unknown_category_raises_naming_it(gt: dict[str, Any]) -> None:
    bad = {"image_id": 10, "category_id": 2, "bbox": [0.0, 0.0, 5.0, 5.0], "score": 0.3}
    with pytest.raises(DataError, match=r"category ids unknown to the ground truth: \[2\]"):
        coco_evaluate(gt, [*perfect_results(gt), bad])


def test_malformed_inputs_raise_data_error(gt: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing\.json"):
        coco_evaluate(tmp_path / "missing.json", [])
    bad = tmp_path / "bad.json"
    bad.write_text("{oops", encoding="utf-8")
    with pytest.raises(DataError, match="not valid json"):
        coco_evaluate(gt, bad)
    with pytest.raises(DataError, match="expected a list of result dicts"):
        coco_evaluate(gt, write_json(tmp_path / "obj.json", {"image_id": 10}))
    with pytest.raises(DataError, match="lacks"):
        coco_evaluate(gt, [{"image_id": 10, "category_id": 1, "score": 0.5}])
    with pytest.raises(DataError, match=r"bbox must be \[x, y, w, h\]"):
        coco_evaluate(gt, [{"image_id": 10, "category_id": 1, "bbox": [1, 2, 3], "score": 0.5}])


@pytest.mark.parametrize("form", ["dict", "file"])
def test_ground_truth_giving_one_id_to_two_annotations_is_refused(
    gt: dict[str, Any], tmp_path: Path, form: str
) -> None:
    results = perfect_results(gt)
    gt["annotations"][1]["id"] = gt["annotations"][0]["id"]  # COCOeval would score the second entry twice
    source = write_json(tmp_path / "gt.json", gt) if form == "file" else gt
    with pytest.raises(DataError) as info:
        coco_evaluate(source, results)
    name = source if form == "file" else "ground truth dict"
    assert str(info.value) == (
        f"{name}: 'annotations': 2 entries share an id with another entry; the ids: [1]; each annotation needs an "
        f"id of its own (pycocotools would keep only the last entry of an id)"
    )


def test_ground_truth_file_not_in_utf_8_names_line_and_column(gt: dict[str, Any], tmp_path: Path) -> None:
    gt["categories"][2]["name"] = "oiseau-mouche ailé"
    text = json.dumps(gt, ensure_ascii=False)
    path = tmp_path / "gt.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(DataError) as info:
        coco_evaluate(path, perfect_results(gt))
    column = text.index("é") + 1
    assert str(info.value) == f"{path}:1: not UTF-8 text (byte 0xe9 at column {column}); save the file as UTF-8"


def test_per_class_rows(gt: dict[str, Any], tmp_path: Path) -> None:
    gt["categories"].append({"id": 9, "name": "unseen"})  # no ground truth -> -1.0
    results = []
    for det in perfect_results(gt):
        if det["category_id"] == 1:
            results.append(det)  # perfect
        elif det["category_id"] == 3:
            x, y, w, h = det["bbox"]
            results.append({**det, "bbox": [x + 3 * w, y, w, h]})  # no overlap at all
    out = coco_evaluate(gt, results, per_class=True)
    rows = {row["category_id"]: row for row in out["per_class"]}
    assert [row["category_id"] for row in out["per_class"]] == [1, 3, 7, 9]
    assert rows[1] == {"category_id": 1, "name": "cat", "AP": 1.0, "AP50": 1.0}
    assert rows[3]["AP"] == rows[3]["AP50"] == 0.0
    assert rows[7]["AP"] == 0.0  # ground truth, no detections
    assert rows[9]["AP"] == rows[9]["AP50"] == -1.0
    # The overall AP is the mean over the classes with ground truth, as in pycocotools.
    assert out["AP"] == pytest.approx((1.0 + 0.0 + 0.0) / 3)


def test_per_class_ap_matches_a_manual_cocoeval(gt: dict[str, Any]) -> None:
    results = noisy_results(gt, seed=4)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), iouType="bbox")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    rows = per_class_ap(coco_eval, coco_gt)
    precision = coco_eval.eval["precision"][:, :, :, 0, 2]
    for k, row in enumerate(rows):
        assert row["AP"] == pytest.approx(float(np.mean(precision[:, :, k][precision[:, :, k] > -1])))
        assert row["AP50"] == pytest.approx(float(np.mean(precision[0, :, k][precision[0, :, k] > -1])))
    # The mean over classes is the summary AP.
    assert np.mean([row["AP"] for row in rows]) == pytest.approx(coco_eval.stats[0])


def test_format_per_class_table() -> None:
    rows = [
        {"category_id": 3, "name": "dog", "AP": 0.5, "AP50": 0.75},
        {"category_id": 1, "name": "hippopotamus", "AP": 1.0, "AP50": 1.0},
        {"category_id": 9, "name": "unseen", "AP": -1.0, "AP50": -1.0},
    ]
    lines = format_per_class_table(rows).split("\n")
    assert len(lines) == 5
    assert len({len(line) for line in lines}) == 1  # aligned
    assert [c.strip() for c in lines[0].strip("|").split("|")] == ["class", "AP", "AP50"]
    assert set(lines[1]) <= {"|", "-", ":", " "}
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["dog", "hippopotamus", "unseen"]  # order kept
    assert "0.500" in lines[2] and "0.750" in lines[2]
    assert "n/a" in lines[4]


def test_coco_evaluator_keeps_each_image_once_across_processes(gt: dict[str, Any], tmp_path: Path) -> None:
    """Two processes' states where DistributedSampler padded rank 1 with image 10 again (other detections: a
    counted copy would be false positives). The merge keeps rank 0's, and equals scoring each image once."""
    annotations = tmp_path / "gt.json"
    annotations.write_text(json.dumps(gt))

    def batch(image_ids: list[int]) -> dict[str, Any]:
        meta = [{"image_id": i, "size": (480, 640), "input_size": (480, 640), "path": f"{i}.jpg"} for i in image_ids]
        return {"meta": meta}

    def detections(boxes: list[list[float]], label: int) -> dict[str, torch.Tensor]:
        n = len(boxes)
        return {
            "boxes": torch.tensor(boxes).reshape(n, 4),
            "scores": torch.full((n,), 0.9),
            "labels": torch.full((n,), label),
        }

    options = {"category_ids": [1, 3, 7], "class_names": ["cat", "dog", "bird"]}
    ranks = [CocoEvaluator(annotations, **options), CocoEvaluator(annotations, **options)]
    ranks[0].update([detections([[10, 20, 30, 38]], 1), detections([], 1)], batch([10, 20]))
    ranks[1].update([detections([[170, 60, 220, 120]], 2), detections([[0, 0, 5, 5]], 3)], batch([30, 10]))
    metrics = CocoEvaluator(annotations, **options).compute([r.state() for r in ranks])
    once = [{"image_id": 10, "category_id": 1, "bbox": [10.0, 20.0, 20.0, 18.0], "score": 0.9}]
    once.append({"image_id": 30, "category_id": 3, "bbox": [170.0, 60.0, 50.0, 60.0], "score": 0.9})
    expected = coco_evaluate(annotations, once, image_ids=[10, 20, 30])
    assert metrics == {("mAP" if k == "AP" else k): v for k, v in expected.items()}
    assert 0 < metrics["mAP"] < 1


def _one_by_one(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What ``coco_evaluate`` hands its engine, computed plainly: float score and box, sorted by
    (-score, image_id, category_id, box), ties in input order."""
    dets = [{**r, "score": float(r["score"]), "bbox": [float(v) for v in r["bbox"]]} for r in results]
    return sorted(dets, key=lambda d: (-d["score"], d["image_id"], d["category_id"], tuple(d["bbox"])))


@pytest.mark.parametrize(
    "variant",
    ["json floats", "int boxes and scores", "numpy scalars", "tuple boxes", "a bool score", "huge ids"],
)
def test_results_are_checked_copied_and_ordered_the_same_on_every_path(gt: dict[str, Any], variant: str) -> None:
    # Plain json results take a column-wise numpy path, anything else the per-result one: same dicts, same order.
    rng = np.random.default_rng(5)
    results = []
    for n in range(400):
        box = [float(round(v, 1)) for v in rng.uniform(1, 100, 4)]
        score = float(rng.choice([0.25, 0.5, 0.75]))  # many ties: the order falls to ids and boxes
        results.append({"image_id": IMAGE_IDS[n % 4], "category_id": [1, 3, 7][n % 3], "bbox": box, "score": score,
                        "extra": n})  # fmt: skip
    results += [dict(r) for r in results[:50]]  # exact duplicates keep their input order
    if variant == "int boxes and scores":
        for r in results[::3]:
            r["bbox"], r["score"] = [int(v) for v in r["bbox"]], 1
    elif variant == "numpy scalars":
        results[7]["score"] = np.float32(0.5)
        results[8]["bbox"] = list(np.asarray(results[8]["bbox"]))
    elif variant == "tuple boxes":
        results[9]["bbox"] = tuple(results[9]["bbox"])
    elif variant == "a bool score":
        results[10]["score"] = True
    elif variant == "huge ids":
        gt["images"].append({"id": 2**70, "width": 640, "height": 480, "file_name": "huge.jpg"})
        results[11]["image_id"] = 2**70
    before = copy.deepcopy(results)

    dets = _load_results(results, iou_type="bbox")

    column_wise = _checked_box_results(results, copy_needed=True) is not None
    assert column_wise is (variant in ("json floats", "int boxes and scores"))
    assert dets == _one_by_one(results)
    assert [d["extra"] for d in dets] == [d["extra"] for d in _one_by_one(results)]
    assert all(type(d["score"]) is float and all(type(v) is float for v in d["bbox"]) for d in dets)
    assert results == before and not {id(d) for d in dets} & {id(r) for r in results}  # copies, input unchanged
    assert coco_evaluate(gt, results) == coco_evaluate(gt, list(reversed(results)))


def test_a_bad_result_among_many_is_named_by_its_index(gt: dict[str, Any]) -> None:
    results = [dict(r, score=0.5) for r in perfect_results(gt) * 300]
    results[1234] = {**results[1234], "score": float("nan")}
    with pytest.raises(DataError, match=r"result 1234 has a non-finite score"):
        coco_evaluate(gt, results)
    results[1234] = {**results[1234], "score": 0.5, "bbox": [1.0, 2.0, 3.0]}
    with pytest.raises(DataError, match=r"result 1234 bbox must be \[x, y, w, h\]"):
        coco_evaluate(gt, results)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_cycle_collector_is_left_as_it_was(gt: dict[str, Any], enabled: bool) -> None:
    (gc.enable if enabled else gc.disable)()
    try:
        coco_evaluate(gt, perfect_results(gt))
        assert gc.isenabled() is enabled
        with pytest.raises(DataError):
            coco_evaluate(gt, [{"image_id": 555, "category_id": 1, "bbox": [0.0, 0.0, 5.0, 5.0], "score": 0.3}])
        assert gc.isenabled() is enabled
    finally:
        gc.enable()
