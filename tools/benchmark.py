"""CPU speed of our MobileNetV1 against timm's, measured in one interleaved run.

The MobileNets paper (arXiv 1704.04861, Sec. 3.1-3.2) argues for depthwise-separable convolutions because
they run fast on real hardware, so our implementation should be as fast as a well-tuned peer: the target
is ``ours / timm <= 1.05`` in time. For ``mobilenet_v1`` at width W it compares
``create_model("mobilenet_v1", width_mult=W)`` with timm's ``mobilenetv1_100`` / ``mobilenetv1_125`` (the
same network: same multiply-adds and parameters) on

- batch-1 and batch-32 inference latency at ``--resolution`` (median ms, eval mode, inference mode);
- training throughput: a plain SGD step (forward, cross-entropy, backward, update) on batch 16 at 160 px,
  after a few warm-up steps (images/s from the median step time).

The two models' measurements alternate (ABAB..., the order flipping each repeat) so that drift of a busy
machine hits both alike. Compare only the ratios: absolute times depend on the machine and its load.

Usage::

    python tools/benchmark.py [backbone] [--width 1.0] [--resolution 224] [--threads N] [--repeats 10]
        [--channels-last] [--json]

``backbone`` is the only subcommand for now (and the default); ``detector`` and ``latency`` are planned.
"""

from __future__ import annotations

import _toolpath  # noqa: F401 (must come first, see tools/_toolpath.py)

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from rich import box
from rich.console import Console
from rich.table import Table
from torch import nn

from mobivision import create_model
from mobivision.cli import positive_float, positive_int
from mobivision.profile import count_parameters

COMMANDS = ("backbone",)
TIMM_PEERS = {1.0: "mobilenetv1_100", 1.25: "mobilenetv1_125"}
TARGET_RATIO = 1.05
INFERENCE_BATCHES = (1, 32)
TRAIN_BATCH, TRAIN_RESOLUTION, TRAIN_WARMUP = 16, 160, 3
INFERENCE_WARMUP = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", metavar="{backbone}")
    backbone = commands.add_parser("backbone", help="mobilenet_v1 vs timm: inference latency, training images/s")
    backbone.add_argument("--width", type=positive_float, default=1.0, help="width multiplier (default 1.0)")
    backbone.add_argument("--resolution", type=positive_int, default=224, help="inference input size")
    backbone.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's)")
    backbone.add_argument("--repeats", type=positive_int, default=10, help="timed repeats per model (median)")
    backbone.add_argument("--channels-last", action="store_true", help="NHWC memory format for models and inputs")
    backbone.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse, with ``backbone`` as the default subcommand."""
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv = ["backbone", *argv]
    return build_parser().parse_args(argv)


def build_models(width: float, *, channels_last: bool) -> tuple[dict[str, nn.Module], str]:
    """Ours and, where timm has the same width, timm's peer; the second value explains a missing peer."""
    models = {"ours": create_model("mobilenet_v1", width_mult=width)}
    peer = TIMM_PEERS.get(width)
    note = ""
    if peer is None:
        note = f"timm has no mobilenetv1 at width {width} (only {sorted(TIMM_PEERS)}): measuring ours only"
    else:
        try:
            import timm
        except ImportError:
            note = "timm is not installed: measuring ours only"
        else:
            models["timm"] = timm.create_model(peer, pretrained=False)
    if channels_last:
        models = {name: model.to(memory_format=torch.channels_last) for name, model in models.items()}
    return models, note


def interleaved_medians(steps: dict[str, Callable[[], None]], *, warmup: int, repeats: int) -> dict[str, float]:
    """Median seconds of each step, alternating the steps and flipping their order every repeat."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else reversed(names):
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


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
    models, note = build_models(args.width, channels_last=args.channels_last)
    results = []
    for model in models.values():
        model.eval()
    for batch in INFERENCE_BATCHES:
        x = _images(batch, args.resolution, channels_last=args.channels_last)
        steps = {name: _inference_step(model, x) for name, model in models.items()}
        seconds = interleaved_medians(steps, warmup=INFERENCE_WARMUP, repeats=args.repeats)
        results.append(_result(f"inference batch {batch} @ {args.resolution} (ms)", seconds, lambda s: 1e3 * s))
    for model in models.values():
        model.train()
    x = _images(TRAIN_BATCH, TRAIN_RESOLUTION, channels_last=args.channels_last)
    steps = {name: _train_step(model, x) for name, model in models.items()}
    seconds = interleaved_medians(steps, warmup=TRAIN_WARMUP, repeats=args.repeats)
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
            "timm_model": TIMM_PEERS.get(args.width) if "timm" in models else None,
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
    for column in ("ours", "timm", "time ours/timm", f"<= {TARGET_RATIO}"):
        table.add_column(column, justify="right")
    for result in report["results"]:
        ratio = result["time_ratio"]
        table.add_row(
            result["metric"],
            f"{result['ours']:.1f}",
            "-" if result["timm"] is None else f"{result['timm']:.1f}",
            "-" if ratio is None else f"{ratio:.3f}",
            "-" if ratio is None else ("yes" if ratio <= TARGET_RATIO else "NO"),
        )
    console = Console()
    console.print(table)
    console.print(f"parameters: {config['params']}; torch {config['torch']}, {config['cpus']} CPUs", highlight=False)
    if report["note"]:
        console.print(report["note"], highlight=False)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    report = run_backbone(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
