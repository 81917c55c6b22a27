"""COCO detection evaluation, made strict, quiet and deterministic, on pycocotools' numbers.

Computes the twelve numbers of the COCO detection benchmark (Lin et al., "Microsoft COCO: Common Objects in
Context", 2014; the metric definitions of cocodataset.org/#detection-eval), as MobileNets (Howard et al.,
2017, Sec. 4.6, Table 13) and SSD (Liu et al., 2016, Sec. 3.4) report them. The numbers are exactly
``COCOeval.stats``; this module only adds what pycocotools leaves to the caller:

- inputs are validated with clear messages: a result for an image that is not evaluated, or with a
  category the ground truth does not know, raises ``DataError`` naming the ids (pycocotools either asserts
  "Results do not correspond to current coco set" or silently ignores them);
- zero detections do not crash (``COCO.loadRes`` fails on an empty list): every metric is 0.0 and one
  warning is logged; ground truth without annotations on the evaluated images likewise gives 0.0 and a
  warning (pycocotools would give -1.0 everywhere);
- the order of the results does not matter: they are sorted by ``(-score, image_id, category_id, bbox)``
  before pycocotools sees them, so score ties are broken the same way every time;
- pycocotools' printing is swallowed, and neither the caller's ``COCO`` object nor its results are changed
  (``COCOeval`` writes ``ignore`` flags into ground-truth annotations, ``loadRes`` adds keys to results).

Other -1.0 values are kept as pycocotools gives them: -1.0 means "no ground truth in this area range"
(e.g. ``APs`` when there is no small object), never "zero".

Two engines compute the same numbers (every stat and the per-class table equal to 1e-12: the C++ accumulation can
round the last bit differently; tested): ``faster_coco_eval`` (default) runs COCOeval's matching and accumulation
in C++, about ten times faster than pycocotools' Python loops at val2017 size, which matters when a long recipe
validates every few epochs; ``pycocotools`` is the reference. faster-coco-eval is a maintained package with
pycocotools' API (``COCO``, ``COCOeval_faster``) and numpy as its only dependency, so the same validation and
sorting feed either engine.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import json
import logging
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import faster_coco_eval
import numpy as np
import pycocotools
import torch
from faster_coco_eval import COCO as FastCOCO  # noqa: N811
from faster_coco_eval import COCOeval_faster
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mobivision.data.coco import check_unique_ids
from mobivision.data.text_files import open_text
from mobivision.errors import ConfigError, DataError
from mobivision.evaluation.evaluator import Evaluator

log = logging.getLogger("mobivision")

COCO_METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
"""Names of ``COCOeval.stats`` entries, in its order."""

IOU_TYPES = ("bbox", "segm")
ENGINES = ("faster_coco_eval", "pycocotools")
"""COCOeval implementations ``coco_evaluate`` runs: the fast C++ one (default) and the reference."""
_RESULT_KEYS = {"bbox": ("image_id", "category_id", "bbox", "score"), "segm": ("image_id", "category_id", "score")}


def coco_evaluate(
    gt: str | Path | COCO | Mapping[str, Any],
    results: str | Path | Sequence[Mapping[str, Any]],
    *,
    image_ids: Iterable[Any] | None = None,
    iou_type: str = "bbox",
    per_class: bool = False,
    engine: str = "faster_coco_eval",
) -> dict[str, Any]:
    """COCO metrics of ``results`` against ``gt`` on the evaluated images.

    Args:
        gt: Ground truth: a COCO annotation json path, a ``pycocotools.coco.COCO`` object or a dict in COCO
            format (``"images"``, ``"annotations"``, ``"categories"``; ``"info"``/``"licenses"`` optional).
            It is copied, never modified; in the copy, annotations without ``"iscrowd"`` get 0 and those
            without ``"area"`` get their box area (pycocotools needs both).
        results: A COCO results json path or a list of ``{"image_id", "category_id", "bbox": [x, y, w, h],
            "score"}`` dicts (``"segmentation"`` instead of ``"bbox"`` for ``iou_type="segm"``). Not modified.
        image_ids: The images to evaluate (``params.imgIds``); default all images of ``gt``.
        iou_type: ``"bbox"`` or ``"segm"``.
        per_class: Also return ``"per_class"``: the rows of :func:`per_class_ap`.
        engine: One of ``ENGINES``: ``faster_coco_eval`` (C++, the default) or ``pycocotools`` (the reference);
            both give the same numbers.

    Returns:
        ``{key: float}`` for the keys of ``COCO_METRIC_KEYS``, exactly ``COCOeval.stats`` (so -1.0 where an
        area range has no ground truth), except that all are 0.0 when there are no detections or no
        ground-truth annotations on the evaluated images (one warning is logged). With ``per_class``, also
        ``"per_class"``: a list of ``{"category_id", "name", "AP", "AP50"}``.

    Raises:
        DataError: A file is missing, not UTF-8 or malformed, the ground truth gives one id to two entries, a
            ground-truth annotation lacks a key or refers to an unknown image or category, there is no image to
            evaluate, an id in ``image_ids`` is not in ``gt``, or a result is malformed, is for an image that is
            not evaluated, or has an unknown category.
        ConfigError: ``iou_type`` is not one of ``IOU_TYPES``, or ``engine`` not one of ``ENGINES``.
    """
    if iou_type not in IOU_TYPES:
        raise ConfigError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    check_engine(engine)
    with _cyclic_gc_paused():
        return _evaluate(gt, results, image_ids=image_ids, iou_type=iou_type, per_class=per_class, engine=engine)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Python's cycle collector off for the block, back to its previous state after.

    Loading and evaluating val2017-size results creates millions of dicts and lists; the collector rescanned all
    of them again and again (measured: ~1.5x the whole evaluation's time). None of them form cycles, so
    reference counting frees them either way.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _evaluate(
    gt: str | Path | COCO | Mapping[str, Any],
    results: str | Path | Sequence[Mapping[str, Any]],
    *,
    image_ids: Iterable[Any] | None,
    iou_type: str,
    per_class: bool,
    engine: str,
) -> dict[str, Any]:
    """``coco_evaluate`` once its arguments are checked."""
    coco_gt = _load_gt(gt, engine)
    gt_ids = set(coco_gt.getImgIds())
    if image_ids is None:
        eval_ids = sorted(gt_ids, key=_sort_key)
    else:
        eval_ids = sorted(set(image_ids), key=_sort_key)
        unknown = [i for i in eval_ids if i not in gt_ids]
        if unknown:
            raise DataError(f"image_ids not in the ground truth: {_preview(unknown)}")
    if not eval_ids:
        raise DataError("no images to evaluate: the ground truth has no images or image_ids is empty")
    dets = _load_results(results, iou_type=iou_type)
    _check_results(dets, evaluated=set(eval_ids), categories=set(coco_gt.getCatIds()))

    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(dets) if dets else _empty_results(coco_gt)
        if engine == "pycocotools":
            coco_eval = COCOeval(coco_gt, coco_dt, iouType=iou_type)
        else:
            coco_eval = COCOeval_faster(coco_gt, coco_dt, iouType=iou_type, print_function=_silent)
        coco_eval.params.imgIds = eval_ids
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()

    stats = coco_eval.stats[: len(COCO_METRIC_KEYS)]  # faster-coco-eval appends further stats after the twelve
    metrics = {key: float(value) for key, value in zip(COCO_METRIC_KEYS, stats, strict=True)}
    n_gt = sum(not ann.get("iscrowd", 0) for i in eval_ids for ann in coco_gt.imgToAnns.get(i, []))
    if not dets or n_gt == 0:
        reason = "no detections were given" if not dets else "the ground truth has no annotations"
        log.warning("COCO evaluation on %d images: %s; reporting 0.0 for every metric", len(eval_ids), reason)
        metrics = dict.fromkeys(COCO_METRIC_KEYS, 0.0)
    out: dict[str, Any] = dict(metrics)
    if per_class:
        out["per_class"] = per_class_ap(coco_eval, coco_gt)
    return out


def check_engine(engine: str) -> None:
    """Raise ``ConfigError`` unless ``engine`` is one of ``ENGINES``."""
    if engine not in ENGINES:
        raise ConfigError(f"COCO evaluation engine must be one of {ENGINES}, got {engine!r}")


def engine_version(engine: str) -> str:
    """``"<engine> <version>"``: what computed the metrics, for reports."""
    module = faster_coco_eval if engine == "faster_coco_eval" else pycocotools
    return f"{engine} {getattr(module, '__version__', '?')}"


def _silent(*args: Any, **kwargs: Any) -> None:
    """faster-coco-eval's print function: its summary is not printed (pycocotools' stdout is swallowed too)."""


def per_class_ap(coco_eval: COCOeval, coco_gt: COCO) -> list[dict[str, Any]]:
    """AP and AP50 of each category from an accumulated ``COCOeval``.

    AP is the mean of ``coco_eval.eval["precision"]`` over IoU thresholds and recall points for area
    ``"all"`` and ``maxDets=100``, taken over entries > -1 as ``COCOeval.summarize`` does; AP50 is the same at
    the first IoU threshold (0.5).

    Args:
        coco_eval: A ``COCOeval`` after ``evaluate()`` and ``accumulate()``.
        coco_gt: The ground truth, for category names.

    Returns:
        One ``{"category_id", "name", "AP", "AP50"}`` per evaluated category, in ``params.catIds`` order
        (ascending id). A category without ground truth on the evaluated images gets -1.0 (never NaN).

    Raises:
        DataError: ``coco_eval`` has not been accumulated.
    """
    if not getattr(coco_eval, "eval", None) or "precision" not in coco_eval.eval:
        raise DataError("per_class_ap needs a COCOeval after evaluate() and accumulate()")
    params = coco_eval.params
    precision = coco_eval.eval["precision"]  # [iou, recall, category, area, max dets]
    area = list(params.areaRngLbl).index("all")
    max_det = list(params.maxDets).index(100)
    cat_ids = params.catIds if params.useCats else [-1]
    rows = []
    for k, cat_id in enumerate(cat_ids):
        per_iou = precision[:, :, k, area, max_det]
        rows.append(
            {
                "category_id": cat_id,
                "name": str(coco_gt.cats.get(cat_id, {}).get("name", cat_id)),
                "AP": _mean_valid(per_iou),
                "AP50": _mean_valid(per_iou[0]),
            }
        )
    return rows


def format_per_class_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows of :func:`per_class_ap` as an aligned Markdown table (columns class, AP, AP50).

    Rows keep the order given. Values have three decimals; -1.0 (no ground truth) is shown as ``n/a``.

    Args:
        rows: Dicts with ``"name"``, ``"AP"`` and ``"AP50"``.

    Returns:
        The table, one line per row after the header and separator, without a trailing newline.
    """
    table = [(str(row["name"]), _fmt(row["AP"]), _fmt(row["AP50"])) for row in rows]
    header = ("class", "AP", "AP50")
    widths = [max(len(header[i]), *(len(r[i]) for r in table)) for i in range(3)]
    sep = ("-" * widths[0], "-" * (widths[1] - 1) + ":", "-" * (widths[2] - 1) + ":")
    lines = [
        f"| {header[0]:<{widths[0]}} | {header[1]:>{widths[1]}} | {header[2]:>{widths[2]}} |",
        f"| {sep[0]} | {sep[1]} | {sep[2]} |",
    ]
    lines += [f"| {n:<{widths[0]}} | {ap:>{widths[1]}} | {ap50:>{widths[2]}} |" for n, ap, ap50 in table]
    return "\n".join(lines)


