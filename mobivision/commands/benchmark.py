"""CPU speed of our models against their peers (timm, torchvision), measured in one interleaved run.

``backbone``: our MobileNetV1 against timm's.

The MobileNets paper (arXiv 1704.04861, Sec. 3.1-3.2) argues for depthwise-separable convolutions because
they run fast on real hardware, so our implementation should be as fast as a well-tuned peer; the table prints
``ours / timm`` in time. For ``mobilenet_v1`` at width W it compares
``create_model("mobilenet_v1", width_mult=W)`` with timm's MobileNetV1 of that width (``mobilenetv1_100`` /
``mobilenetv1_125``: the same network, same multiply-adds and parameters; other widths: ours only) on

- batch-1 and batch-32 inference latency at ``--resolution`` (median ms, eval mode, inference mode);
- training throughput: a plain SGD step (forward, cross-entropy, backward, update) on batch 16 at 160 px,
  after a few warm-up steps (images/s from the median step time).

The two models' measurements alternate (``mobivision.timing.time_steps``). Compare only the ratios: absolute
times depend on the machine and its load.

``latency``: batch-1 CPU latency of a task checkpoint (or of a fresh ``--model`` with random weights) in PyTorch
eager, ONNX Runtime fp32 and, with OpenVINO installed (``--no-openvino``: without), OpenVINO f32 on the same
ONNX file and OpenVINO's default precision where the CPU has native bf16 (bf16, not fp32); then INT8: ONNX
Runtime's static QDQ file, OpenVINO's NNCF IR (both calibrated on ``--calibration-images`` images of the
checkpoint's training data, or random pixels without one) and OpenVINO on the QDQ file; beside timm's
MobileNetV1 of the same width (eager, ONNX Runtime, OpenVINO fp32; none where timm lacks the width), all
interleaved. The table: median and p90 ms, time ratio to ``mobivision eager`` (and the speed-up) and to the
fastest row, GFLOP/s achieved (2 x multiply-adds / median), size on disk (ONNX files, IR: xml + bin; eager: the
state dict), multiply-adds and parameters; under it the fastest row, the recommended CPU path (our fastest row)
and each runtime's INT8 speed-up over its fp32, also in the JSON report's ``summary``. Torch, ORT intra-op and
OpenVINO threads are ``--threads`` (ORT: inter-op 1, all graph optimizations; OpenVINO: latency hint). With a
checkpoint, the task's metric of the fp32 ONNX, INT8 ONNX and OpenVINO INT8 files on its validation split. The
logic is in ``mobivision.runtime_latency`` (runtimes, rows) and ``mobivision.commands.benchmark_latency``
(checkpoints, data).

``coco-scale``: COCO-sized synthetic annotation files and real-size JPEGs: ``read_coco`` at train2017 size,
``coco_evaluate`` with each engine beside the raw engine at val2017 size, and the SSD / SSDLite training input
pipelines per worker (one process, one thread) beside torchvision's detection reference with the v2 API, in one
table of times, images/s and ``ours speed / peer speed`` (``mobivision.commands.benchmark_coco``,
``mobivision.commands.benchmark_pipeline``).

``inference``: ``mobivision.load(MODEL)(paths)`` against a hand-written loop over the same model and batch size,
images/s and their ratio (``mobivision.commands.benchmark_inference``).

``multitask``: a multi-task checkpoint's one backbone pass against its heads as separate networks: multiply-adds,
parameters and batch-1 latency, and the ratios (``mobivision.commands.benchmark_multitask``).

``detector``: our SSDLite320 on MobileNetV1 and on MobileNetV3-Large against torchvision's
``ssdlite320_mobilenet_v3_large``, with the time ratio to it. Our V3 model gets torchvision's
random weights (``load_torchvision_ssdlite``), so both compute the same detections. Measured: batch-1
end-to-end latency (normalisation, network, decoding + NMS) with the share spent in post-processing, and
training images/s (batch 8 at 320 px, SGD step on the SSD loss with four boxes per image).

``training``: training images/s of our two COCO recipes' detectors (``ssdlite320_mobilenet_v3_large``,
``ssd300_mobilenet_v1``, 81 classes) beside torchvision's SSDLite320-V3 in eager: model only (batches already on
the device) in eager, channels_last, bf16 and ``torch.compile`` variants, and end to end on real-size JPEGs through
``DetectionDataModule``'s loader (float or uint8 batches, normalised on the device), with the data-bound share
(``mobivision.commands.benchmark_training``).

Usage::

    python tools/benchmark.py [backbone] [--width 1.0] [--resolution 224] [--threads N] [--repeats 10]
        [--channels-last] [--json]
    python tools/benchmark.py detector [--threads N] [--repeats 10] [--json] [--device cuda]
        [--train-batch 8] [--bf16] [--channels-last]
    python tools/benchmark.py coco-scale [--images 5000] [--train-images 118287] [--detections 100]
        [--pipeline-images 200] [--out DIR]
    python tools/benchmark.py training [--device cuda] [--batch 64] [--variants eager,bf16+channels_last+compile]
        [--compile-mode default] [--repeats 10] [--images 512] [--workers 8] [--epochs 2] [--json]
    python tools/benchmark.py multitask CKPT [--threads N] [--repeats 50] [--warmup 10]
    python tools/benchmark.py inference MODEL [--images 64] [--batch 16] [--threads 1] [--repeats 5]
    python tools/benchmark.py latency [CKPT | --model mobilenet_v1 --width 1.0 --resolution 224] [--threads 2]
        [--repeats 50] [--warmup 10] [--calibration-images 100] [--no-int8] [--int8-target any|vnni] [--no-timm]
        [--no-openvino] [--json out.json] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich import box
from rich.console import Console
from rich.table import Table
from torch import nn

from mobivision import create_model, list_models
from mobivision.commands.benchmark_coco import add_coco_scale_parser, print_coco_scale_report, run_coco_scale
from mobivision.commands.benchmark_detector import add_detector_parser, print_detector_report, run_detector
from mobivision.commands.benchmark_inference import add_inference_parser, print_inference_report, run_inference
from mobivision.commands.benchmark_multitask import add_multitask_parser, print_multitask_report, run_multitask
from mobivision.commands.benchmark_training import add_training_parser, print_training_report, run_training
from mobivision.commands.cli import exit_code, non_negative_float, positive_float, positive_int
from mobivision.export.quantize import INT8_TARGETS
from mobivision.profiling import count_parameters
from mobivision.runtime_latency import BF16_ROW, SETTLE_SECONDS, LatencyConfig, timm_peer_name
from mobivision.timing import time_steps

COMMANDS = ("backbone", "detector", "latency", "multitask", "coco-scale", "training", "inference")
INFERENCE_BATCHES = (1, 32)
TRAIN_BATCH, TRAIN_RESOLUTION, TRAIN_WARMUP = 16, 160, 3
INFERENCE_WARMUP = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    backbone = commands.add_parser("backbone", help="mobilenet_v1 vs timm: inference latency, training images/s")
    backbone.add_argument("--width", type=positive_float, default=1.0, help="width multiplier (default 1.0)")
    backbone.add_argument("--resolution", type=positive_int, default=224, help="inference input size")
    backbone.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's)")
    backbone.add_argument("--repeats", type=positive_int, default=10, help="timed repeats per model (median)")
    backbone.add_argument("--channels-last", action="store_true", help="NHWC memory format for models and inputs")
    backbone.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    add_detector_parser(commands)
    add_latency_parser(commands)
    add_multitask_parser(commands)
    add_inference_parser(commands)
    add_coco_scale_parser(commands)
    add_training_parser(commands)
    return parser


def add_latency_parser(commands: argparse._SubParsersAction) -> None:
    latency = commands.add_parser(
        "latency", help="batch-1 CPU latency: eager vs ONNX Runtime / OpenVINO fp32 and INT8, beside timm's peer"
    )
    latency.add_argument("checkpoint", nargs="?", help="a mobivision task checkpoint (.ckpt); else --model")
    fresh = "no checkpoint: a fresh 1000-class classifier with random weights (default mobilenet_v1)"
    latency.add_argument("--model", choices=list_models(), help=fresh)
    latency.add_argument("--width", type=positive_float, help="--model's width multiplier (default 1.0)")
    latency.add_argument("--resolution", type=positive_int, help="--model's input size (default 224)")
    latency.add_argument("--threads", type=positive_int, help="torch, ORT and OpenVINO threads (default: torch's)")
    latency.add_argument("--repeats", type=positive_int, default=50, help="timed rounds (default 50)")
    latency.add_argument("--warmup", type=int, default=10, help="untimed rounds first (default 10)")
    settle = "sleep before each timed call so the previous runtime's spinning threads are idle (default: "
    settle += f"{1e3 * SETTLE_SECONDS:g} with --threads > 1, else 0)"
    latency.add_argument("--settle-ms", type=non_negative_float, help=settle)
    latency.add_argument(
        "--calibration-images", type=positive_int, default=100, help="INT8 calibration images (default 100)"
    )
    latency.add_argument("--no-int8", action="store_true", help="skip the INT8 model")
    latency.add_argument(
        "--int8-target", choices=tuple(INT8_TARGETS), default="any", help="INT8 weights: any (7-bit) or vnni (8-bit)"
    )
    latency.add_argument("--no-timm", action="store_true", help="skip timm's rows")
    latency.add_argument("--no-openvino", action="store_true", help="skip the OpenVINO rows")
    latency.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON to FILE")
    latency.add_argument(
        "--out", type=Path, metavar="DIR", help="keep the model files here (default: a temporary folder, deleted)"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse, with ``backbone`` as the default subcommand."""
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv = ["backbone", *argv]
    return build_parser().parse_args(argv)


