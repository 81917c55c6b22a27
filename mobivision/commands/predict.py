"""Predictions of a trained task on image files: JSON for programs, pictures or lines for people.

What each task writes is its own ``predict`` (the task protocol); this module batches the files and writes the
results. Detection writes COCO-style results (``image_id`` is the file's path relative to the input, boxes in
original pixels, plus ``category_name``) and one picture per image with boxes, class names and scores
drawn on it; classification writes the top-k class names with probabilities; attributes every probability
and decision plus a picture; geo-localization the predicted coordinates and the top-k cells. Pre-processing
repeats the evaluation transform recorded in the checkpoint.
Pictures are drawn by ``mobivision.visualize`` (torchvision's ``draw_bounding_boxes``).

Command line (``tools/predict.py``, ``mobivision predict``):

Predict with a trained checkpoint on an image or a folder of images.

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

import argparse
import json
from pathlib import Path

from PIL import Image

from mobivision.cli import exit_code, positive_int
from mobivision.data.image_folder import list_images
from mobivision.data.records import load_rgb
from mobivision.errors import ConfigError, DataError
from mobivision.tasks.base import ImagePrediction, PredictOptions, TaskModule
from mobivision.tasks.runner import load_task


def find_images(source: str | Path) -> tuple[Path, list[Path]]:
    """The images to predict: ``source`` itself, or every image file under the folder ``source``."""
    source = Path(source)
    if source.is_file():
        return source.parent, [source]
    if not source.is_dir():
        raise DataError(f"no such image file or folder: {source}")
    return source, list_images(source)


def predict_files(
    task: TaskModule, root: Path, paths: list[Path], out_dir: Path, options: PredictOptions, *, batch_size: int = 16
) -> list[ImagePrediction]:
    """``task.predict`` on ``paths`` in batches; writes ``out_dir/predictions.json`` (every image's entries) and
    ``out_dir/<relative path>.jpg`` for each prediction with a picture."""
    predictions = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        names = [str(p.relative_to(root)) for p in chunk]
        for name, prediction in zip(names, task.predict([load_rgb(p) for p in chunk], names, options), strict=True):
            if prediction.picture is not None:
                picture = out_dir / Path(name).with_suffix(".jpg")
                picture.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(prediction.picture).save(picture, quality=92)
            predictions.append(prediction)
    entries = [entry for prediction in predictions for entry in prediction.entries]
    (out_dir / "predictions.json").write_text(json.dumps(entries, indent=1) + "\n")
    return predictions


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
    options = PredictOptions(score_threshold=args.score_threshold, top_k=args.top_k)
    for path, prediction in zip(paths, predict_files(task, root, paths, out, options), strict=True):
        if prediction.line is not None:
            print(f"{path.relative_to(root)}: {prediction.line}")
    print(f"wrote {out / 'predictions.json'}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_code(lambda: run(args))
