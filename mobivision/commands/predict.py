"""Predict with a trained checkpoint or an exported ONNX file on an image or a folder of images: JSON for programs,
pictures or lines for people.

Usage::

    python tools/predict.py MODEL IMAGE_OR_FOLDER [--out DIR] [--score-threshold 0.3] [--top-k 5] [--max-image-mpx 50]

A thin layer over the inference API (``mobivision.load(MODEL)``, ``mobivision/inference``): the model's own
evaluation pre-processing and decoding; this module finds and reads the files, prints one line per image and writes
``DIR/predictions.json`` plus ``DIR/<relative path>.jpg`` where the task draws a picture. Detectors: COCO results
(``image_id`` = the file's path relative to the input, boxes in original pixels, ``category_name``) and the boxes
drawn; classifiers: the top-k classes with probabilities; attribute models: every attribute's probability and
decision (at the thresholds tuned on validation) and a picture with the top-k present ones; geo models: the
predicted latitude/longitude and the top-k S2 cells; multi-task models: per image every head's results from one
backbone pass (``{"image", "heads": {head: its entries}}``) and one line naming each head. A file that cannot be
read, or has more than ``--max-image-mpx`` million pixels, is named on stderr and skipped (the others are
predicted); every input gets a picture of its own (``picture_names``; the renamed ones are listed).

Nothing but predict's own files is ever written over: ``DIR`` may not be the input folder or inside it, a picture
may not be named like an input, and a file already in ``DIR`` is replaced only if an earlier run wrote it (listed
in ``DIR/predict_report.json``, with the renamed, skipped and undrawable images); else one ``error: ...`` line
before anything is written. A bad input ends with one ``error: ...`` line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image

from mobivision.commands.cli import exit_code, positive_float, positive_int
from mobivision.data.image_folder import list_images
from mobivision.data.images import DEFAULT_MAX_IMAGE_MPX, load_rgb
from mobivision.errors import ConfigError, DataError
from mobivision.inference import Predictor, load


def find_images(source: str | Path) -> tuple[Path, list[Path]]:
    """The images to predict: ``source`` itself, or every image file under the folder ``source``."""
    source = Path(source)
    if source.is_file():
        return source.parent, [source]
    if not source.is_dir():
        raise DataError(f"no such image file or folder: {source}")
    return source, list_images(source)


REPORT = "predict_report.json"  # what a run wrote: a later run may replace those files, and no others
PREDICTIONS = "predictions.json"


def plan_outputs(root: Path, paths: list[Path], out: Path, *, folder_source: bool) -> dict[str, str]:
    """Each input's picture name (``picture_names``), after checking that ``out`` can take this run's files
    without touching anything it did not write. ``ConfigError`` naming the files if ``out`` is a file; is the
    input folder or inside it (a folder source: the pictures would be read as inputs by the next run); would hold a
    picture named like an input; or holds a file of the same name that no earlier predict run recorded in
    ``out/predict_report.json``."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out: {out} is a file, expected a folder")
    resolved_out, resolved_root = out.resolve(), root.resolve()
    if folder_source and resolved_out.is_relative_to(resolved_root):
        raise ConfigError(
            f"--out: {out} is inside the input folder {root}: predict never writes among the images it reads "
            f"(choose a folder outside it, e.g. --out {root.name}_predictions)"
        )
    pictures = picture_names([str(p.relative_to(root)) for p in paths])
    targets = [out / PREDICTIONS, out / REPORT, *(out / picture for picture in pictures.values())]
    inputs = {p.resolve() for p in paths}
    _refuse(f"--out: {out} would write over input images", [t for t in targets if t.resolve() in inputs])
    recorded = recorded_outputs(out)
    foreign = [t for t in targets if t.exists() and t.relative_to(out).as_posix() not in recorded]
    _refuse(f"--out: {out} holds files predict did not write (not in its {REPORT}); it replaces none", foreign)
    return pictures


