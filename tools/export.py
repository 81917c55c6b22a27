"""Export a trained checkpoint of any task to ONNX, INT8 ONNX, TorchScript and mobile formats, each verified.

Usage::

    python tools/export.py CHECKPOINT [--out DIR] [--formats onnx,onnx-nms,int8,torchscript,pte,tflite]
        [--opset 17] [--exporter torchscript|dynamo] [--calibration-images 200] [--parity-images 8]
        [--eval-images N] [--threads N] [--max-metric-drop X] [--name model]

Writes ``DIR/model.onnx`` (dynamic batch; pre-processing, labels and output meanings in its metadata),
``model_nms.onnx`` (detectors: decoding and NMS in the graph), ``model.int8.onnx`` (static INT8, calibrated on
training images), ``model.ts`` (TorchScript), ``model.pte`` (ExecuTorch, needs ``executorch``) and
``model.tflite`` (LiteRT, needs ``litert-torch`` and ``ai-edge-litert``), plus ``export_report.json``. Each file is
run against the PyTorch model right away: a float format whose outputs differ beyond the stated tolerance, or an
INT8 model that loses more than ``--max-metric-drop`` of the task's metric, ends with exit code 2 and the report.
Default formats: onnx, onnx-nms (detectors), int8, torchscript; default DIR: ``<run folder>/export``.
A bad input (missing, truncated or foreign checkpoint, weights that do not fit) ends with one ``error: ...`` line.
"""

from __future__ import annotations

import _toolpath  # noqa: F401 (must come first, see tools/_toolpath.py)

import argparse
import sys
from pathlib import Path

from mobivision.cli import exit_code, positive_int
from mobivision.errors import ConfigError
from tasks.export import FORMATS, ExportRow, export_task, load_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a mobivision task checkpoint (.ckpt)")
    parser.add_argument("--out", help="output folder (default: <run folder>/export beside checkpoints/)")
    parser.add_argument("--formats", help=f"comma-separated, from {','.join(FORMATS)} (default: all but mobile)")
    parser.add_argument("--name", default="model", help="file stem of the exported files (default: model)")
    parser.add_argument("--opset", type=positive_int, default=17, help="ONNX opset (default 17)")
    parser.add_argument(
        "--exporter", choices=("torchscript", "dynamo"), default="torchscript", help="torch.onnx exporter"
    )
    parser.add_argument(
        "--calibration-images", type=positive_int, default=200, help="training images calibrating INT8 (200)"
    )
    parser.add_argument(
        "--parity-images", type=int, default=8, help="validation images in the parity check besides random ones (8)"
    )
    parser.add_argument("--eval-images", type=positive_int, help="validation images for the INT8 metric (all)")
    parser.add_argument("--threads", type=positive_int, help="ONNX Runtime threads (default: ORT's)")
    parser.add_argument(
        "--max-metric-drop",
        type=float,
        help="fail if INT8 loses more than this on the task's metric (fraction: 0.01 = 1 point of top-1)",
    )
    return parser.parse_args(argv)


def _progress(row: ExportRow) -> None:
    print(f"{row.format}: {row.path} ({row.size_mb:.2f} MB) {row.check}", flush=True)


def run(args: argparse.Namespace) -> None:
    if args.parity_images < 0:
        raise ConfigError(f"--parity-images must be >= 0, got {args.parity_images}")
    if args.max_metric_drop is not None and args.max_metric_drop < 0:
        raise ConfigError(f"--max-metric-drop must be >= 0, got {args.max_metric_drop}")
    checkpoint = Path(args.checkpoint)
    task = load_checkpoint(checkpoint)
    out = Path(args.out) if args.out else checkpoint.resolve().parent.parent / "export"
    result = export_task(
        task,
        out,
        formats=args.formats,
        name=args.name,
        opset=args.opset,
        exporter=args.exporter,
        calibration_images=args.calibration_images,
        parity_images=args.parity_images,
        eval_images=args.eval_images,
        threads=args.threads,
        max_metric_drop=args.max_metric_drop,
        checkpoint=checkpoint,
        on_row=_progress,
    )
    print(result.table())
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {out / 'export_report.json'}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_code(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