def build_models(width: float, *, channels_last: bool) -> tuple[dict[str, nn.Module], str | None, str]:
    """Ours and, where timm has the same width, timm's peer; its name, or None and a note explaining why not."""
    models = {"ours": create_model("mobilenet_v1", width_mult=width)}
    peer, note = timm_peer_name("mobilenet_v1", width)
    if peer is not None:
        import timm

        models["timm"] = timm.create_model(peer, pretrained=False)
    if channels_last:
        models = {name: model.to(memory_format=torch.channels_last) for name, model in models.items()}
    return models, peer, note


def _images(batch: int, resolution: int, *, channels_last: bool) -> torch.Tensor:
    x = torch.randn(batch, 3, resolution, resolution)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _inference_step(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        with torch.inference_mode():
            model(x)

    return step


def _train_step(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    labels = torch.randint(0, 1000, (x.shape[0],))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), labels).backward()
        optimizer.step()

    return step


def run_backbone(args: argparse.Namespace) -> dict[str, Any]:
    """Measure every metric for each model; results hold seconds-based figures and ours/timm ratios."""
    models, peer, note = build_models(args.width, channels_last=args.channels_last)
    results = []
    for model in models.values():
        model.eval()
    for batch in INFERENCE_BATCHES:
        x = _images(batch, args.resolution, channels_last=args.channels_last)
        steps = {name: _inference_step(model, x) for name, model in models.items()}
        seconds = time_steps(steps, warmup=INFERENCE_WARMUP, repeats=args.repeats).medians()
        results.append(_result(f"inference batch {batch} @ {args.resolution} (ms)", seconds, lambda s: 1e3 * s))
    for model in models.values():
        model.train()
    x = _images(TRAIN_BATCH, TRAIN_RESOLUTION, channels_last=args.channels_last)
    steps = {name: _train_step(model, x) for name, model in models.items()}
    seconds = time_steps(steps, warmup=TRAIN_WARMUP, repeats=args.repeats).medians()
    results.append(
        _result(f"training batch {TRAIN_BATCH} @ {TRAIN_RESOLUTION} (images/s)", seconds, lambda s: TRAIN_BATCH / s)
    )
    return {
        "config": {
            "width": args.width,
            "resolution": args.resolution,
            "repeats": args.repeats,
            "channels_last": args.channels_last,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "timm_model": peer,
            "params": {name: count_parameters(model) for name, model in models.items()},
        },
        "note": note,
        "results": results,
    }