def _refuse(problem: str, files: list[Path]) -> None:
    if files:
        shown = ", ".join(str(f) for f in files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        raise ConfigError(f"{problem}: {shown} (choose another --out)")


def recorded_outputs(out: Path) -> set[str]:
    """The files (relative to ``out``) that earlier predict runs wrote there, from ``out/predict_report.json``."""
    report = out / REPORT
    if not report.is_file():
        return set()
    try:
        written = json.loads(report.read_text(encoding="utf-8"))["written"]
        return {str(name) for name in written}
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--out: {report} is not a report of tools/predict.py ({exc}); it replaces none") from exc


def predict_files(
    predictor: Predictor,
    root: Path,
    paths: list[Path],
    out_dir: Path,
    pictures: dict[str, str],
    *,
    score_threshold: float,
    top_k: int,
) -> dict[str, Any]:
    """``predictor`` on ``paths`` in its batches, one line per image on stdout; writes ``out_dir/predictions.json``
    (every image's entries), ``out_dir/<picture>`` for each result with a picture (``pictures``: input name ->
    picture name, from ``plan_outputs``) and ``out_dir/predict_report.json`` (what was written, renamed, skipped,
    left without a picture), and returns that report. The report is written first, naming every file this run may
    write, so that a run stopped half-way can be run again. A file that cannot be read (or is over the pixel
    limit) is named on stderr and skipped; if none can be read, ``DataError``."""
    report: dict[str, Any] = {
        "written": sorted({PREDICTIONS, REPORT, *pictures.values()} | recorded_outputs(out_dir)),
        "pictures": {},
        "renamed": {name: picture for name, picture in pictures.items() if picture != _plain_picture(name)},
        "skipped": {},
        "no_picture": {},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out_dir / REPORT, report)
    entries: list[dict[str, Any]] = []  # a detector has one per box: an image may have none
    predicted = 0
    for start in range(0, len(paths), predictor.batch_size):
        chunk = []
        for path in paths[start : start + predictor.batch_size]:
            name = str(path.relative_to(root))
            try:
                chunk.append((name, load_rgb(path, max_image_mpx=predictor.max_image_mpx, option="--max-image-mpx")))
            except DataError as exc:  # unreadable, or over the pixel limit: named, skipped
                print(f"skipped: {exc}", file=sys.stderr)
                report["skipped"][name] = str(exc)
        if not chunk:
            continue
        names = [name for name, _ in chunk]
        results = predictor([image for _, image in chunk], names=names, score_threshold=score_threshold, top_k=top_k)
        predicted += len(results)
        for result in results:
            print(f"{result.image}: {result.line()}")
            entries += result.entries()
            picture = result.picture()
            if picture is not None:
                file = out_dir / pictures[result.image]
                file.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(picture).save(file, quality=92)
                report["pictures"][result.image] = pictures[result.image]
            elif result.drawing_problem:
                print(f"no picture: {result.image}: {result.drawing_problem}", file=sys.stderr)
                report["no_picture"][result.image] = result.drawing_problem
    if not predicted:
        raise DataError(f"none of the {len(paths)} image files under {root} can be read")
    _write_json(out_dir / PREDICTIONS, entries)
    _write_json(out_dir / REPORT, report)
    return report


def _write_json(file: Path, value: Any) -> None:
    file.write_text(json.dumps(value, indent=1) + "\n", encoding="utf-8")


def picture_names(names: list[str]) -> dict[str, str]:
    """Each input's picture file, all different: ``<name without extension>.jpg``, or ``<name>.jpg`` for inputs
    that would share one (``cat.png`` and ``cat.jpg`` get ``cat.png.jpg`` and ``cat.jpg.jpg``); a name still
    taken (``x.jpg.jpg`` beside ``x.jpg`` and ``x.png``) gets ``<name>~2.jpg``, ``~3``... Resolved in sorted
    order of the inputs, so the same inputs always get the same names."""
    plain = {name: _plain_picture(name) for name in names}
    shared = Counter(plain.values())
    taken: set[str] = set()
    pictures = {}
    for name in sorted(names):
        candidate = plain[name] if shared[plain[name]] == 1 else f"{name}.jpg"
        copy = 1
        while candidate in taken:
            copy += 1
            candidate = f"{name}~{copy}.jpg"
        taken.add(candidate)
        pictures[name] = candidate
    return {name: pictures[name] for name in names}


def _plain_picture(name: str) -> str:
    return str(Path(name).with_suffix(".jpg"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "checkpoint", help="a mobivision task checkpoint (.ckpt), an exported .onnx or an OpenVINO IR (.xml)"
    )
    parser.add_argument("source", help="an image file or a folder of images")
    parser.add_argument("--out", default="predictions", help="output folder (default: ./predictions)")
    parser.add_argument(
        "--max-image-mpx",
        type=positive_float,
        default=DEFAULT_MAX_IMAGE_MPX,
        help=f"images over this many million pixels are named and skipped (default {DEFAULT_MAX_IMAGE_MPX:g})",
    )
    parser.add_argument("--score-threshold", type=float, default=0.3, help="detections kept (default 0.3)")
    parser.add_argument(
        "--top-k", type=positive_int, default=5, help="classes / attributes / cells listed per image (default 5)"
    )
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    if not 0.0 <= args.score_threshold <= 1.0:
        raise ConfigError(f"--score-threshold must be in [0, 1], got {args.score_threshold}")
    predictor = load(args.checkpoint, max_image_mpx=args.max_image_mpx)
    root, paths = find_images(args.source)
    out = Path(args.out)
    pictures = plan_outputs(root, paths, out, folder_source=Path(args.source).is_dir())
    try:
        report = predict_files(
            predictor, root, paths, out, pictures, score_threshold=args.score_threshold, top_k=args.top_k
        )
    except OSError as exc:  # a folder that cannot be created (a path under a file), a full disk, no permission
        raise ConfigError(f"--out: cannot write {exc.filename or out}: {exc.strerror or exc}") from exc
    renamed = "".join(f"\n  {name} -> {picture}" for name, picture in report["renamed"].items())
    if renamed:
        print(f"pictures renamed so that none overwrites another:{renamed}")
    print(f"wrote {out / PREDICTIONS} and {len(report['pictures'])} pictures (all listed in {out / REPORT})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_code(lambda: run(args))