def _load_gt(gt: str | Path | COCO | Mapping[str, Any], engine: str) -> COCO:
    """A private ``COCO`` of the engine built from a deep copy of the ground truth, with the keys pycocotools
    expects."""
    if isinstance(gt, COCO | FastCOCO):
        dataset = copy.deepcopy(gt.dataset)
        source = "ground truth COCO object"
    elif isinstance(gt, Mapping):
        dataset = copy.deepcopy(dict(gt))
        source = "ground truth dict"
    elif isinstance(gt, str | Path):
        dataset = _read_json(Path(gt))
        source = str(gt)
        if not isinstance(dataset, dict):
            raise DataError(f"{source}: expected a COCO annotation object, got a {type(dataset).__name__}")
    else:
        raise DataError(f"gt must be a json path, a COCO object or a dict, got {type(gt).__name__}")
    for key in ("images", "categories"):
        if not isinstance(dataset.get(key), list):
            raise DataError(f"{source}: missing or malformed {key!r} list")
    dataset.setdefault("annotations", [])
    check_unique_ids(dataset, source)  # COCOeval looks annotations up by id: a shared id scores its last entry twice
    _check_gt_annotations(dataset, source=source)
    dataset.setdefault("info", {})
    dataset.setdefault("licenses", [])
    coco = COCO() if engine == "pycocotools" else FastCOCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _check_gt_annotations(dataset: dict[str, Any], *, source: str) -> None:
    """Check the annotations' keys and references; fill ``iscrowd`` (0) and ``area`` (box area) if absent."""
    image_ids = {image.get("id") for image in dataset["images"]}
    cat_ids = {cat.get("id") for cat in dataset["categories"]}
    for index, ann in enumerate(dataset["annotations"]):
        missing = [key for key in ("id", "image_id", "category_id") if key not in ann]
        if "bbox" not in ann and "segmentation" not in ann:
            missing.append("bbox")
        if missing:
            raise DataError(f"{source}: annotation {index} lacks {missing}")
        if ann["image_id"] not in image_ids:
            raise DataError(f"{source}: annotation {ann['id']} is for image {ann['image_id']!r}, not in 'images'")
        if ann["category_id"] not in cat_ids:
            raise DataError(f"{source}: annotation {ann['id']} has unknown category {ann['category_id']!r}")
        ann.setdefault("iscrowd", 0)
        if "area" not in ann:
            if "bbox" not in ann:
                raise DataError(f"{source}: annotation {ann['id']} has neither 'area' nor 'bbox'")
            ann["area"] = float(ann["bbox"][2]) * float(ann["bbox"][3])


