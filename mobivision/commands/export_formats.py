"""The export formats, one record each (``EXPORT_FORMATS``): its file, the task's graph it holds, whether it is
converted from the float ONNX file or is INT8, the optional packages it needs, how it is written and how it is
checked. ``commands/export.py`` writes and checks the requested records in this order; ``FORMATS`` and
``DEFAULT_FORMATS`` (the names ``--formats`` takes) are read from the table.

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

A format converted from the float ONNX file (INT8, OpenVINO) has that file written and checked first, also when
``onnx`` itself was not asked for. Parity checks run the file and the PyTorch graph on the same inputs
(``ExportJob.inputs``); an INT8 check scores the file and the float ONNX file by the task's metric on its own data
(``mobivision.tasks.task_data``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mobivision.errors import ConfigError
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
from mobivision.export.parity import Runner
from mobivision.export.quantize import INT8_TARGETS, int8_target_weights
from mobivision.machine import cpu_description
from mobivision.tasks.base import TaskModule
from mobivision.tasks.task_data import TaskData, evaluate_runner

# OpenVINO IR with fp16 weights: each weight rounded to 11 significant bits (relative error <= 2^-11 = 4.9e-4), and
# the errors of a dozen layers add up: outputs moved by 1e-4 of the largest output on the trained demo classifier
# and by up to 4% on the tests' random-weight detector (whose activations grow layer after layer). A wrong graph
# (a missing layer, swapped channels, a wrong normalisation) differs by the outputs' own scale.
FP16_ATOL = 1e-2
FP16_RTOL = 5e-2


def written_files(path: Path) -> list[Path]:
    """The files of an exported file: itself, and an OpenVINO IR's weights (``model.xml`` + ``model.bin``)."""
    return [path, openvino_ir.bin_file(path)] if path.suffix == ".xml" else [path]


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
        return sum(f.stat().st_size for f in written_files(self.path) if f.is_file()) / 2**20

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
class ExportJob:
    """What every format's writer and checker reads: the task and its graphs, the export's settings (the arguments
    of ``export_task``), the parity inputs, and the task's data (None: it cannot be read, and no INT8 format is
    asked for)."""

    task: TaskModule
    graphs: dict[str, ExportGraph]
    out_dir: Path
    name: str
    inputs: list[tuple[str, np.ndarray]]
    data: TaskData | None
    opset: int
    exporter: str
    calibration_images: int
    eval_images: int | None
    threads: int | None
    max_metric_drop: float | None
    int8_target: str
    checkpoint: str | Path | None

    def path(self, fmt: ExportFormat) -> Path:
        return self.out_dir / fmt.file.format(name=self.name)

    @property
    def float_onnx(self) -> Path:
        return self.path(FORMAT["onnx"])

    def calibration(self) -> Any:
        assert self.data is not None  # export_task reads the data, or refuses, before an INT8 format
        return self.data.calibration(self.calibration_images)

    @functools.cached_property
    def fp32_scores(self) -> tuple[dict[str, float], Evaluator]:
        """The float ONNX file's metrics, which every INT8 file is held to: computed once."""
        assert self.data is not None
        return evaluate_runner(self.task, _onnx(self, self.float_onnx), self.data, self.eval_images)


Writer = Callable[[ExportJob, "ExportFormat", Path], object]
Checker = Callable[[ExportJob, "ExportFormat", Path], ExportRow]


@dataclass(frozen=True)
class Extra:
    """The optional packages of a format: the line that installs them, and whether they are installed (asked when
    an export starts, so that a test may patch the check)."""

    install: str
    available: Callable[[], bool]


@dataclass(frozen=True)
class ExportFormat:
    """One format: ``file`` its name (``{name}``: the export's stem), written by ``write`` and checked by ``check``
    right after; ``note`` (when set) adds a line to the report once the check passed."""

    name: str
    file: str
    write: Writer
    check: Checker
    graph: str = "model"  # the task's export graph the file holds (``TaskModule.export_graphs``)
    default: bool = False  # exported when no formats are named, if the task has the graph
    from_onnx: bool = False  # converted from the float ONNX file
    int8: bool = False  # calibrated on the task's data, checked by its metric
    extra: Extra | None = None
    note: Callable[[ExportJob, Path], str | None] | None = None


# --- writers: (job, format, path) -> the file written ----------------------------------------------------


def _write_onnx(job: ExportJob, fmt: ExportFormat, path: Path, *, exporter: str | None = None) -> Path:
    graph = job.graphs[fmt.graph]
    return export_onnx(
        graph.module,
        path,
        input_size=job.task.input_size,
        opset=job.opset,
        output_names=graph.output_names,
        metadata=job.task.file_metadata(graph, checkpoint=job.checkpoint),
        exporter=exporter or job.exporter,
    )


