"""``tools/benchmark.py multitask CKPT``: what one shared backbone saves at inference against separate networks.

The separate networks are the checkpoint's own heads, each run on its own (``model.heads[name](images)`` runs the
backbone for that head alone): exactly the cost of one single-task model per head with the same weights. The
table gives multiply-adds, parameters (separate: every head with its own copy of the backbone) and batch-1 CPU
latency (median, eval mode, the joint pass and the separate passes interleaved in one run of
``mobivision.timing.time_steps``), and the ratio joint / separate.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import torch

from mobivision.commands.cli import positive_int
from mobivision.errors import ConfigError
from mobivision.profiling import count_parameters, profile
from mobivision.tasks.runner import load_task
from mobivision.timing import time_steps


def add_multitask_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("multitask", help="a multi-task checkpoint: one backbone pass vs separate networks")
    parser.add_argument("checkpoint", help="a multi-task checkpoint (task=multitask)")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--repeats", type=positive_int, default=50, help="timed rounds (default 50)")
    parser.add_argument("--warmup", type=positive_int, default=10, help="untimed rounds first (default 10)")


def run_multitask(args: argparse.Namespace) -> dict[str, Any]:
    task = load_task(args.checkpoint).eval()
    if not hasattr(task.model, "heads"):
        raise ConfigError(f"{args.checkpoint} is a {task.kind} checkpoint, not a multi-task model (task=multitask)")
    size = task.input_size
    heads = dict(task.model.heads)
    joint = profile(task.model, size)
    separate = {name: profile(head, size) for name, head in heads.items()}
    backbone_params = count_parameters(task.model.backbone)
    x = torch.randn(1, 3, *size)

    def run_separately() -> None:
        for head in heads.values():
            head(x)

    with torch.inference_mode():
        seconds = time_steps(
            {"joint": lambda: task.model(x), "separate": run_separately}, warmup=args.warmup, repeats=args.repeats
        ).medians()
    rows = {
        "joint": {"macs": joint.macs, "params": joint.params},
        "separate": {
            "macs": sum(c.macs for c in separate.values()),
            # each separate network owns a copy of the backbone
            "params": sum(count_parameters(h) + backbone_params for h in heads.values()),
        },
    }
    for name, value in seconds.items():
        rows[name]["ms"] = 1e3 * value
    return {
        "checkpoint": str(args.checkpoint),
        "heads": list(heads),
        "input_size": list(size),
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "backbone_share": joint.backbone_share,
        "rows": rows,
        "ratio": {key: rows["joint"][key] / rows["separate"][key] for key in ("macs", "params", "ms")},
    }


def print_multitask_report(report: dict[str, Any]) -> None:
    rows, ratio = report["rows"], report["ratio"]
    height, width = report["input_size"]
    print(
        f"{len(report['heads'])} heads ({', '.join(report['heads'])}) at {width}x{height}, batch 1, "
        f"{report['threads']} threads of {report['cpus']} CPUs"
    )
    print("| model | MMACs | params (M) | latency ms |")
    print("| ----- | ----: | ---------: | ---------: |")
    labels = {"joint": "joint (one backbone pass)", "separate": f"{len(report['heads'])} separate networks"}
    for name, row in rows.items():
        print(f"| {labels[name]} | {row['macs'] / 1e6:.1f} | {row['params'] / 1e6:.3f} | {row['ms']:.2f} |")
    print(f"| joint / separate | {ratio['macs']:.3f} | {ratio['params']:.3f} | {ratio['ms']:.3f} |")
    macs, params = report["backbone_share"]
    print(f"backbone share of the joint model: {100 * macs:.1f}% of multiply-adds, {100 * params:.1f}% of parameters")
