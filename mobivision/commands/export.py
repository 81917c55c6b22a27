"""Export a trained task to deployment formats, each checked against the PyTorch model right after writing.

``export_task(task, out_dir, formats=...)`` writes, named ``<name>.*`` (default ``model``):

============  ==========================  ===========================================================
format        file                        checked by
============  ==========================  ===========================================================
onnx          ``model.onnx``              ONNX Runtime vs PyTorch, max |diff| per output
onnx-nms      ``model_nms.onnx``          detectors: detections after NMS in the graph vs the task's
                                          post-processing, per image as sets (same count, labels, boxes)
int8          ``model.int8.onnx``         the task metric on the validation split, ORT fp32 vs ORT INT8
torchscript   ``model.ts``                TorchScript vs PyTorch, max |diff| per output
pte           ``model.pte``               ExecuTorch (XNNPACK) vs PyTorch (optional package)
tflite        ``model.tflite``            LiteRT vs PyTorch (optional packages)
============  ==========================  ===========================================================

Outputs per task (the ``outputs`` metadata entry says what each means): classification ``logits``;
attributes ``logits`` (the tuned thresholds in the metadata); geo-localization one ``logits_<partitioning>``
per partitioning plus ``cell_probabilities`` over the finest cells (the cells' tokens and mean locations are in
the side-car ``model.cells.json``, which can hold tens of thousands of cells); detection ``cls_logits``,
``bbox_regression`` and ``anchors`` (the export resolution's anchors, a constant output), and in the NMS graph
``boxes``, ``scores``, ``labels``, ``num_detections``.

Parity inputs: a seeded random batch, plus (when the task's data can be read) the first validation images
through the evaluation transform. Failing parity, or an INT8 metric drop beyond ``max_metric_drop``, raises
``ExportError`` with the report; the files stay on disk for inspection.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

import mobivision
from mobivision.errors import ConfigError, ExportError, MobivisionError
from mobivision.evaluation.attributes import attribute_metrics
from mobivision.evaluation.coco import coco_evaluate
from mobivision.evaluation.geo import geo_metrics
from mobivision.export import (
    GeoOutputs,
    ParityReport,
    SSDRawOutputs,
    SSDWithNMS,
    compare_detections,
    compare_outputs,
    export_onnx,
    export_torchscript,
    mobile,
    onnx_session,
    quantize_int8,
    run_onnx,
    torch_runner,
    torchscript_runner,
    verify_parity,
)
from tasks.base import TaskModule
from tasks.classification import ClassificationTask
from tasks.detection import DetectionTask, to_coco_results
from tasks.face_attributes import AttributeTask
from tasks.geolocation import GeoTask

FORMATS = ("onnx", "onnx-nms", "int8", "torchscript", "pte", "tflite")
DEFAULT_FORMATS = ("onnx", "onnx-nms", "int8", "torchscript")
PRIMARY_METRIC = {"classification": "top1", "attributes": "mAP", "geo": "acc_25km", "detection": "mAP"}
HIGHER_IS_BETTER = {"top1": True, "mAP": True, "acc_25km": True, "median_km": False, "AP50": True}


# --- checkpoints ------------------------------------------------------------------------------------------


def load_checkpoint(path: str | Path) -> TaskModule:
    """The task of a checkpoint in eval mode (``tasks.runner.load_task``: every failure is one error line)."""
    from tasks.runner import load_task

    return load_task(path).eval()


def task_kind(task: TaskModule) -> str:
    """``detection``, ``attributes``, ``geo`` or ``classification``."""
    for cls, kind in (
        (DetectionTask, "detection"),
        (AttributeTask, "attributes"),
        (GeoTask, "geo"),
        (ClassificationTask, "classification"),
    ):
        if isinstance(task, cls):
            return kind
    raise ConfigError(f"export does not support {type(task).__name__}")


def input_size(task: TaskModule) -> tuple[int, int]:
    default = 320 if isinstance(task, DetectionTask) else 224
    resolution = int(task.data_meta.get("resolution", default))
    return resolution, resolution


# --- graphs and metadata ----------------------------------------------------------------------------------


@dataclass
class Graph:
    """A network to export: images -> ``output_names`` (tuple), what each output means, how to compare it."""

    module: nn.Module
    output_names: list[str]
    meanings: dict[str, str]
    compare: Callable[..., Any] = compare_outputs


class _Single(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


def _geo_parents(task: GeoTask) -> list[torch.Tensor]:
    return [getattr(task, f"parents_{i}") for i in range(len(task.partitions) - 1)]


def task_graphs(task: TaskModule) -> dict[str, Graph]:
    """``{"model": the main graph}``, plus ``"nms"`` for detectors."""
    kind = task_kind(task)
    if kind == "classification":
        return {"model": Graph(_Single(task.model), ["logits"], {"logits": "[B, classes] class logits (softmax)"})}
    if kind == "attributes":
        meaning = "[B, attributes] logits; sigmoid gives probabilities, present where >= attribute_thresholds"
        return {"model": Graph(_Single(task.model), ["logits"], {"logits": meaning})}
    if kind == "geo":
        names = [f"logits_{name}" for name in task.partition_names]
        meanings = {
            n: f"[B, {len(cells)}] cell logits of partitioning {p}"
            for n, p, cells in zip(names, task.partition_names, task.partitions, strict=True)
        }
        combination = "hierarchical (times the coarser parents')" if task.hierarchical else "finest softmax"
        meanings["cell_probabilities"] = (
            f"[B, {len(task.partitions[-1])}] probabilities over the finest cells, {combination}; the location is "
            "the mean training location (cells file) of the most probable cell"
        )
        module = GeoOutputs(task.model, _geo_parents(task), hierarchical=task.hierarchical)
        return {"model": Graph(module, [*names, "cell_probabilities"], meanings)}
    size = input_size(task)
    raw = {
        "cls_logits": "[B, A, C] class logits per anchor, C = background + classes (score: "
        + ("sigmoid" if task.model.loss_options.classification == "focal" else "softmax")
        + ", drop column 0)",
        "bbox_regression": "[B, A, 4] box offsets (dx, dy, dw, dh) relative to the anchors, scaled by "
        "box_coder_weights (Faster R-CNN coder)",
        "anchors": "[A, 4] anchors xyxy in input pixels (constant of the export resolution)",
    }
    nms = {
        "boxes": "[B, K, 4] xyxy in input pixels, best first; rows past num_detections are zero",
        "scores": "[B, K] scores",
        "labels": "[B, K] int64 1-based labels (class_names[label - 1]); 0 past num_detections",
        "num_detections": "[B] int64 detections per image",
    }
    return {
        "model": Graph(SSDRawOutputs(task.model), list(SSDRawOutputs.output_names), raw),
        "nms": Graph(SSDWithNMS(task.model, size), list(SSDWithNMS.output_names), nms, compare_detections),
    }


def _preprocessing(task: TaskModule) -> str:
    meta = task.data_meta
    height, width = input_size(task)
    if isinstance(task, DetectionTask):
        steps = f"resize to {width}x{height} (bilinear, aspect ratio not kept)"
    else:
        crop_pct = float(meta.get("crop_pct", 0.875))
        steps = (
            f"resize the shorter side to round({height} / {crop_pct}) = {round(height / crop_pct)} px (bilinear), "
            f"centre-crop {width}x{height}"
        )
    return (
        f"RGB image, {steps}, scale pixels to [0, 1] (/ 255), subtract mean, divide by std (per channel), float32 NCHW"
    )


def task_metadata(task: TaskModule, graph: Graph, *, checkpoint: str | Path | None = None) -> dict[str, Any]:
    """What a runtime needs to use the graph: pre-processing, label map, output meanings, task options."""
    meta = task.data_meta
    height, width = input_size(task)
    run = (task.hparams.get("run_config") or {}).get("task_name") if hasattr(task, "hparams") else None
    entries: dict[str, Any] = {
        "mobivision_version": mobivision.__version__,
        "task": f"{type(task).__module__}.{type(task).__qualname__}",
        "task_kind": task_kind(task),
        "input_size": [height, width],
        "layout": "NCHW",
        "channel_order": "RGB",
        "value_range": "[0, 1] before normalisation (pixel / 255)",
        "mean": list(meta.get("mean", (0.5, 0.5, 0.5))),
        "std": list(meta.get("std", (0.5, 0.5, 0.5))),
        "preprocessing": _preprocessing(task),
        "outputs": graph.meanings,
        "backbone": {k: v for k, v in task.backbone_cfg.items() if k != "pretrained"},
    }
    if not isinstance(task, DetectionTask):
        entries["crop_pct"] = float(meta.get("crop_pct", 0.875))
    if checkpoint is not None:
        entries["source_checkpoint"] = str(checkpoint)
    if run:
        entries["run"] = run
    if isinstance(task, AttributeTask):
        entries["attribute_names"] = task.class_names
        entries["attribute_thresholds"] = [round(float(t), 6) for t in task.thresholds]
    elif isinstance(task, GeoTask):
        entries["partitions"] = [
            {"name": n, "cells": len(c)} for n, c in zip(task.partition_names, task.partitions, strict=True)
        ]
        entries["hierarchical"] = task.hierarchical
        entries["cells_file"] = "<name>.cells.json beside this file: tokens, counts, mean lat/lon per cell"
    elif isinstance(task, DetectionTask):
        model = task.model
        entries["class_names"] = task.class_names
        entries["category_ids"] = task.category_ids
        entries["box_coder_weights"] = list(model.loss_options.box_coder_weights)
        entries["score_function"] = "sigmoid" if model.loss_options.classification == "focal" else "softmax"
        entries["postprocess"] = asdict(model.postprocess_options)
        entries["boxes"] = "xyxy in input pixels; scale x by original width / input width, y likewise"
    else:
        entries["class_names"] = task.class_names
    return entries


def write_cells_file(task: GeoTask, path: str | Path) -> Path:
    """Side-car JSON of a geo model: every partitioning's cells and the finest cells' parent indices."""
    path = Path(path)
    columns = task.hparams["partitions"]
    payload = {
        "partitions": [
            {"name": p["name"], **{k: list(p[k]) for k in ("tokens", "count", "lat", "lon")}} for p in columns
        ],
        "parents": [p.tolist() for p in _geo_parents(task)],
        "hierarchical": task.hierarchical,
        "location": "mean training location (lat, lon) of the finest partitioning's most probable cell",
    }
    path.write_text(json.dumps(payload) + "\n")
    return path


# --- data -------------------------------------------------------------------------------------------------


class TaskData:
    """The task's own data (from the checkpoint's run configuration): validation images for parity and
    metrics, training images through the evaluation transform for calibration."""

    def __init__(self, datamodule: Any) -> None:
        self.datamodule = datamodule
        self.eval_split = "val" if "val" in datamodule.datasets else "test"
        if self.eval_split not in datamodule.datasets:
            raise ConfigError("the task's data has neither a val nor a test split to evaluate on")

    @classmethod
    def from_task(cls, task: TaskModule) -> TaskData:
        """Raises ``MobivisionError`` when the checkpoint has no run configuration or the data cannot be read."""
        from tasks.runner import build_datamodule  # the runner builds data modules from configs (Hydra instantiate)

        run_config = task.hparams.get("run_config") if hasattr(task, "hparams") else None
        if not run_config or not run_config.get("data"):
            raise ConfigError("the checkpoint records no data configuration (run_config.data)")
        data_cfg = copy.deepcopy(run_config["data"])
        data_cfg["num_workers"] = 0
        data_cfg.pop("persistent_workers", None)
        datamodule = build_datamodule(data_cfg, task.backbone_cfg["name"])
        return cls(datamodule)

    @property
    def eval_dataset(self) -> Any:
        return self.datamodule.datasets[self.eval_split]

    def _loader(self, dataset: Any, batch_size: int) -> DataLoader:
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=self.datamodule.collate_fn)

    def eval_batches(self, max_images: int | None = None, batch_size: int = 32) -> Iterator[dict[str, Any]]:
        dataset = self.eval_dataset
        if max_images is not None:
            dataset = Subset(dataset, range(min(max_images, len(dataset))))
        yield from self._loader(dataset, batch_size)

    def calibration(self, count: int, batch_size: int = 16, seed: int = 0) -> Iterator[np.ndarray]:
        """``count`` training images (a seeded random choice) through the evaluation transform."""
        if "train" not in self.datamodule.datasets:  # checked now, not on the first image
            raise ConfigError("INT8 calibration needs the task's train split, which its data does not configure")
        train = copy.copy(self.datamodule.datasets["train"])
        train.transform = self.eval_dataset.transform
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[:count].tolist()
        return (batch["image"].numpy() for batch in self._loader(Subset(train, order), batch_size))


# --- metrics ----------------------------------------------------------------------------------------------


def _as_torch(outputs: Sequence[np.ndarray]) -> list[torch.Tensor]:
    return [torch.from_numpy(np.asarray(o)) for o in outputs]


def evaluate_runner(
    task: TaskModule, run: Callable[[np.ndarray], Sequence[np.ndarray]], data: TaskData, max_images: int | None = None
) -> dict[str, float]:
    """The task metric of a runner (numpy batch -> outputs of ``task_graphs(task)["model"]``) on the eval split:
    classification top-1; attributes mAP and mean accuracy (tuned thresholds); geo accuracy within 25 km /
    750 km and the median error; detection COCO mAP and AP50."""
    kind = task_kind(task)
    collected: list[Any] = []
    targets: list[Any] = []
    for batch in data.eval_batches(max_images):
        outputs = _as_torch(run(batch["image"].numpy()))
        if kind == "detection":
            raw = {"cls_logits": outputs[0], "bbox_regression": outputs[1], "anchors": outputs[2]}
            detections = task.model.predict(raw, tuple(batch["image"].shape[-2:]))
            collected += to_coco_results(detections, batch["meta"], task.category_ids)
            targets += [m["image_id"] for m in batch["meta"]]
        else:
            collected.append(outputs[-1] if kind == "geo" else outputs[0])
            targets.append(batch["target"])
    if kind == "detection":
        metrics = coco_evaluate(data.eval_dataset.coco_gt, collected, image_ids=targets)
        return {"mAP": metrics["AP"], "AP50": metrics["AP50"]}
    scores, truth = torch.cat(collected).float(), torch.cat(targets)
    if kind == "classification":
        return {"top1": float((scores.argmax(1) == truth).double().mean())}
    if kind == "attributes":
        metrics = attribute_metrics(scores.sigmoid(), truth.float(), task.thresholds)
        return {"mAP": metrics.mean_ap, "mean_acc": metrics.mean_accuracy}
    location = task.cell_locations.cpu()[scores.argmax(1)]
    summary = geo_metrics(location[:, 0], location[:, 1], truth[:, 0], truth[:, 1]).summary()
    return {"acc_25km": summary["acc_25km"], "acc_750km": summary["acc_750km"], "median_km": summary["median_km"]}


# --- export -----------------------------------------------------------------------------------------------


@dataclass
class ExportRow:
    """One written file and how it was checked."""

    format: str
    path: Path
    check: str
    ok: bool = True
    parity: ParityReport | None = None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 2**20 if self.path.is_file() else 0.0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": self.format,
            "file": str(self.path),
            "size_mb": round(self.size_mb, 4),
            "check": self.check,
            "ok": self.ok,
        }
        if self.parity is not None:
            out["parity"] = {
                "inputs": self.parity.inputs,
                "outputs": [asdict(o) for o in self.parity.outputs],
            }
        if self.metrics:
            out["metrics"] = self.metrics
        return out


@dataclass
class ExportResult:
    out_dir: Path
    rows: list[ExportRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        header = ("format", "file", "size MB", "check")
        body = [(r.format, r.path.name, f"{r.size_mb:.2f}", r.check) for r in self.rows]
        widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(4)]
        lines = ["| " + " | ".join(str(v).ljust(w) for v, w in zip(header, widths, strict=True)) + " |"]
        lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        lines += ["| " + " | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)) + " |" for row in body]
        return "\n".join(lines)

    def write_report(self) -> Path:
        path = self.out_dir / "export_report.json"
        payload = {"rows": [r.as_dict() for r in self.rows], "notes": self.notes}
        path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
        return path


def parse_formats(text: str | Sequence[str] | None, task: TaskModule) -> list[str]:
    """The requested formats in export order; ``None``: the defaults that apply to the task."""
    is_detector = isinstance(task, DetectionTask)
    if text is None:
        return [f for f in DEFAULT_FORMATS if f != "onnx-nms" or is_detector]
    requested = [f.strip() for f in (text.split(",") if isinstance(text, str) else text) if f.strip()]
    unknown = [f for f in requested if f not in FORMATS]
    if unknown or not requested:
        raise ConfigError(f"--formats: unknown formats {unknown}; choose from {','.join(FORMATS)}")
    if "onnx-nms" in requested and not is_detector:
        raise ConfigError(f"format onnx-nms is for detectors; this checkpoint is a {type(task).__name__}")
    return [f for f in FORMATS if f in requested]


def _parity_inputs(task: TaskModule, data: TaskData | None, parity_images: int) -> list[tuple[str, np.ndarray]]:
    height, width = input_size(task)
    generator = torch.Generator().manual_seed(0)
    inputs = [("random", torch.randn(3, 3, height, width, generator=generator).numpy())]
    if data is not None and parity_images > 0:
        images = next(data.eval_batches(parity_images, batch_size=parity_images))["image"].numpy()
        inputs.append((f"{data.eval_split} images", images))
    return inputs


def _delta(name: str, fp32: float, int8: float) -> float:
    """Drop of ``int8`` below ``fp32`` (positive = worse), for higher- and lower-is-better metrics."""
    return fp32 - int8 if HIGHER_IS_BETTER.get(name, True) else int8 - fp32


def _metric_text(fp32: dict[str, float], int8: dict[str, float]) -> str:
    parts = []
    for key in fp32:
        sign = "" if HIGHER_IS_BETTER.get(key, True) else " (lower is better)"
        parts.append(f"{key} {fp32[key]:.4f} -> {int8[key]:.4f} ({int8[key] - fp32[key]:+.4f}){sign}")
    return "; ".join(parts)


def export_task(
    task: TaskModule,
    out_dir: str | Path,
    *,
    formats: Sequence[str] | str | None = None,
    name: str = "model",
    opset: int = 17,
    exporter: str = "torchscript",
    calibration_images: int = 200,
    parity_images: int = 8,
    eval_images: int | None = None,
    threads: int | None = None,
    max_metric_drop: float | None = None,
    checkpoint: str | Path | None = None,
    data: TaskData | None = None,
    on_row: Callable[[ExportRow], None] | None = None,
) -> ExportResult:
    """Write the requested formats of ``task`` into ``out_dir`` and check each (module docstring).

    Args:
        formats: Names of ``FORMATS`` (a list or comma-separated); None: ``DEFAULT_FORMATS`` that apply.
        name: File stem.
        opset / exporter: ONNX opset and ``torch.onnx`` exporter (``torchscript`` or ``dynamo``).
        calibration_images: Training images used to calibrate INT8 activation ranges.
        parity_images: Validation images added to the random batch of the parity checks (0: random only).
        eval_images: Validation images the INT8 metric is measured on (None: the whole split).
        threads: ONNX Runtime intra-op threads.
        max_metric_drop: Fail when INT8 loses more than this on the task's primary metric (``PRIMARY_METRIC``;
            fractions, e.g. 0.01 = one point of top-1).
        data: The task's data (default: read from the checkpoint's run configuration when it can be).
        on_row: Called after each format is written and checked (progress output).

    Raises:
        ExportError: A format failed to export, or its check failed (the message holds the report).
        ConfigError: Unknown formats, or INT8 without the task's data.
    """
    task = task.eval()
    wanted = parse_formats(formats, task)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = ExportResult(out_dir)
    size = input_size(task)
    if data is None and (parity_images > 0 or "int8" in wanted):
        try:
            data = TaskData.from_task(task)
        except MobivisionError as exc:
            if "int8" in wanted:
                raise ConfigError(
                    f"INT8 needs calibration and validation images from the task's data, which cannot be read: "
                    f"{exc}; leave int8 out of --formats"
                ) from exc
            result.notes.append(f"parity on random inputs only: the task's data cannot be read ({exc})")
    for fmt in ("pte", "tflite"):
        if fmt in wanted and not mobile.available(fmt):
            raise ConfigError(f"format {fmt} needs optional packages: {mobile.INSTALL[fmt]}")
    inputs = _parity_inputs(task, data, parity_images)
    graphs = task_graphs(task)
    main = graphs["model"]

    def finish(row: ExportRow) -> None:
        result.rows.append(row)
        if on_row is not None:
            on_row(row)
        if not row.ok:
            result.write_report()
            details = row.parity.table() if row.parity is not None else row.check
            raise ExportError(f"{row.format} export {row.path} failed its check:\n{details}")

    def parity_row(fmt: str, path: Path, run: Callable[[np.ndarray], Any], graph: Graph) -> ExportRow:
        report = verify_parity(
            torch_runner(graph.module), run, inputs, graph.output_names, format=fmt, compare=graph.compare
        )
        return ExportRow(fmt, path, report.summary(), report.ok, report)

    if isinstance(task, GeoTask):
        result.notes.append(f"cells: {write_cells_file(task, out_dir / f'{name}.cells.json')}")
    onnx_path = out_dir / f"{name}.onnx"
    if "onnx" in wanted or "int8" in wanted:
        export_onnx(
            main.module,
            onnx_path,
            input_size=size,
            opset=opset,
            output_names=main.output_names,
            metadata=task_metadata(task, main, checkpoint=checkpoint),
            exporter=exporter,
        )
        session = onnx_session(onnx_path, threads=threads)
        finish(parity_row("onnx", onnx_path, lambda x: run_onnx(session, x), main))
    if "onnx-nms" in wanted:
        nms = graphs["nms"]
        path = out_dir / f"{name}_nms.onnx"
        export_onnx(
            nms.module,
            path,
            input_size=size,
            opset=opset,
            output_names=nms.output_names,
            metadata=task_metadata(task, nms, checkpoint=checkpoint),
            exporter="torchscript",  # the in-graph NonMaxSuppression is a TorchScript-exporter symbolic
        )
        session_nms = onnx_session(path, threads=threads)
        finish(parity_row("onnx-nms", path, lambda x: run_onnx(session_nms, x), nms))
    if "int8" in wanted:
        assert data is not None
        path = out_dir / f"{name}.int8.onnx"
        quantize_int8(onnx_path, path, data.calibration(calibration_images), per_channel=True)
        int8_session = onnx_session(path, threads=threads)
        fp32 = evaluate_runner(task, lambda x: run_onnx(session, x), data, eval_images)
        int8 = evaluate_runner(task, lambda x: run_onnx(int8_session, x), data, eval_images)
        primary = PRIMARY_METRIC[task_kind(task)]
        drop = _delta(primary, fp32[primary], int8[primary])
        ok = max_metric_drop is None or not drop > max_metric_drop or math.isnan(drop)
        check = f"{data.eval_split} {_metric_text(fp32, int8)}"
        if not ok:
            check += f"; {primary} drop {drop:.4f} > --max-metric-drop {max_metric_drop}"
        finish(ExportRow("int8", path, check, ok, metrics={"fp32": fp32, "int8": int8}))
    if "torchscript" in wanted:
        path = export_torchscript(main.module, out_dir / f"{name}.ts", input_size=size)
        finish(parity_row("torchscript", path, torchscript_runner(path), main))
    if "pte" in wanted:
        path = mobile.export_pte(main.module, out_dir / f"{name}.pte", input_size=size)
        finish(parity_row("pte", path, mobile.pte_runner(path), main))
    if "tflite" in wanted:
        path = mobile.export_tflite(main.module, out_dir / f"{name}.tflite", input_size=size)
        finish(parity_row("tflite", path, mobile.tflite_runner(path, threads=threads), main))
    result.write_report()
    return result