def _write_int8(job: ExportJob, fmt: ExportFormat, path: Path) -> Path:
    return quantize_int8(job.float_onnx, path, job.calibration(), per_channel=True, target=job.int8_target)


def _write_openvino(job: ExportJob, fmt: ExportFormat, path: Path, *, fp16_weights: bool = False) -> Path:
    return openvino_ir.export_openvino(job.float_onnx, path, fp16_weights=fp16_weights)


def _write_openvino_int8(job: ExportJob, fmt: ExportFormat, path: Path) -> Path:
    return openvino_ir.quantize_openvino(job.float_onnx, path, job.calibration(), target=job.int8_target)


def _write_torchscript(job: ExportJob, fmt: ExportFormat, path: Path) -> Path:
    return export_torchscript(job.graphs[fmt.graph].module, path, input_size=job.task.input_size)


def _write_pte(job: ExportJob, fmt: ExportFormat, path: Path) -> Path:
    return mobile.export_pte(job.graphs[fmt.graph].module, path, input_size=job.task.input_size)


def _write_tflite(job: ExportJob, fmt: ExportFormat, path: Path) -> Path:
    return mobile.export_tflite(job.graphs[fmt.graph].module, path, input_size=job.task.input_size)


# --- runners: (job, path) -> a function of a numpy batch returning the file's outputs -------------------------


def _onnx(job: ExportJob, path: Path) -> Runner:
    return functools.partial(run_onnx, onnx_session(path, threads=job.threads))


def _openvino(job: ExportJob, path: Path) -> Runner:
    return openvino_ir.openvino_runner(path, threads=job.threads)


def _torchscript(job: ExportJob, path: Path) -> Runner:
    return torchscript_runner(path)


def _pte(job: ExportJob, path: Path) -> Runner:
    return mobile.pte_runner(path)


def _tflite(job: ExportJob, path: Path) -> Runner:
    return mobile.tflite_runner(path, threads=job.threads)


# --- checkers ------------------------------------------------------------------------------------------------


def parity(runner: Callable[[ExportJob, Path], Runner], compare: Any = None) -> Checker:
    """The file (run by ``runner``) against the PyTorch graph on the parity inputs, each output within ``compare``
    (default: the graph's own, ``ExportGraph.compare``)."""

    def check(job: ExportJob, fmt: ExportFormat, path: Path) -> ExportRow:
        graph = job.graphs[fmt.graph]
        report = verify_parity(
            torch_runner(graph.module),
            runner(job, path),
            job.inputs,
            graph.output_names,
            format=fmt.name,
            compare=compare or graph.compare,
        )
        return ExportRow(fmt.name, path, report.summary(), report.ok, report)

    return check


def metric(runner: Callable[[ExportJob, Path], Runner], runtime: str) -> Checker:
    """The task's metrics of the INT8 file (run by ``runner`` in ``runtime``) against the float ONNX file's."""

    def check(job: ExportJob, fmt: ExportFormat, path: Path) -> ExportRow:
        return _int8_row(job, fmt.name, path, runner(job, path), runtime)

    return check


def _int8_row(job: ExportJob, fmt: str, path: Path, run: Runner, runtime: str) -> ExportRow:
    assert job.data is not None
    fp32, evaluator = job.fp32_scores
    int8, _ = evaluate_runner(job.task, run, job.data, job.eval_images)
    primary = job.task.primary_metric.name
    drop = _delta(primary, fp32[primary], int8[primary], evaluator)
    ok = job.max_metric_drop is None or not drop > job.max_metric_drop or math.isnan(drop)
    checked_on = cpu_description()
    target = job.int8_target
    check = (
        f"{job.data.eval_split}, fp32 ONNX -> {runtime}: {_metric_text(fp32, int8, evaluator)}; target "
        f"{target} ({int8_target_weights(target)}), checked on {checked_on}"
    )
    if not ok:
        check += f"; {primary} drop {drop:.4f} > --max-metric-drop {job.max_metric_drop}"
    details = {"int8_target": f"{target}: {INT8_TARGETS[target]}", "checked_on": checked_on}
    return ExportRow(fmt, path, check, ok, metrics={"fp32": fp32, "int8": int8}, details=details)


def _delta(name: str, fp32: float, int8: float, evaluator: Evaluator) -> float:
    """Drop of ``int8`` below ``fp32`` (positive = worse), for higher- and lower-is-better metrics."""
    return int8 - fp32 if name in evaluator.lower_is_better else fp32 - int8


