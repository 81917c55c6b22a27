"""Predict with a trained checkpoint on an image or a folder of images: JSON for programs, pictures or lines
for people.

Usage::

    python tools/predict.py CHECKPOINT IMAGE_OR_FOLDER [--out DIR] [--score-threshold 0.3] [--top-k 5]

What each image gets is its task's own ``predict`` (the task protocol), with the evaluation pre-processing
recorded in the checkpoint; this module batches the files, prints one line per image and writes
``DIR/predictions.json`` plus ``DIR/<relative path>.jpg`` where the task draws a picture. Detectors: COCO results
(``image_id`` = the file's path relative to the input, boxes in original pixels, ``category_name``) and the boxes
drawn; classifiers: the top-k classes with probabilities; attribute models: every attribute's probability and
decision (at the thresholds tuned on validation) and a picture with the top-k present ones; geo models: the
predicted latitude/longitude and the top-k S2 cells; multi-head models: per image every head's results from one
backbone pass (``{"image", "heads": {head: its entries}}``) and one line naming each head. A bad input ends with one
``error: ...`` line and exit code 2.
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
