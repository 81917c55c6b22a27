"""The checkpoint side of ``tools/benchmark.py latency``: what network to time and on what data.

A subject is a network with its input size and pre-processing: a fresh ImageNet-shaped classifier with random
weights (``fresh_subject``: latency can be measured without a trained checkpoint), or the graph a task
checkpoint deploys (``checkpoint_subject``: the graph ``tools/export.py`` writes). ``calibration_images`` takes INT8
calibration images from the checkpoint's training data through the evaluation transform
(``mobivision.tasks.task_data.TaskData``), or random pixels when there is no data; ONNX Runtime's and OpenVINO's
INT8 files are calibrated on the same images. ``int8_metric_change`` scores the fp32 ONNX file, the INT8 ONNX
file and (where written) the OpenVINO INT8 IR with the task's metric on its validation split
(``evaluate_runner`` of ``mobivision.tasks.task_data``, as ``tools/export.py --formats int8,openvino-int8`` does).
The timing itself is ``mobivision.runtime_latency.measure_latency``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from mobivision.errors import MobivisionError
from mobivision.factory import create_model, default_mean_std
from mobivision.runtime_latency import LatencyConfig, measure_latency, random_calibration
from mobivision.tasks.base import TaskModule

log = logging.getLogger("mobivision")


@dataclass
class Subject:
    """The network under test and what its inputs look like."""

    label: str
    model: nn.Module
    input_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    output_names: tuple[str, ...] = ("logits",)
    arch: tuple[str, float] = ("mobilenet_v1", 1.0)
    task: TaskModule | None = None
    data: Any = None  # mobivision.tasks.task_data.TaskData of a checkpoint whose data can be read
    notes: list[str] = field(default_factory=list)


def fresh_subject(name: str, width: float, resolution: int) -> Subject:
    """``create_model(name, width_mult=width)`` with 1000 classes and random weights, at ``resolution``."""
    model = create_model(name, width_mult=width, num_classes=1000).eval()
    mean, std = default_mean_std(name)
    label = f"{name} {width} @ {resolution} (random weights, 1000 classes)"
    return Subject(label, model, (resolution, resolution), tuple(mean), tuple(std), arch=(name, width))


def checkpoint_subject(checkpoint: str | Path) -> Subject:
    """The graph a task checkpoint deploys, at the checkpoint's resolution, with its data when it can be read."""
    from mobivision.tasks.runner import load_task
    from mobivision.tasks.task_data import TaskData

    task = load_task(checkpoint).eval()
    graph = task.export_graphs()["model"]
    size = task.input_size
    name = task.backbone_cfg.get("name", "mobilenet_v1")
    width = float(task.backbone_cfg.get("width_mult", 1.0))
    subject = Subject(
        label=f"{Path(checkpoint).name} ({type(task).__name__}, {name} {width} @ {size[0]})",
        model=graph.module.eval(),
        input_size=size,
        mean=tuple(task.data_meta["mean"]),
        std=tuple(task.data_meta["std"]),
        output_names=tuple(graph.output_names),
        arch=(name, width),
        task=task,
    )
    try:
        subject.data = TaskData.from_task(task)
    except MobivisionError as exc:
        subject.notes.append(f"the checkpoint's data cannot be read ({exc}): INT8 calibrated on random pixels")
    return subject


def calibration_images(subject: Subject, count: int) -> tuple[list[np.ndarray], str]:
    """About ``count`` calibration inputs (``[B, 3, H, W]`` batches) and where they come from."""
    if subject.data is not None:
        try:
            batches = list(subject.data.calibration(count))
        except MobivisionError as exc:
            subject.notes.append(f"no calibration images from the checkpoint's data ({exc}): random pixels instead")
        else:
            return batches, f"{sum(len(b) for b in batches)} training images of the checkpoint's data (eval transform)"
    images = random_calibration(count, subject.input_size, subject.mean, subject.std)
    return images, f"{count} images of uniform random pixels (no checkpoint data): not representative"


def _runners(files: dict[str, str | None], threads: int) -> dict[str, Any]:
    """A numpy-batch runner per written file: ONNX Runtime for ``fp32`` / ``int8``, OpenVINO for ``openvino_int8``."""
    from mobivision.export import onnx_session, run_onnx
    from mobivision.export.openvino_ir import openvino_runner

    runners: dict[str, Any] = {}
    for key in ("fp32", "int8"):
        session = onnx_session(files[key], threads=threads)
        runners[key] = lambda x, s=session: run_onnx(s, x)
    if files["openvino_int8"] is not None:
        runners["openvino_int8"] = openvino_runner(files["openvino_int8"], threads=threads)
    return runners


def int8_metric_change(subject: Subject, files: dict[str, str | None], *, threads: int) -> dict[str, Any] | None:
    """The task's primary metric of the fp32 ONNX file, the INT8 ONNX file and the OpenVINO INT8 IR (``files``'
    ``fp32``, ``int8``, ``openvino_int8``; the IR may be None) on the checkpoint's validation split (None: no data).
    ``change_points`` / ``openvino_int8_change_points``: INT8 minus fp32 in points (x 100: the metrics are
    fractions)."""
    if subject.task is None or subject.data is None:
        return None
    from mobivision.tasks.task_data import evaluate_runner

    scores = {key: evaluate_runner(subject.task, run, subject.data)[0] for key, run in _runners(files, threads).items()}
    metric = subject.task.primary_metric.name
    openvino = scores.get("openvino_int8", {}).get(metric)
    return {
        "metric": metric,
        "split": subject.data.eval_split,
        "images": subject.data.eval_images,
        "fp32": scores["fp32"][metric],
        "int8": scores["int8"][metric],
        "change_points": 100 * (scores["int8"][metric] - scores["fp32"][metric]),
        "openvino_int8": openvino,
        "openvino_int8_change_points": None if openvino is None else 100 * (openvino - scores["fp32"][metric]),
        "all_metrics": scores,
    }


def run_latency(
    subject: Subject, config: LatencyConfig, out_dir: str | Path, *, calibration_count: int
) -> dict[str, Any]:
    """``measure_latency`` on the subject, then the INT8 metric change; the full report."""
    calibration, source = calibration_images(subject, calibration_count) if config.int8 else ([], "")
    report = measure_latency(
        subject.model,
        input_size=subject.input_size,
        calibration=calibration,
        out_dir=out_dir,
        config=config,
        output_names=subject.output_names,
        arch=subject.arch,
    )
    files = report.pop("files")
    accuracy = int8_metric_change(subject, files, threads=config.threads) if config.int8 else None
    report["subject"] = subject.label
    report["calibration"] = source or None
    report["int8_metric"] = accuracy
    report["notes"] = subject.notes + report["notes"]
    return report