def _metric_text(fp32: dict[str, float], int8: dict[str, float], evaluator: Evaluator) -> str:
    parts = []
    for key in evaluator.summary_keys(fp32):
        sign = " (lower is better)" if key in evaluator.lower_is_better else ""
        parts.append(f"{key} {fp32[key]:.4f} -> {int8[key]:.4f} ({int8[key] - fp32[key]:+.4f}){sign}")
    return "; ".join(parts)


def _int8_in_openvino(job: ExportJob, path: Path) -> str | None:
    """Which runtimes read ONNX Runtime's INT8 file: checked, not claimed (a note, not a gate)."""
    if not openvino_ir.available():
        return None
    in_openvino = _int8_row(job, "int8", path, _openvino(job, path), "OpenVINO")
    return f"{path.name} also runs in OpenVINO: {in_openvino.check}"


# --- the table -----------------------------------------------------------------------------------------------

# The checks of ``available`` call the modules' functions when asked (not bound here), so a patched one counts.
OPENVINO = Extra(openvino_ir.INSTALL, lambda: openvino_ir.available())
NNCF = Extra(openvino_ir.INSTALL, lambda: openvino_ir.available(quantization=True))
EXECUTORCH = Extra(mobile.INSTALL["pte"], lambda: mobile.available("pte"))
LITERT = Extra(mobile.INSTALL["tflite"], lambda: mobile.available("tflite"))
FP16_COMPARE = functools.partial(compare_outputs, atol=FP16_ATOL, rtol=FP16_RTOL)

EXPORT_FORMATS: tuple[ExportFormat, ...] = (
    ExportFormat("onnx", "{name}.onnx", _write_onnx, parity(_onnx), default=True),
    # the in-graph NonMaxSuppression is a TorchScript-exporter symbolic
    ExportFormat(
        "onnx-nms",
        "{name}_nms.onnx",
        functools.partial(_write_onnx, exporter="torchscript"),
        parity(_onnx),
        graph="nms",
        default=True,
    ),
    ExportFormat(
        "int8",
        "{name}.int8.onnx",
        _write_int8,
        metric(_onnx, "ONNX Runtime INT8"),
        default=True,
        from_onnx=True,
        int8=True,
        note=_int8_in_openvino,
    ),
    ExportFormat("openvino", "{name}.xml", _write_openvino, parity(_openvino), from_onnx=True, extra=OPENVINO),
    ExportFormat(
        "openvino-fp16",
        "{name}.fp16.xml",
        functools.partial(_write_openvino, fp16_weights=True),
        parity(_openvino, FP16_COMPARE),
        from_onnx=True,
        extra=OPENVINO,
    ),
    ExportFormat(
        "openvino-int8",
        "{name}.int8.xml",
        _write_openvino_int8,
        metric(_openvino, "OpenVINO INT8 (NNCF)"),
        from_onnx=True,
        int8=True,
        extra=NNCF,
    ),
    ExportFormat("torchscript", "{name}.ts", _write_torchscript, parity(_torchscript), default=True),
    ExportFormat("pte", "{name}.pte", _write_pte, parity(_pte), extra=EXECUTORCH),
    ExportFormat("tflite", "{name}.tflite", _write_tflite, parity(_tflite), extra=LITERT),
)
FORMAT = {fmt.name: fmt for fmt in EXPORT_FORMATS}
FORMATS = tuple(FORMAT)
DEFAULT_FORMATS = tuple(fmt.name for fmt in EXPORT_FORMATS if fmt.default)


def parse_formats(text: str | Sequence[str] | None, task: TaskModule) -> list[ExportFormat]:
    """The requested formats in export order; ``None``: the defaults that apply to the task."""
    graphs = task.export_graphs()
    if text is None:
        return [fmt for fmt in EXPORT_FORMATS if fmt.default and fmt.graph in graphs]
    requested = [f.strip() for f in (text.split(",") if isinstance(text, str) else text) if f.strip()]
    unknown = [f for f in requested if f not in FORMAT]
    if unknown or not requested:
        raise ConfigError(f"--formats: unknown formats {unknown}; choose from {','.join(FORMATS)}")
    for name in requested:
        if FORMAT[name].graph not in graphs:
            raise ConfigError(f"format {name} is for detectors; this checkpoint is a {task.kind} model")
    return [fmt for fmt in EXPORT_FORMATS if fmt.name in requested]


def with_float_onnx(formats: Sequence[ExportFormat]) -> list[ExportFormat]:
    """The formats to write, in table order: ``formats``, and the float ONNX file when one is converted from it."""
    needed = {fmt.name for fmt in formats} | ({"onnx"} if any(fmt.from_onnx for fmt in formats) else set())
    return [fmt for fmt in EXPORT_FORMATS if fmt.name in needed]