def _result(metric: str, seconds: dict[str, float], convert: Callable[[float], float]) -> dict[str, Any]:
    """One metric: ours, timm (or None) and the time ratio ours/timm (above 1: ours is slower)."""
    timm_seconds = seconds.get("timm")
    return {
        "metric": metric,
        "ours": convert(seconds["ours"]),
        "timm": None if timm_seconds is None else convert(timm_seconds),
        "time_ratio": None if timm_seconds is None else seconds["ours"] / timm_seconds,
    }


def print_report(report: dict[str, Any]) -> None:
    config = report["config"]
    peer = f"timm {config['timm_model']}" if config["timm_model"] else "no timm peer"
    title = f"mobilenet_v1 {config['width']} vs {peer}: {config['threads']} threads, median of {config['repeats']}"
    title += ", channels_last" if config["channels_last"] else ""
    table = Table(title=title, box=box.SIMPLE_HEAD)
    table.add_column("metric")
    for column in ("ours", "timm", "time ours/timm"):
        table.add_column(column, justify="right")
    for result in report["results"]:
        ratio = result["time_ratio"]
        table.add_row(
            result["metric"],
            f"{result['ours']:.1f}",
            "-" if result["timm"] is None else f"{result['timm']:.1f}",
            "-" if ratio is None else f"{ratio:.3f}",
        )
    console = Console()
    console.print(table)
    console.print(f"parameters: {config['params']}; torch {config['torch']}, {config['cpus']} CPUs", highlight=False)
    if report["note"]:
        console.print(report["note"], highlight=False)


