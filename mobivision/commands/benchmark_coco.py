"""``tools/benchmark.py coco-scale``: the cost of COCO's size around the model, measured on COCO-sized files.

Writes COCO-sized synthetic files (default: a val2017-size split, 5,000 images with ~7.3 boxes each over COCO's 80
category ids and 100 detections per image, and a train2017-size annotation file, 118,287 images; every image file
an empty placeholder, since only the annotations are read, except the first ``--pipeline-images`` val images,
written as real-size JPEGs) and times, in one run:

- ``read_coco`` on the train-size file (what every training run pays at start-up);
- the evaluation of the val-size results by ``coco_evaluate`` with each engine, beside the raw engine it runs
  (``pycocotools``' ``COCO`` + ``COCOeval``, faster-coco-eval's ``COCO`` + ``COCOeval_faster``, as their READMEs
  use them), with the largest difference of the 12 stats;
- the SSD and SSDLite training input pipelines per worker, ours (``DetectionDataset`` + our recipe) beside
  torchvision's detection reference with the v2 API (``mobivision.commands.benchmark_pipeline``).

One table: seconds, images/s for the pipelines, and ``ours speed / peer speed`` (the peer's time over ours: above
1 ours is faster) on each of our rows.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
from faster_coco_eval import COCO as FastCOCO  # noqa: N811
from faster_coco_eval import COCOeval_faster
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from mobivision.commands.benchmark_pipeline import pipeline_rows, write_photo_jpegs
from mobivision.commands.cli import non_negative_float, positive_int
from mobivision.data.coco import read_coco
from mobivision.evaluation.coco import COCO_METRIC_KEYS, ENGINES, coco_evaluate
from mobivision.timing import time_once

# COCO 2017's 80 category ids (1..90 with gaps), as its annotation files number them.
COCO_CATEGORY_IDS = [i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83)]


def add_coco_scale_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "coco-scale", help="COCO-sized files: reader, evaluation and input pipeline times (ours vs peers)"
    )
    parser.add_argument("--images", type=positive_int, default=5000, help="val-size images (default 5000)")
    parser.add_argument(
        "--boxes", type=non_negative_float, default=7.3, help="mean boxes per image (default 7.3, as COCO)"
    )
    parser.add_argument("--detections", type=positive_int, default=100, help="detections per image (default 100)")
    parser.add_argument("--train-images", type=int, default=118287, help="train-size images for the reader (0: skip)")
    parser.add_argument(
        "--pipeline-images", type=int, default=200, help="val images written as JPEGs for the pipelines (0: skip)"
    )
    parser.add_argument("--out", type=Path, help="folder for the files (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=0)


def write_split(folder: Path, name: str, images: int, boxes: float, rng: np.random.Generator) -> Path:
    """A COCO annotation file of ``images`` 640x480 images with Poisson(``boxes``) boxes each (sizes from small to
    large, 1% crowds), and an empty placeholder file per image under ``folder/name/``."""
    image_dir = folder / name
    image_dir.mkdir(parents=True, exist_ok=True)
    entries, annotations = [], []
    counts = rng.poisson(boxes, images)
    for index, count in enumerate(counts, start=1):
        file_name = f"{index:012d}.jpg"
        (image_dir / file_name).touch()
        entries.append({"id": index, "file_name": file_name, "width": 640, "height": 480})
        sizes = rng.choice([12.0, 40.0, 140.0], size=(count, 1)) * rng.uniform(0.6, 1.6, (count, 2))
        corners = rng.uniform(0, 1, (count, 2)) * (np.array([640.0, 480.0]) - sizes)
        for (x, y), (w, h) in zip(corners.tolist(), sizes.tolist(), strict=True):
            annotations.append({
                "id": len(annotations) + 1, "image_id": index, "category_id": int(rng.choice(COCO_CATEGORY_IDS)),
                "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)], "area": w * h,
                "iscrowd": int(rng.random() < 0.01),
            })  # fmt: skip
    categories = [{"id": c, "name": f"class{c}", "supercategory": "thing"} for c in COCO_CATEGORY_IDS]
    path = folder / f"instances_{name}.json"
    path.write_text(json.dumps({"images": entries, "annotations": annotations, "categories": categories}))
    return path


def write_detections(annotation_file: Path, per_image: int, rng: np.random.Generator) -> Path:
    """``per_image`` detections per image: a jittered copy of each object (80%), the rest random boxes."""
    gt = json.loads(annotation_file.read_text())
    by_image: dict[int, list[dict[str, Any]]] = {}
    for ann in gt["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    results = []
    for image in gt["images"]:
        found = [a for a in by_image.get(image["id"], []) if rng.random() < 0.8][:per_image]
        for ann in found:
            x, y, w, h = ann["bbox"]
            jitter = rng.normal(0, 0.1, 4) * [w, h, w, h]
            box = [x + jitter[0], y + jitter[1], max(1.0, w + jitter[2]), max(1.0, h + jitter[3])]
            results.append({"image_id": image["id"], "category_id": ann["category_id"], "bbox": box,
                            "score": float(rng.uniform(0.3, 1.0))})  # fmt: skip
        for _ in range(per_image - len(found)):
            w, h = rng.uniform(4, 300, 2)
            box = [float(rng.uniform(0, 640 - w)), float(rng.uniform(0, 480 - h)), float(w), float(h)]
            results.append({"image_id": image["id"], "category_id": int(rng.choice(COCO_CATEGORY_IDS)),
                            "bbox": box, "score": float(rng.uniform(0, 0.6))})  # fmt: skip
    path = annotation_file.with_name("detections.json")
    path.write_text(json.dumps(results))
    return path


def raw_evaluation(engine: str, annotation_file: Path, results_file: Path) -> list[float]:
    """The 12 stats the way each library's README runs it (files in, ``stats`` out)."""
    with contextlib.redirect_stdout(io.StringIO()):
        if engine == "pycocotools":
            gt = COCO(str(annotation_file))
            evaluation = COCOeval(gt, gt.loadRes(str(results_file)), "bbox")
        else:
            gt = FastCOCO(str(annotation_file))
            evaluation = COCOeval_faster(gt, gt.loadRes(str(results_file)), "bbox", print_function=lambda *a: None)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return [float(v) for v in evaluation.stats[: len(COCO_METRIC_KEYS)]]