def _load_results(results: str | Path | Sequence[Mapping[str, Any]], *, iou_type: str) -> list[dict[str, Any]]:
    """Validated copies of the results (a file's are its own), sorted by ``(-score, image_id, category_id, bbox)``."""
    from_file = isinstance(results, str | Path)
    source = str(results) if from_file else "results"
    loaded = _read_json(Path(results)) if from_file else results
    if not isinstance(loaded, Sequence) or isinstance(loaded, str | bytes):
        raise DataError(f"{source}: expected a list of result dicts, got a {type(loaded).__name__}")
    dets = _checked_box_results(loaded, copy_needed=not from_file) if iou_type == "bbox" else None
    if dets is None:  # not plain json-like boxes: checked one by one, so the error names the result
        dets = [_checked_result(det, index, source, iou_type) for index, det in enumerate(loaded)]
        dets.sort(
            key=lambda d: (-d["score"], _sort_key(d["image_id"]), _sort_key(d["category_id"]), tuple(d.get("bbox", ())))
        )
    return dets


def _checked_box_results(loaded: Sequence[Any], *, copy_needed: bool) -> list[dict[str, Any]] | None:
    """The box results checked, copied and sorted exactly as ``_checked_result`` and the sort above do, but with
    numpy over whole columns; ``None`` unless every result is a plain dict with int ids, an int or float score
    and a list of 4 int or float box values, all finite (the caller then takes the per-result path). The dicts are
    copied when ``copy_needed`` (the caller's list), else reused (read from a file here).

    Written by hand because at val2017 size (500,000 results) the per-result checks and the tuple sort took
    longer than faster-coco-eval's whole C++ evaluation.
    """
    if not loaded or set(map(type, loaded)) != {dict}:
        return None
    try:
        columns = {key: list(map(itemgetter(key), loaded)) for key in _RESULT_KEYS["bbox"]}
    except KeyError:
        return None
    boxes = columns["bbox"]
    if (
        not set(map(type, columns["image_id"])) | set(map(type, columns["category_id"])) <= {int}
        or not set(map(type, columns["score"])) <= {int, float}
        or set(map(type, boxes)) != {list}
        or set(map(len, boxes)) != {4}
        or not set(map(type, chain.from_iterable(boxes))) <= {int, float}
    ):
        return None
    image_ids, category_ids = np.array(columns["image_id"]), np.array(columns["category_id"])
    if image_ids.dtype.kind != "i" or category_ids.dtype.kind != "i":  # ints beyond int64 sort in Python
        return None
    scores, box_values = np.array(columns["score"], dtype=np.float64), np.array(boxes, dtype=np.float64)
    if not (np.isfinite(scores).all() and np.isfinite(box_values).all()):
        return None
    # lexsort's last key is the primary one: (-score, image_id, category_id, x, y, w, h), stable as list.sort.
    order = np.lexsort((*box_values.T[::-1], category_ids, image_ids, -scores)).tolist()
    if set(map(type, columns["score"])) == {float} and set(map(type, chain.from_iterable(boxes))) == {float}:
        # Already floats (json's case): shallow copies; the engines read the box lists and never change them.
        return [dict(loaded[i]) for i in order] if copy_needed else [loaded[i] for i in order]
    score_list, box_list = scores.tolist(), box_values.tolist()
    return [{**loaded[i], "score": score_list[i], "bbox": box_list[i]} for i in order]