LATENCY_DEFAULTS = {"model": "mobilenet_v1", "width": 1.0, "resolution": 224}


def check_latency_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A checkpoint decides the network: --model, --width and --resolution are for the no-checkpoint case."""
    if args.warmup < 0:
        parser.error(f"latency --warmup: must be an integer >= 0, got {args.warmup}")
    given = [f"--{name}" for name in LATENCY_DEFAULTS if getattr(args, name) is not None]
    if args.checkpoint is not None and given:
        parser.error(f"latency: {', '.join(given)} describe a fresh model; a checkpoint brings its own")
    for name, value in LATENCY_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def run_latency(args: argparse.Namespace) -> dict[str, Any]:
    """Build the subject (checkpoint or fresh model), time it, score INT8; writes ``--json`` if asked."""
    from mobivision.commands.benchmark_latency import checkpoint_subject, fresh_subject
    from mobivision.commands.benchmark_latency import run_latency as run

    if args.checkpoint is not None:
        subject = checkpoint_subject(args.checkpoint)
    else:
        subject = fresh_subject(args.model, args.width, args.resolution)
    config = LatencyConfig(
        threads=args.threads or torch.get_num_threads(),
        repeats=args.repeats,
        warmup=args.warmup,
        settle=None if args.settle_ms is None else args.settle_ms / 1e3,
        int8=not args.no_int8,
        int8_target=args.int8_target,
        timm=not args.no_timm,
        openvino=not args.no_openvino,
    )
    with tempfile.TemporaryDirectory(prefix="mobivision-latency-") as tmp:
        report = run(subject, config, args.out or tmp, calibration_count=args.calibration_images)
    if args.out is None:
        report["notes"].append("model files written to a temporary folder, deleted (--out DIR keeps them)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


LATENCY_COLUMNS = (
    "runtime", "median ms", "p90 ms", "time / eager", "speed-up", "time / fastest", "GFLOP/s", "size MB", "MACs (M)",
    "params (M)",
)  # fmt: skip


def _latency_cells(row: dict[str, Any]) -> tuple[str, ...]:
    """One row of the latency table, in ``LATENCY_COLUMNS`` order."""
    return (
        row["runtime"],
        f"{row['median_ms']:.2f}",
        f"{row['p90_ms']:.2f}",
        f"{row['time_ratio']:.3f}",
        f"{1 / row['time_ratio']:.2f}x",
        f"{row['time_vs_fastest']:.3f}",
        f"{row['gflop_per_s']:.1f}",
        f"{row['size_bytes'] / 1e6:.2f}",
        f"{row['macs'] / 1e6:.1f}",
        f"{row['params'] / 1e6:.3f}",
    )


def latency_summary_lines(summary: dict[str, Any]) -> list[str]:
    """The fastest row, the recommended CPU path and the INT8 speed-ups, as printed under the table."""
    fastest, recommended = summary["fastest"], summary["recommended_cpu_path"]
    lines = [
        f"fastest: {fastest['runtime']} ({fastest['median_ms']:.2f} ms)",
        f"recommended CPU path: {recommended['runtime']} ({recommended['median_ms']:.2f} ms, "
        f"{recommended['time_vs_fastest']:.3f} x the fastest)",
    ]
    speedups = [f"{runtime} {speedup:.2f}x" for runtime, speedup in summary["int8_speedup"].items()]
    if speedups:
        lines.append(f"INT8 speed-up over the same runtime's fp32 (fp32 ms / INT8 ms): {', '.join(speedups)}")
    return lines


def int8_metric_line(metric: dict[str, Any]) -> str:
    """The task's metric of the fp32 file and of each INT8 file, with the change in points."""
    line = (
        f"INT8 {metric['metric']} on {metric['split']} ({metric['images']} images): fp32 {metric['fp32']:.4f}, "
        f"ORT INT8 {metric['int8']:.4f} ({metric['change_points']:+.2f} points)"
    )
    if metric["openvino_int8"] is not None:
        line += f", OpenVINO INT8 {metric['openvino_int8']:.4f} ({metric['openvino_int8_change_points']:+.2f} points)"
    return line


