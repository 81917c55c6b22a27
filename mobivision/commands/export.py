"""Export a trained task to deployment formats, each checked against the PyTorch model right after writing.

``export_task(task, out_dir, formats=...)`` writes, named ``<name>.*`` (default ``model``):

============  ==========================  ===========================================================
format        file                        checked by
============  ==========================  ===========================================================
onnx          ``model.onnx``              ONNX Runtime vs PyTorch, max |diff| per output
onnx-nms      ``model_nms.onnx``          detectors: detections after NMS in the graph vs the task's
                                          post-processing, per image as sets (same count, labels, boxes)
int8          ``model.int8.onnx``         the task metric on the validation split, ORT fp32 vs ORT INT8
                                          (and in OpenVINO when installed: a note says it runs there)
openvino      ``model.xml`` + ``.bin``    OpenVINO IR, fp32 weights: OpenVINO (f32) vs PyTorch, per output
openvino-fp16 ``model.fp16.xml`` + bin    fp16 weights: as openvino, fp16 tolerance (``FP16_ATOL/RTOL``)
openvino-int8 ``model.int8.xml`` + bin    INT8 by NNCF: the task metric, ORT fp32 vs OpenVINO INT8
torchscript   ``model.ts``                TorchScript vs PyTorch, max |diff| per output
pte           ``model.pte``               ExecuTorch (XNNPACK) vs PyTorch (optional package)
tflite        ``model.tflite``            LiteRT vs PyTorch (optional packages)
============  ==========================  ===========================================================

Outputs per task (the ``outputs`` metadata entry says what each means): classification ``logits``;
attributes ``logits`` (the tuned thresholds in the metadata); geo-localization one ``logits_<partitioning>``
per partitioning plus ``cell_probabilities`` over the finest cells (the cells' tokens and mean locations are in
the side-car ``model.cells.json``, which can hold tens of thousands of cells); detection ``cls_logits``,
``bbox_regression`` and ``anchors`` (the export resolution's anchors, a constant output), and in the NMS graph
``boxes``, ``scores``, ``labels``, ``num_detections``; a multi-head model every head's outputs in one graph (one
backbone pass), named ``<head>.<output>``, with each head's entries under ``heads`` in the metadata and the INT8
check reporting each head's primary metric (every source's validation images at the export resolution).

The export folder: ``export_report.json`` is also the folder's manifest: its ``files`` lists every file of the
export present in the folder. Before writing, an export removes the files the previous report lists (a previous
export's, possibly of another model or ``--name``) and nothing else, so the folder ends with exactly this export's
files beside the user's own, and the report (written also when the export fails) never sits beside another
model's files. A manifest rather than refusing a non-empty folder: re-exporting into the same folder is the
common case, and it needs no ``--overwrite``; rather than a temporary folder swapped in: a failed export's files
stay where the report says, for inspection. An ``out_dir`` that is a file is a ``ConfigError``.

A folder the export may not write (no permission, a read-only or full file system) is one ``ExportError``,
``cannot write <file>: <the system's reason> (...)``: tried with a temporary file before anything is written or
removed (then nothing is); a write that fails later removes the file it was writing (no partial file is left) and
the report lists the files written before it. The report itself is written atomically (temp file, ``os.replace``).

Parity inputs: a seeded random batch, plus (when the task's data can be read) the first validation images
through the evaluation transform. Failing parity, or an INT8 metric drop beyond ``max_metric_drop``, raises
``ExportError`` with the report; the files stay on disk for inspection.

Command line (``tools/export.py``, ``mobivision export``):

Export a trained checkpoint of any task to ONNX, INT8 ONNX, TorchScript and mobile formats, each verified.

Usage::

    python tools/export.py CHECKPOINT [--out DIR] [--formats onnx,onnx-nms,int8,openvino,...,pte,tflite]
        [--opset 17] [--exporter torchscript|dynamo] [--calibration-images 200] [--parity-images 8]
        [--eval-images N] [--threads N] [--max-metric-drop X] [--int8-target any|vnni] [--name model]

Writes ``DIR/model.onnx`` (dynamic batch; pre-processing, labels and output meanings in its metadata),
``model_nms.onnx`` (detectors: decoding and NMS in the graph), ``model.int8.onnx`` (static INT8, calibrated on
training images), ``model.ts`` (TorchScript), ``model.pte`` (ExecuTorch, needs ``executorch``) and
``model.tflite`` (LiteRT, needs ``litert-torch`` and ``ai-edge-litert``), ``model.xml``, ``model.fp16.xml`` and
``model.int8.xml`` (OpenVINO IR, each with its ``.bin``; need the ``openvino`` extra), plus ``export_report.json``.
INT8 files are for every CPU by default (7-bit weights: ``--int8-target any``); ``--int8-target vnni`` writes 8-bit
weights for CPUs with VNNI, AMX or ARM dot products. The report names the target and the CPU the metric was checked on.
Each file is run against the PyTorch model right away: a float format whose outputs differ beyond the stated
tolerance, or an INT8 model that loses more than ``--max-metric-drop`` of the task's metric, ends with exit code 2
and the report.
Default formats: onnx, onnx-nms (detectors), int8, torchscript; default DIR: ``<run folder>/export``.
A bad input (missing, truncated or foreign checkpoint, weights that do not fit) ends with one ``error: ...`` line.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from mobivision.commands.cli import exit_code, non_negative_float, positive_int
from mobivision.errors import ConfigError, ExportError, MobivisionError, os_error_in
from mobivision.evaluation.evaluator import Evaluator
from mobivision.export import (
    ExportGraph,
    ParityReport,
    compare_outputs,
    export_onnx,
    export_torchscript,
    mobile,
    onnx_session,
    openvino_ir,
    quantize_int8,
    run_onnx,
    torch_runner,
    torchscript_runner,
    verify_parity,
)
from mobivision.export.quantize import INT8_TARGETS, check_int8_target, int8_target_weights
from mobivision.inference import resolve_checkpoint_path
from mobivision.machine import cpu_description
from mobivision.tasks.base import TaskModule
from mobivision.tasks.multitask_data import source_modules
from mobivision.tasks.runner import build_datamodule, load_task

FORMATS = ("onnx", "onnx-nms", "int8", "openvino", "openvino-fp16", "openvino-int8", "torchscript", "pte", "tflite")
DEFAULT_FORMATS = ("onnx", "onnx-nms", "int8", "torchscript")
GRAPH_OF_FORMAT = {"onnx-nms": "nms"}  # formats of a task's extra graph; every other format writes "model"
FILE_OF_FORMAT = {
    "onnx": "{name}.onnx",
    "onnx-nms": "{name}_nms.onnx",
    "int8": "{name}.int8.onnx",
    "openvino": "{name}.xml",
    "openvino-fp16": "{name}.fp16.xml",
    "openvino-int8": "{name}.int8.xml",
    "torchscript": "{name}.ts",
    "pte": "{name}.pte",
    "tflite": "{name}.tflite",
}
INT8_FORMATS = ("int8", "openvino-int8")  # calibrated on the task's data, checked by its metric
FROM_ONNX = ("int8", "openvino", "openvino-fp16", "openvino-int8")  # converted from the float ONNX file
REPORT_NAME = "export_report.json"
# OpenVINO IR with fp16 weights: each weight rounded to 11 significant bits (relative error <= 2^-11 = 4.9e-4), and
# the errors of a dozen layers add up: outputs moved by 1e-4 of the largest output on the trained demo classifier
# and by up to 4% on the tests' random-weight detector (whose activations grow layer after layer). A wrong graph
# (a missing layer, swapped channels, a wrong normalisation) differs by the outputs' own scale.
FP16_ATOL = 1e-2
FP16_RTOL = 5e-2


# --- checkpoints ------------------------------------------------------------------------------------------


# --- metadata ---------------------------------------------------------------------------------------------


# --- data -------------------------------------------------------------------------------------------------


class TaskData:
    """The task's own data (from the checkpoint's run configuration): validation images for parity and
    metrics, training images through the evaluation transform for calibration.

    A multi-head model's data has several sources (``datamodule.sources``): its batches come source after source,
    each tagged ``batch["source"]``, and ``eval_dataset`` is the list of the sources' datasets.
    """

    def __init__(self, datamodule: Any) -> None:
        self.datamodule = datamodule
        self.sources = source_modules(datamodule)
        self.eval_split = "val" if all("val" in m.datasets for m in self.sources.values()) else "test"
        if not all(self.eval_split in m.datasets for m in self.sources.values()):
            raise ConfigError("the task's data has neither a val nor a test split to evaluate on")

    @classmethod
    def from_task(cls, task: TaskModule) -> TaskData:
        """Raises ``MobivisionError`` when the checkpoint has no run configuration or the data cannot be read."""

        run_config = task.hparams.get("run_config") if hasattr(task, "hparams") else None
        if not run_config or not run_config.get("data"):
            raise ConfigError("the checkpoint records no data configuration (run_config.data)")
        data_cfg = copy.deepcopy(run_config["data"])
        for source in data_cfg.get("sources", {}).values():
            # One graph, one input size: every source's images are scored at the exported resolution.
            source["resolution"] = task.input_size[0]
        for config in [data_cfg, *data_cfg.get("sources", {}).values()]:
            config["num_workers"] = 0
            config.pop("persistent_workers", None)
        datamodule = build_datamodule(data_cfg, task.backbone_cfg["name"])
        return cls(datamodule)

    @property
    def eval_dataset(self) -> Any:
        datasets = [module.datasets[self.eval_split] for module in self.sources.values()]
        return datasets[0] if "" in self.sources else datasets

    @property
    def eval_images(self) -> int:
        """The number of evaluation images over every source."""
        return sum(len(module.datasets[self.eval_split]) for module in self.sources.values())

    def _loader(self, module: Any, dataset: Any, batch_size: int) -> DataLoader:
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=module.collate_fn)

    def _batches(self, split: str, count: int | None, batch_size: int) -> Iterator[dict[str, Any]]:
        """Batches of up to ``count`` images of each source's ``split`` (eval transform), tagged with their source."""
        for name, module in self.sources.items():
            dataset = module.datasets[split]
            if split != self.eval_split:  # training images through the evaluation transform
                dataset = copy.copy(dataset)
                dataset.transform = module.datasets[self.eval_split].transform
            if count is not None:
                order = range(min(count, len(dataset)))
                if split == "train":  # a seeded random choice
                    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:count].tolist()
                dataset = Subset(dataset, order)
            for batch in self._loader(module, dataset, batch_size):
                yield batch if name == "" else {**batch, "source": name}

    def eval_batches(self, max_images: int | None = None, batch_size: int = 32) -> Iterator[dict[str, Any]]:
        yield from self._batches(self.eval_split, max_images, batch_size)

    def calibration(self, count: int, batch_size: int = 16) -> Iterator[np.ndarray]:
        """``count`` training images (a seeded random choice, split evenly over the sources) through the evaluation
        transform."""
        if not all("train" in m.datasets for m in self.sources.values()):  # checked now, not on the first image
            raise ConfigError("INT8 calibration needs the task's train split, which its data does not configure")
        per_source = max(1, count // len(self.sources))
        return (batch["image"].numpy() for batch in self._batches("train", per_source, batch_size))


# --- metrics ----------------------------------------------------------------------------------------------


def evaluate_runner(
    task: TaskModule, run: Callable[[np.ndarray], Sequence[np.ndarray]], data: TaskData, max_images: int | None = None
) -> tuple[dict[str, float], Evaluator]:
    """The task's metrics of a runner (numpy batch -> outputs of ``task.export_graphs()["model"]``) on the eval
    split, scored by the task's own evaluator (as its test would); returns the metrics and the evaluator."""
    evaluator = task.make_evaluator(data.eval_dataset, "test")
    for batch in data.eval_batches(max_images):
        outputs = [torch.from_numpy(np.asarray(o)) for o in run(batch["image"].numpy())]
        task.update_evaluator(evaluator, outputs, batch)
    return evaluator.compute(), evaluator


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
    details: dict[str, str] = field(default_factory=dict)  # e.g. an INT8 file's target and the CPU it was checked on

    @property
    def size_mb(self) -> float:
        """The file's size, with its weights file for an OpenVINO IR (``model.xml`` + ``model.bin``)."""
        files = [self.path, openvino_ir.bin_file(self.path)] if self.path.suffix == ".xml" else [self.path]
        return sum(f.stat().st_size for f in files if f.is_file()) / 2**20

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
        return out | self.details


@dataclass
class ExportResult:
    out_dir: Path
    rows: list[ExportRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # every file this export writes (the report's manifest)

    def table(self) -> str:
        header = ("format", "file", "size MB", "check")
        body = [(r.format, r.path.name, f"{r.size_mb:.2f}", r.check) for r in self.rows]
        widths = [max(len(str(row[i])) for row in [header, *body]) for i in range(4)]
        lines = ["| " + " | ".join(str(v).ljust(w) for v, w in zip(header, widths, strict=True)) + " |"]
        lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        lines += ["| " + " | ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)) + " |" for row in body]
        return "\n".join(lines)

    def write_report(self) -> Path:
        """``export_report.json``, atomically: a failed write leaves the previous report (or none), never half of
        one (``OSError`` as raised)."""
        path = self.out_dir / REPORT_NAME
        present = sorted({p.name for p in self.files if p.is_file()})
        payload = {"rows": [r.as_dict() for r in self.rows], "notes": self.notes, "files": present}
        fd, temp = tempfile.mkstemp(dir=self.out_dir, prefix=f".{REPORT_NAME}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as file:
                file.write(json.dumps(payload, indent=1, default=str) + "\n")
            os.chmod(temp, 0o666 & ~_umask())  # the mode open() gives a new file (mkstemp's is 0600)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        return path


def parse_formats(text: str | Sequence[str] | None, task: TaskModule) -> list[str]:
    """The requested formats in export order; ``None``: the defaults that apply to the task."""
    graphs = task.export_graphs()
    if text is None:
        return [f for f in DEFAULT_FORMATS if GRAPH_OF_FORMAT.get(f, "model") in graphs]
    requested = [f.strip() for f in (text.split(",") if isinstance(text, str) else text) if f.strip()]
    unknown = [f for f in requested if f not in FORMATS]
    if unknown or not requested:
        raise ConfigError(f"--formats: unknown formats {unknown}; choose from {','.join(FORMATS)}")
    for fmt in requested:
        if GRAPH_OF_FORMAT.get(fmt, "model") not in graphs:
            raise ConfigError(f"format {fmt} is for detectors; this checkpoint is a {task.kind} model")
    return [f for f in FORMATS if f in requested]


def refuse_a_file(out_dir: Path, *, option: str) -> Path:
    """``out_dir``, unless it names an existing file (a ``ConfigError`` naming ``option``)."""
    if out_dir.is_file():
        raise ConfigError(f"{option}: {out_dir} is a file, expected a folder")
    return out_dir


def export_folder(out_dir: str | Path, *, option: str = "export folder") -> Path:
    """``out_dir`` created if needed; a file or an uncreatable path is a ``ConfigError`` naming ``option``."""
    out_dir = refuse_a_file(Path(out_dir), option=option)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option}: cannot create the folder {out_dir}: {exc}") from exc
    return out_dir


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _reason(error: OSError) -> str:
    """``Permission denied`` (the system's words, without the errno and the file name the message names)."""
    return error.strerror or str(error) or type(error).__name__


def check_writable(out_dir: Path, first: Path) -> None:
    """An ``ExportError`` naming ``first`` (the first file the export writes) unless a file can be created and
    removed in ``out_dir``: tried before anything is written or removed, so a folder the export may not write is
    left as it was."""
    try:
        fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".mobivision-export-", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ExportError(f"cannot write {first}: {_reason(exc)} (nothing was written or removed)") from exc


def _state(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


@contextlib.contextmanager
def writing(out_dir: Path, *paths: Path) -> Iterator[None]:
    """A write into ``out_dir`` of ``paths`` (an exported file and its companions; none known ahead: a task's side
    files) that the system refuses is one ``ExportError`` naming the file. What the failed write created or changed
    of ``paths`` is removed (a partial file is no export); a file it did not touch stays. An ``OSError`` about a
    file elsewhere (a dataset image read for calibration) is not a write of the export: it passes unchanged."""
    before = {path: _state(path) for path in paths or out_dir.iterdir()}
    try:
        yield
    except Exception as exc:
        error = None if isinstance(exc, MobivisionError) and not isinstance(exc, ExportError) else os_error_in(exc)
        named = Path(error.filename) if error is not None and isinstance(error.filename, str) else None
        if error is None or (named is not None and named not in paths and named.parent != out_dir):
            raise
        for path in paths or ([named] if named is not None else []):
            if _state(path) is not None and _state(path) != before.get(path):
                with contextlib.suppress(OSError):
                    path.unlink()
        failed = named if named is not None else paths[0] if paths else out_dir
        raise ExportError(
            f"cannot write {failed}: {_reason(error)} (no partial file is left; {REPORT_NAME} lists the files "
            f"written before it)"
        ) from exc


def previous_export_files(out_dir: Path) -> list[Path]:
    """The files in ``out_dir`` that its export report lists (an earlier export's manifest)."""
    try:
        payload = json.loads((out_dir / REPORT_NAME).read_text())
    except (OSError, ValueError):  # no report, or one we cannot read: then no file is known to be an export's
        return []
    if not isinstance(payload, dict):
        return []
    entries = payload.get("files")
    if not isinstance(entries, list):  # a report written before the manifest: its rows name the files
        entries = [row.get("file") for row in payload.get("rows", []) if isinstance(row, dict)]
    # Only bare names inside out_dir: the report is data, it must not make us delete anything elsewhere.
    names = {Path(entry).name for entry in entries if isinstance(entry, str)} - {"", ".", "..", REPORT_NAME}
    return [out_dir / n for n in sorted(names) if (out_dir / n).is_file()]


def _parity_inputs(task: TaskModule, data: TaskData | None, parity_images: int) -> list[tuple[str, np.ndarray]]:
    height, width = task.input_size
    generator = torch.Generator().manual_seed(0)
    inputs = [("random", torch.randn(3, 3, height, width, generator=generator).numpy())]
    if data is not None and parity_images > 0:
        images = next(data.eval_batches(parity_images, batch_size=parity_images))["image"].numpy()
        inputs.append((f"{data.eval_split} images", images))
    return inputs


def _delta(name: str, fp32: float, int8: float, evaluator: Evaluator) -> float:
    """Drop of ``int8`` below ``fp32`` (positive = worse), for higher- and lower-is-better metrics."""
    return int8 - fp32 if name in evaluator.lower_is_better else fp32 - int8


def _metric_text(fp32: dict[str, float], int8: dict[str, float], evaluator: Evaluator) -> str:
    parts = []
    for key in evaluator.summary_keys(fp32):
        sign = " (lower is better)" if key in evaluator.lower_is_better else ""
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
    int8_target: str = "any",
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
        max_metric_drop: Fail when INT8 loses more than this on the task's primary metric (``task.primary_metric``;
            fractions, e.g. 0.01 = one point of top-1).
        int8_target: The CPUs the INT8 files are for (``quantize.INT8_TARGETS``): ``any`` (7-bit weights, exact on
            x86 without VNNI) or ``vnni`` (8-bit weights, for VNNI/AMX and ARM CPUs).
        data: The task's data (default: read from the checkpoint's run configuration when it can be).
        on_row: Called after each format is written and checked (progress output).

    Raises:
        ExportError: A format failed to export, or its check failed (the message holds the report).
        ConfigError: Unknown formats, or INT8 without the task's data.
    """
    task = task.eval()
    if max_metric_drop is not None and not math.isfinite(max_metric_drop):
        # nan would pass every comparison and turn the INT8 check off (a negative allowance is a stricter check:
        # INT8 must beat fp32; the command line takes >= 0 only)
        raise ConfigError(f"max_metric_drop: {max_metric_drop} is out of range (expected a finite number)")
    wanted = parse_formats(formats, task)
    check_int8_target(int8_target)
    out_dir = export_folder(out_dir)
    result = ExportResult(out_dir)
    size = task.input_size
    int8_formats = [f for f in INT8_FORMATS if f in wanted]
    if data is None and (parity_images > 0 or int8_formats):
        try:
            data = TaskData.from_task(task)
        except MobivisionError as exc:
            if int8_formats:
                raise ConfigError(
                    f"INT8 needs calibration and validation images from the task's data, which cannot be read: "
                    f"{exc}; leave {','.join(int8_formats)} out of --formats"
                ) from exc
            result.notes.append(f"parity on random inputs only: the task's data cannot be read ({exc})")
    for fmt in ("pte", "tflite"):
        if fmt in wanted and not mobile.available(fmt):
            raise ConfigError(f"format {fmt} needs optional packages: {mobile.INSTALL[fmt]}")
    for fmt in wanted:
        if fmt.startswith("openvino") and not openvino_ir.available(quantization=fmt == "openvino-int8"):
            raise ConfigError(f"format {fmt} needs optional packages: {openvino_ir.INSTALL}")
    inputs = _parity_inputs(task, data, parity_images)
    graphs = task.export_graphs()
    main = graphs["model"]

    def finish(row: ExportRow) -> None:
        result.rows.append(row)
        if on_row is not None:
            on_row(row)
        if not row.ok:
            details = row.parity.table() if row.parity is not None else row.check
            raise ExportError(f"{row.format} export {row.path} failed its check:\n{details}")

    def parity_row(
        fmt: str, path: Path, run: Callable[[np.ndarray], Any], graph: ExportGraph, compare: Any = None
    ) -> ExportRow:
        report = verify_parity(
            torch_runner(graph.module), run, inputs, graph.output_names, format=fmt, compare=compare or graph.compare
        )
        return ExportRow(fmt, path, report.summary(), report.ok, report)

    fp32_scores: list[tuple[dict[str, float], Evaluator]] = []  # the float ONNX file's metrics, computed once

    def int8_row(fmt: str, path: Path, run: Callable[[np.ndarray], Any], runtime: str) -> ExportRow:
        """The task's metrics of an INT8 file against the float ONNX file's on the evaluation split."""
        assert data is not None
        if not fp32_scores:
            fp32_scores.append(evaluate_runner(task, lambda x: run_onnx(session, x), data, eval_images))
        fp32, evaluator = fp32_scores[0]
        int8, _ = evaluate_runner(task, run, data, eval_images)
        primary = task.primary_metric.name
        drop = _delta(primary, fp32[primary], int8[primary], evaluator)
        ok = max_metric_drop is None or not drop > max_metric_drop or math.isnan(drop)
        checked_on = cpu_description()
        check = (
            f"{data.eval_split}, fp32 ONNX -> {runtime}: {_metric_text(fp32, int8, evaluator)}; target "
            f"{int8_target} ({int8_target_weights(int8_target)}), checked on {checked_on}"
        )
        if not ok:
            check += f"; {primary} drop {drop:.4f} > --max-metric-drop {max_metric_drop}"
        details = {"int8_target": f"{int8_target}: {INT8_TARGETS[int8_target]}", "checked_on": checked_on}
        return ExportRow(fmt, path, check, ok, metrics={"fp32": fp32, "int8": int8}, details=details)

    def onnx_row(fmt: str, path: Path, graph: ExportGraph, graph_exporter: str) -> Any:
        """Write ``graph`` as ONNX with its metadata, check its parity; returns its ONNX Runtime session."""
        metadata = task.file_metadata(graph, checkpoint=checkpoint)
        with writing(out_dir, path):
            export_onnx(
                graph.module,
                path,
                input_size=size,
                opset=opset,
                output_names=graph.output_names,
                metadata=metadata,
                exporter=graph_exporter,
            )
        session = onnx_session(path, threads=threads)
        finish(parity_row(fmt, path, lambda x: run_onnx(session, x), graph))
        return session

    result.files = [out_dir / FILE_OF_FORMAT[fmt].format(name=name) for fmt in wanted]
    result.files += [openvino_ir.bin_file(f) for f in result.files if f.suffix == ".xml"]
    if any(f in wanted for f in FROM_ONNX):
        result.files.append(out_dir / FILE_OF_FORMAT["onnx"].format(name=name))
    # nothing is written before the arguments and data are checked, nor removed before the folder is writable
    check_writable(out_dir, result.files[0])
    for stale in previous_export_files(out_dir):
        try:
            stale.unlink()
        except OSError as exc:
            raise ExportError(f"cannot remove {stale}, the previous export's: {_reason(exc)}") from exc
    failed = True
    try:
        with writing(out_dir):
            side_files = task.export_side_files(out_dir, name)
        for side_file in side_files:
            result.files.append(side_file)
            result.notes.append(f"{side_file.name.removeprefix(name + '.').split('.')[0]}: {side_file}")
        onnx_path = out_dir / f"{name}.onnx"
        if "onnx" in wanted or any(f in wanted for f in FROM_ONNX):
            session = onnx_row("onnx", onnx_path, main, exporter)
        if "onnx-nms" in wanted:
            # the in-graph NonMaxSuppression is a TorchScript-exporter symbolic
            onnx_row("onnx-nms", out_dir / f"{name}_nms.onnx", graphs["nms"], "torchscript")
        if "int8" in wanted:
            assert data is not None
            path = out_dir / f"{name}.int8.onnx"
            with writing(out_dir, path):
                quantize_int8(
                    onnx_path, path, data.calibration(calibration_images), per_channel=True, target=int8_target
                )
            int8_session = onnx_session(path, threads=threads)
            finish(int8_row("int8", path, lambda x: run_onnx(int8_session, x), "ONNX Runtime INT8"))
            if openvino_ir.available():  # which runtimes read the file: checked, not claimed (a note, not a gate)
                in_openvino = int8_row("int8", path, openvino_ir.openvino_runner(path, threads=threads), "OpenVINO")
                result.notes.append(f"{path.name} also runs in OpenVINO: {in_openvino.check}")
        if "openvino" in wanted:
            path = out_dir / f"{name}.xml"
            with writing(out_dir, path, openvino_ir.bin_file(path)):
                openvino_ir.export_openvino(onnx_path, path)
            finish(parity_row("openvino", path, openvino_ir.openvino_runner(path, threads=threads), main))
        if "openvino-fp16" in wanted:
            path = out_dir / f"{name}.fp16.xml"
            with writing(out_dir, path, openvino_ir.bin_file(path)):
                openvino_ir.export_openvino(onnx_path, path, fp16_weights=True)
            fp16 = functools.partial(compare_outputs, atol=FP16_ATOL, rtol=FP16_RTOL)
            finish(parity_row("openvino-fp16", path, openvino_ir.openvino_runner(path, threads=threads), main, fp16))
        if "openvino-int8" in wanted:
            assert data is not None
            path = out_dir / f"{name}.int8.xml"
            with writing(out_dir, path, openvino_ir.bin_file(path)):
                openvino_ir.quantize_openvino(onnx_path, path, data.calibration(calibration_images), target=int8_target)
            run_int8 = openvino_ir.openvino_runner(path, threads=threads)
            finish(int8_row("openvino-int8", path, run_int8, "OpenVINO INT8 (NNCF)"))
        if "torchscript" in wanted:
            path = out_dir / f"{name}.ts"
            with writing(out_dir, path):
                export_torchscript(main.module, path, input_size=size)
            finish(parity_row("torchscript", path, torchscript_runner(path), main))
        if "pte" in wanted:
            path = out_dir / f"{name}.pte"
            with writing(out_dir, path):
                mobile.export_pte(main.module, path, input_size=size)
            finish(parity_row("pte", path, mobile.pte_runner(path), main))
        if "tflite" in wanted:
            path = out_dir / f"{name}.tflite"
            with writing(out_dir, path):
                mobile.export_tflite(main.module, path, input_size=size)
            finish(parity_row("tflite", path, mobile.tflite_runner(path, threads=threads), main))
        failed = False
    finally:  # also after a failure: the report lists what this export left in the folder
        try:
            result.write_report()
        except OSError as exc:
            if not failed:
                raise ExportError(
                    f"cannot write {out_dir / REPORT_NAME}: {_reason(exc)} (the exported files are written and "
                    "checked; the folder lacks their list)"
                ) from exc
            # else the export's own error, which is what stopped it, is the one to tell
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a mobivision task checkpoint (.ckpt)")
    parser.add_argument("--out", help="output folder (default: <run folder>/export beside checkpoints/)")
    parser.add_argument(
        "--formats", help=f"comma-separated, from {','.join(FORMATS)} (default: {','.join(DEFAULT_FORMATS)})"
    )
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
        type=non_negative_float,
        help="fail if INT8 loses more than this on the task's metric (fraction: 0.01 = 1 point of top-1)",
    )
    parser.add_argument(
        "--int8-target",
        choices=tuple(INT8_TARGETS),
        default="any",
        help="the CPUs the INT8 files are for: any (default; 7-bit weights, exact on x86 without VNNI) or vnni "
        "(8-bit weights, for x86 with VNNI/AMX and ARM; saturates on AVX2-only CPUs)",
    )
    return parser.parse_args(argv)


def _progress(row: ExportRow) -> None:
    print(f"{row.format}: {row.path} ({row.size_mb:.2f} MB) {row.check}", flush=True)


def run(args: argparse.Namespace) -> None:
    if args.parity_images < 0:
        raise ConfigError(f"--parity-images must be >= 0, got {args.parity_images}")
    checkpoint = resolve_checkpoint_path(args.checkpoint)  # a run folder: its best checkpoint
    out = Path(args.out) if args.out else checkpoint.resolve().parent.parent / "export"
    if args.out:  # told before the checkpoint is loaded; created only once it loads
        refuse_a_file(out, option="--out")
    task = load_task(checkpoint).eval()
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
        int8_target=args.int8_target,
        checkpoint=checkpoint,
        on_row=_progress,
    )
    print(result.table())
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {out / REPORT_NAME}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_code(lambda: run(args))