def _checked_result(det: Any, index: int, source: str, iou_type: str) -> dict[str, Any]:
    """A validated copy of result ``index`` (float score and bbox); the input is not modified."""
    if not isinstance(det, Mapping):
        raise DataError(f"{source}: result {index} is not a dict: {det!r}")
    missing = [key for key in _RESULT_KEYS[iou_type] if key not in det]
    if iou_type == "segm" and "segmentation" not in det:
        missing.append("segmentation")
    if missing:
        raise DataError(f"{source}: result {index} lacks {missing}: {det!r}")
    det = dict(det)  # shallow: bbox is rebuilt below and segmentation copied, so the input stays as given
    if "segmentation" in det:
        det["segmentation"] = copy.deepcopy(det["segmentation"])
    try:
        det["score"] = float(det["score"])
        if "bbox" in det:
            det["bbox"] = [float(v) for v in det["bbox"]]
    except (TypeError, ValueError) as exc:
        raise DataError(f"{source}: result {index} has a non-numeric score or bbox: {det!r}") from exc
    if "bbox" in det and len(det["bbox"]) != 4:
        raise DataError(f"{source}: result {index} bbox must be [x, y, w, h], got {det['bbox']}")
    if not math.isfinite(det["score"]) or not all(math.isfinite(v) for v in det.get("bbox", ())):
        raise DataError(f"{source}: result {index} has a non-finite score or bbox: {det!r}")
    return det