def print_latency_report(report: dict[str, Any]) -> None:
    config = report["config"]
    height, width = config["input_size"]
    table = Table(
        title=f"{report['subject']}: batch-1 CPU latency @ {height}x{width}, {config['threads']} threads, "
        f"median of {config['repeats']} interleaved rounds (warm-up {config['warmup']}, "
        f"{1e3 * config['settle_s']:g} ms settle)",
        box=box.SIMPLE_HEAD,
    )
    for column in LATENCY_COLUMNS:
        table.add_column(column, justify="left" if column == "runtime" else "right", no_wrap=True)
    for row in report["rows"]:
        table.add_row(*_latency_cells(row))
    console = Console(width=max(Console().width, 150))
    console.print(table)
    lines = [
        *latency_summary_lines(report["summary"]),
        f"size MB: 10^6 bytes on disk (eager: torch.save of the state dict; ONNX: model + external data; OpenVINO "
        f"IR: xml + bin). MACs / params: mobivision.profiling counts of the PyTorch network (INT8: the same "
        f"network); GFLOP/s: 2 x MACs / median (INT8 rows: the same count, as operations). "
        f"torch {config['torch']}, onnxruntime {config['onnxruntime']}, openvino {config['openvino'] or '-'}, "
        f"{config['cpus']} CPUs of {config['cpu']}; 1-min load average before / after "
        f"timing: {' / '.join(str(v) for v in config['load_average_1min'])}",
    ]
    if config["openvino_bf16"]:
        lines.append(
            f"{BF16_ROW}: OpenVINO's default inference precision on this CPU (native bf16), not fp32: "
            "about 3 significant digits; the OpenVINO fp32 row is f32 arithmetic"
        )
    if report["calibration"]:
        lines.append(
            f"INT8 calibration (ORT and OpenVINO INT8 alike): {report['calibration']}; --int8-target "
            f"{config['int8_target']}: {INT8_TARGETS[config['int8_target']]}"
        )
    metric = report["int8_metric"]
    if metric is not None:
        lines.append(int8_metric_line(metric))
    elif report["calibration"]:
        lines.append("INT8 metric: n/a (no checkpoint with a validation split)")
    for line in [*lines, *report["notes"]]:
        console.print(line, highlight=False, markup=False)


def _coco_scale(args: argparse.Namespace) -> None:
    """The coco-scale files in ``--out`` (kept) or in a temporary folder (removed)."""
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        print_coco_scale_report(run_coco_scale(args, args.out))
        return
    with tempfile.TemporaryDirectory(prefix="mobivision-coco-scale-") as folder:
        print_coco_scale_report(run_coco_scale(args, Path(folder)))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "latency":
        check_latency_args(parser, args)
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        return exit_code(lambda: print_latency_report(run_latency(args)))
    if args.command == "training" and args.images < args.batch:
        parser.error(f"training --images {args.images}: fewer than one --batch of {args.batch} (full batches only)")
    if getattr(args, "threads", None) is not None:
        torch.set_num_threads(args.threads)
    if args.command == "multitask":
        return exit_code(lambda: print_multitask_report(run_multitask(args)))
    if args.command == "inference":
        return exit_code(lambda: print_inference_report(run_inference(args)))
    if args.command == "coco-scale":
        return exit_code(lambda: _coco_scale(args))
    run, show = {
        "detector": (run_detector, print_detector_report),
        "training": (run_training, print_training_report),
    }.get(args.command, (run_backbone, print_report))
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        show(report)
    return 0
