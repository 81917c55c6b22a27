"""Predict with a trained checkpoint on an image or a folder of images.

Usage::

    python tools/predict.py CHECKPOINT IMAGE_OR_FOLDER [--out DIR] [--score-threshold 0.3] [--top-k 5]

Detectors write ``DIR/predictions.json`` (COCO results with ``category_name``) and one picture per image
with the boxes drawn; classifiers print the top-k classes with probabilities and write
``DIR/predictions.json``; attribute models write every attribute's probability and decision (at the thresholds
tuned on validation) to ``DIR/predictions.json`` and one picture per image with the top-k present attributes;
geo models write each image's predicted latitude/longitude and top-k S2 cells to ``DIR/predictions.json``.
A bad input ends with one ``error: ...`` line and exit code 2.
"""

from __future__ import annotations

import _toolpath  # noqa: F401 (must come first, see tools/_toolpath.py)

import argparse
import sys
from pathlib import Path

from mobivision.cli import exit_code, positive_int
from mobivision.errors import ConfigError
from tasks.classification import ClassificationTask
from tasks.detection import DetectionTask
from tasks.face_attributes import AttributeTask
from tasks.geolocation import GeoTask
from tasks.predict import find_images, predict_attributes, predict_classes, predict_detections, predict_locations
from tasks.runner import load_task


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a mobivision task checkpoint (.ckpt)")
    parser.add_argument("source", help="an image file or a folder of images")
    parser.add_argument("--out", default="predictions", help="output folder (default: ./predictions)")
    parser.add_argument("--score-threshold", type=float, default=0.3, help="detections kept (default 0.3)")
    parser.add_argument(
        "--top-k", type=positive_int, default=5, help="classes / attributes / cells listed per image (default 5)"
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    if not 0.0 <= args.score_threshold <= 1.0:
        raise ConfigError(f"--score-threshold must be in [0, 1], got {args.score_threshold}")
    task = load_task(args.checkpoint).eval()
    root, paths = find_images(args.source)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(task, DetectionTask):
        results = predict_detections(task, root, paths, out, score_threshold=args.score_threshold)
        print(f"{len(results)} detections (score >= {args.score_threshold}) on {len(paths)} images")
    elif isinstance(task, AttributeTask):
        for item in predict_attributes(task, root, paths, out, top_k=args.top_k):
            print(f"{item['image']}: {', '.join(item['present'][: args.top_k]) or '(no attribute present)'}")
    elif isinstance(task, GeoTask):
        for item in predict_locations(task, root, paths, out, top_k=args.top_k):
            print(f"{item['image']}: {item['lat']:.4f}, {item['lon']:.4f} (best cell {item['top_k'][0]['token']})")
    elif isinstance(task, ClassificationTask):
        for item in predict_classes(task, root, paths, out, top_k=args.top_k):
            shown = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in item["top_k"])
            print(f"{item['image']}: {shown}")
    else:
        raise ConfigError(f"{args.checkpoint}: predict does not support {type(task).__name__} yet")
    print(f"wrote {out / 'predictions.json'}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_code(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