def _check_results(dets: list[dict[str, Any]], *, evaluated: set[Any], categories: set[Any]) -> None:
    """Raise ``DataError`` for results on images that are not evaluated or with unknown categories."""
    outside = set(map(itemgetter("image_id"), dets)) - evaluated
    if outside:
        raise DataError(
            f"results for {len(outside)} image ids that are not evaluated (not in the ground truth or not in "
            f"image_ids): {_preview(outside)}"
        )
    unknown = set(map(itemgetter("category_id"), dets)) - categories
    if unknown:
        known = _preview(categories)
        raise DataError(f"results with category ids unknown to the ground truth: {_preview(unknown)} (known: {known})")


def _empty_results(coco_gt: COCO) -> COCO:
    """A results ``COCO`` (of ``coco_gt``'s engine) without detections (``COCO.loadRes`` cannot take an empty
    list)."""
    res = type(coco_gt)()
    res.dataset = {
        "info": {},
        "images": list(coco_gt.dataset["images"]),
        "categories": copy.deepcopy(coco_gt.dataset["categories"]),
        "annotations": [],
    }
    res.createIndex()
    return res


def _read_json(path: Path) -> Any:
    """The parsed json file; a missing, non-UTF-8 or malformed file raises ``DataError`` naming it."""
    try:
        with open_text(path) as f:
            return json.load(f)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid json: {exc}") from exc


