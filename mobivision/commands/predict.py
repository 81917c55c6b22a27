"""Predict with a trained checkpoint or an exported ONNX file on an image or a folder of images: JSON for programs,
pictures or lines for people.

Usage::

    python tools/predict.py MODEL IMAGE_OR_FOLDER [--out DIR] [--score-threshold 0.3] [--top-k 5]

A thin layer over the inference API (``mobivision.load(MODEL)``, ``mobivision/inference``): the model's own
evaluation pre-processing and decoding; this module finds and reads the files, prints one line per image and writes
``DIR/predictions.json`` plus ``DIR/<relative path>.jpg`` where the task draws a picture. Detectors: COCO results
(``image_id`` = the file's path relative to the input, boxes in original pixels, ``category_name``) and the boxes
drawn; classifiers: the top-k classes with probabilities; attribute models: every attribute's probability and
decision (at the thresholds tuned on validation) and a picture with the top-k present ones; geo models: the
predicted latitude/longitude and the top-k S2 cells; multi-head models: per image every head's results from one
backbone pass (``{"image", "heads": {head: its entries}}``) and one line naming each head. A file that cannot be
read is named on stderr and skipped (the others are predicted); inputs whose names differ only in their extension
get pictures of their own. A bad input ends with one ``error: ...`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from mobivision.cli import exit_code, positive_int
from mobivision.data.image_folder import list_images
from mobivision.data.images import load_rgb
from mobivision.errors import ConfigError, DataError
from mobivision.inference import Predictor, Result, load


def find_images(source: str | Path) -> tuple[Path, list[Path]]:
    """The images to predict: ``source`` itself, or every image file under the folder ``source``."""
    source = Path(source)
    if source.is_file():
        return source.parent, [source]
    if not source.is_dir():
        raise DataError(f"no such image file or folder: {source}")
    return source, list_images(source)


def predict_files(
    predictor: Predictor, root: Path, paths: list[Path], out_dir: Path, *, score_threshold: float, top_k: int
) -> dict[Path, Result]:
    """``predictor`` on ``paths`` in its batches; writes ``out_dir/predictions.json`` (every image's entries) and
    ``out_dir/<picture name>`` for each result with a picture (``picture_names``). A file that cannot be read is
    named on stderr and skipped; if none can be read, ``DataError``."""
    pictures = picture_names([str(p.relative_to(root)) for p in paths])
    results: dict[Path, Result] = {}
    for start in range(0, len(paths), predictor.batch_size):
        chunk = [(p, image) for p in paths[start : start + predictor.batch_size] if (image := _readable(p)) is not None]
        names = [str(path.relative_to(root)) for path, _ in chunk]
        predicted = predictor([image for _, image in chunk], names=names, score_threshold=score_threshold, top_k=top_k)
        for (path, _), result in zip(chunk, predicted if chunk else [], strict=True):
            picture = result.picture()
            if picture is not None:
                file = out_dir / pictures[result.image]
                file.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(picture).save(file, quality=92)
            results[path] = result
    if not results:
        raise DataError(f"none of the {len(paths)} image files under {root} can be read")
    entries = [entry for result in results.values() for entry in result.entries()]
    (out_dir / "predictions.json").write_text(json.dumps(entries, indent=1) + "\n")
    return results


def _readable(path: Path) -> np.ndarray | None:
    """The image, or None after naming the file and the reason on stderr."""
    try:
        return load_rgb(path)
    except DataError as exc:
        print(f"skipped: {exc}", file=sys.stderr)
        return None


def picture_names(names: list[str]) -> dict[str, str]:
    """Each input's picture file: ``<name without extension>.jpg``, or ``<name>.jpg`` for inputs that would share
    one (``cat.png`` and ``cat.jpg`` get ``cat.png.jpg`` and ``cat.jpg.jpg``), so no picture overwrites another."""
    plain = {name: str(Path(name).with_suffix(".jpg")) for name in names}
    taken = Counter(plain.values())
    return {name: picture if taken[picture] == 1 else f"{name}.jpg" for name, picture in plain.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "checkpoint", help="a mobivision task checkpoint (.ckpt), an exported .onnx or an OpenVINO IR (.xml)"
    )
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
    predictor = load(args.checkpoint)
    root, paths = find_images(args.source)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = predict_files(predictor, root, paths, out, score_threshold=args.score_threshold, top_k=args.top_k)
    for path, result in results.items():
        print(f"{path.relative_to(root)}: {result.line()}")
    print(f"wrote {out / 'predictions.json'}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_code(lambda: run(args))