def run_coco_scale(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    val = write_split(folder, "val", args.images, args.boxes, rng)
    detections = write_detections(val, args.detections, rng)
    rows: list[dict[str, Any]] = []
    if args.train_images > 0:
        train = write_split(folder, "train", args.train_images, args.boxes, rng)
        seconds, data = time_once(lambda: read_coco(train, folder / "train"))
        boxes = sum(len(r.boxes) for r in data.records)
        rows.append({"step": f"read_coco, {len(data.records):,} images, {boxes:,} boxes", "seconds": seconds})
    for engine in ENGINES:
        raw_seconds, raw = time_once(lambda engine=engine: raw_evaluation(engine, val, detections))
        ours_seconds, ours = time_once(lambda engine=engine: coco_evaluate(val, detections, engine=engine))
        difference = max(abs(ours[k] - r) for k, r in zip(COCO_METRIC_KEYS, raw, strict=True))
        rows.append({"step": f"evaluation, raw {engine}", "seconds": raw_seconds})
        rows.append({"step": f"evaluation, coco_evaluate(engine={engine!r})", "seconds": ours_seconds,
                     "speedup": raw_seconds / ours_seconds, "max_stat_difference": difference})  # fmt: skip
    if args.pipeline_images > 0:
        photo_ids = write_photo_jpegs(val, folder / "val", args.pipeline_images, rng)
        rows += pipeline_rows(val, folder / "val", photo_ids, args.seed)
    raw = {row["step"]: row["seconds"] for row in rows}
    speedup = raw["evaluation, raw pycocotools"] / raw["evaluation, raw faster_coco_eval"]
    annotations = len(json.loads(val.read_text())["annotations"])
    return {"images": args.images, "annotations": annotations, "detections": args.images * args.detections,
            "rows": rows, "fast_engine_speedup": speedup}  # fmt: skip


def print_coco_scale_report(report: dict[str, Any]) -> None:
    print(
        f"val size: {report['images']:,} images, {report['annotations']:,} boxes, {report['detections']:,} detections"
    )
    print("| step | seconds | images/s | ours speed / peer speed | max stat difference |")
    print("| ---- | ------: | -------: | ----------------------: | ------------------: |")
    for row in report["rows"]:
        rate = f"{row['images_per_second']:.1f}" if "images_per_second" in row else ""
        speedup = f"{row['speedup']:.2f}x" if "speedup" in row else ""
        difference = f"{row['max_stat_difference']:.1e}" if "max_stat_difference" in row else ""
        print(f"| {row['step']} | {row['seconds']:.3f} | {rate} | {speedup} | {difference} |")
    print(f"raw faster_coco_eval is {report['fast_engine_speedup']:.1f}x faster than raw pycocotools")