def _mean_valid(values: np.ndarray) -> float:
    """Mean of the entries > -1, or -1.0 when there are none (as ``COCOeval.summarize``)."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def _fmt(value: float) -> str:
    return "n/a" if value == -1 else f"{value:.3f}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _sort_key(value: Any) -> tuple[int, Any]:
    """Sort numbers before anything else, so ids of mixed types still sort."""
    return (0, value) if _is_number(value) else (1, str(value))


def _preview(ids: Iterable[Any], limit: int = 10) -> str:
    """The first ``limit`` ids, sorted, plus how many more there are."""
    shown = sorted(ids, key=_sort_key)
    more = f" (and {len(shown) - limit} more)" if len(shown) > limit else ""
    return f"{shown[:limit]}{more}"


def to_coco_results(
    detections: Sequence[Mapping[str, torch.Tensor]], meta: Sequence[Mapping[str, Any]], category_ids: Sequence[int]
) -> list[dict[str, Any]]:
    """Detections in input pixels -> COCO result dicts in original image pixels (``[x, y, w, h]``).

    ``meta`` per image: ``image_id``, ``size`` (original height, width) and ``input_size`` (the network's input);
    labels are 1-based (``category_ids[label - 1]``). The evaluation transform is a plain resize, so boxes scale back
    by original size / input size.
    """
    results = []
    for detection, info in zip(detections, meta, strict=True):
        (orig_h, orig_w), (in_h, in_w) = info["size"], info["input_size"]
        scale = torch.tensor([orig_w / in_w, orig_h / in_h, orig_w / in_w, orig_h / in_h])
        boxes = detection["boxes"].float().cpu() * scale
        boxes[:, 2:] -= boxes[:, :2]
        for box, score, label in zip(
            boxes.tolist(), detection["scores"].tolist(), detection["labels"].tolist(), strict=True
        ):
            results.append(
                {
                    "image_id": info["image_id"],
                    "category_id": category_ids[label - 1],
                    "bbox": [round(v, 2) for v in box],
                    "score": round(score, 5),
                }
            )
    return results


class CocoEvaluator(Evaluator):
    """COCO's 12 box metrics (``AP`` named ``mAP``) of a detector against its split's annotation file.

    Ground truth: ``annotation_file`` (the split's COCO json); the images evaluated are those ``update`` saw (an
    image without detections still counts). Detections are kept per image id (each image once under DDP).
    With ``per_class`` the per-class AP table is kept for ``write_report``, which also draws the first images'
    detections (score >= 0.3). ``engine``: the COCOeval implementation (``ENGINES``).
    """

    rank_zero_only = True

    def __init__(
        self,
        annotation_file: str | Path,
        *,
        category_ids: Sequence[int],
        class_names: Sequence[str],
        per_class: bool = False,
        engine: str = "faster_coco_eval",
    ) -> None:
        super().__init__()
        check_engine(engine)
        self.annotation_file = str(annotation_file)
        self.category_ids = list(category_ids)
        self.class_names = list(class_names)
        self.per_class = per_class
        self.engine = engine
        self.computed_by = engine_version(engine)
        self.metrics: dict[str, Any] = {}

    def update(self, predictions: Sequence[Mapping[str, torch.Tensor]], batch: dict[str, Any]) -> None:
        """``predictions``: per image ``boxes`` (xyxy input pixels), ``scores``, 1-based ``labels``."""
        for detections, info in zip(predictions, batch["meta"], strict=True):
            results = to_coco_results([detections], [info], self.category_ids)
            self.add(info["image_id"], (results, str(info["path"])))

    def _compute(self, rows: dict[Any, Any]) -> dict[str, float]:
        results = [r for detections, _ in rows.values() for r in detections]
        self.metrics = coco_evaluate(
            self.annotation_file, results, image_ids=list(rows), per_class=self.per_class, engine=self.engine
        )
        names = {"AP": "mAP"}
        return {names.get(k, k): float(v) for k, v in self.metrics.items() if k != "per_class"}

    def write_report(self, output_dir: Path, split: str, *, picture_images: int = 8) -> list[Path]:
        """``results_<split>.json`` (COCO results), ``per_class_<split>.md`` and ``predictions_<split>.jpg``."""
        from mobivision.data.records import load_rgb  # the report's pictures only
        from mobivision.visualize import draw_detections, image_grid

        if not self._rows:
            return []
        output_dir = Path(output_dir)
        results = [r for detections, _ in self._rows.values() for r in detections]
        written = [output_dir / f"results_{split}.json"]
        written[0].write_text(json.dumps(results) + "\n")
        if "per_class" in self.metrics:
            written.append(output_dir / f"per_class_{split}.md")
            written[-1].write_text(format_per_class_table(self.metrics["per_class"]) + "\n")
        names = dict(zip(self.category_ids, self.class_names, strict=True))
        pictures = []
        for detections, path in list(self._rows.values())[:picture_images]:
            shown = [{**r, "category_name": names[r["category_id"]]} for r in detections if r["score"] >= 0.3]
            pictures.append(draw_detections(load_rgb(Path(path)), shown, self.class_names))
        written.append(output_dir / f"predictions_{split}.jpg")
        image_grid(pictures).save(written[-1], quality=92)
        return written
