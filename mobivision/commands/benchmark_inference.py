"""``tools/benchmark.py inference MODEL``: ``predictor(list_of_paths)`` against a hand-written loop, same model and
batch size.

The hand-written loop is what a user writes without the API: read each file (``load_rgb``), pre-process it (the
task's own ``preprocess`` for a checkpoint; ``prepare`` for an ONNX file), stack a batch and run the network (the
task in ``torch.inference_mode``, a detector followed by its own decoding, ``SSDDetector.predict``; the ONNX
session, whose outputs it leaves undecoded: for a detector use ``model_nms.onnx``, NMS in the graph, to compare
like with like). The API does all of that plus decoding every head into result objects. Both run on the same
JPEG files (photo-like, sizes around 640 x 480), alternating rounds (``mobivision.timing.time_steps``); the table
gives images/s and ``api / loop``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import mobivision
from mobivision.commands.cli import positive_int
from mobivision.data.images import load_rgb
from mobivision.inference.preprocess import prepare_batch
from mobivision.timing import time_steps


def add_inference_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("inference", help="mobivision.load(MODEL)(paths) vs a hand-written loop: images/s")
    parser.add_argument("model", help="a task checkpoint (.ckpt) or an exported .onnx")
    parser.add_argument("--images", type=positive_int, default=64, help="JPEG files predicted per round (default 64)")
    parser.add_argument("--batch", type=positive_int, default=16, help="batch size of both (default 16)")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch / ONNX Runtime threads (default 1)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="timed rounds each (default 5)")


def write_photos(folder: Path, count: int, *, seed: int = 0) -> list[Path]:
    """``count`` photo-like JPEGs (smooth colour fields, sizes around 640 x 480) in ``folder``."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        height, width = int(rng.integers(400, 560)), int(rng.integers(560, 720))
        small = rng.integers(0, 256, (height // 24, width // 24, 3), dtype=np.uint8)
        path = folder / f"photo_{i:04d}.jpg"
        Image.fromarray(small).resize((width, height), Image.BICUBIC).save(path, quality=90)
        paths.append(path)
    return paths


def _hand_loop(model: Path, batch_size: int, threads: int):
    """The loop over batches a user writes by hand, as a function of the file paths."""
    if model.suffix == ".onnx":
        from mobivision.inference.sessions import onnx_session

        session = onnx_session(model, threads=threads)
        spec = mobivision.load(model).preprocessing
        name = session.get_inputs()[0].name

        def run_onnx(paths: list[Path]) -> None:
            for start in range(0, len(paths), batch_size):
                batch, _ = prepare_batch([load_rgb(p) for p in paths[start : start + batch_size]], spec)
                session.run(None, {name: batch})

        return run_onnx
    import torch

    from mobivision.tasks.runner import load_task

    task = load_task(model).eval()
    decode = getattr(task.model, "predict", None)  # a detector's own decoding (torchvision's batched NMS in C++)

    def run_torch(paths: list[Path]) -> None:
        for start in range(0, len(paths), batch_size):
            batch = torch.stack([task.preprocess(load_rgb(p)) for p in paths[start : start + batch_size]])
            with torch.inference_mode():
                outputs = task(batch)
                if decode is not None:
                    decode(outputs, task.input_size)

    return run_torch


def run_inference(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    model = Path(args.model)
    predictor = mobivision.load(model, batch_size=args.batch, threads=args.threads)
    loop = _hand_loop(model, args.batch, args.threads)
    with tempfile.TemporaryDirectory(prefix="mobivision-inference-") as folder:
        paths = write_photos(Path(folder), args.images)
        seconds = time_steps(
            {"api": lambda: predictor(paths), "loop": lambda: loop(paths)}, warmup=1, repeats=args.repeats
        ).medians()
    rates = {name: args.images / value for name, value in seconds.items()}
    return {
        "model": str(model),
        "kind": predictor.kind,
        "images": args.images,
        "batch": args.batch,
        "threads": args.threads,
        "images_per_s": rates,
        "api_over_loop": rates["api"] / rates["loop"],
    }


def print_inference_report(report: dict[str, Any]) -> None:
    print(
        f"{report['model']} ({report['kind']}): {report['images']} JPEGs, batch {report['batch']}, "
        f"{report['threads']} thread(s)"
    )
    print("| run | images/s |\n|---|---|")
    print(f"| mobivision.load(model)(paths) | {report['images_per_s']['api']:.1f} |")
    print(f"| hand-written loop (read, pre-process, network; a checkpoint's detector: + its decoding) | "
          f"{report['images_per_s']['loop']:.1f} |")  # fmt: skip
    print(f"api / loop: {report['api_over_loop']:.3f}")
