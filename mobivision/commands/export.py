"""Export a trained task to deployment formats, each checked against the PyTorch model right after writing.

``export_task(task, out_dir, formats=...)`` writes the requested formats of ``export_formats.EXPORT_FORMATS`` (the
table of formats: files, writers, checks), named ``<name>.*`` (default ``model``), in the table's order.

Outputs per task (the ``outputs`` metadata entry says what each means): classification ``logits``;
attributes ``logits`` (the tuned thresholds in the metadata); geo-localization one ``logits_<partitioning>``
per partitioning plus ``cell_probabilities`` over the finest cells (the cells' tokens and mean locations are in
the side-car ``model.cells.json``, which can hold tens of thousands of cells); detection ``cls_logits``,
``bbox_regression`` and ``anchors`` (the export resolution's anchors, a constant output), and in the NMS graph
``boxes``, ``scores``, ``labels``, ``num_detections``; a multi-task model every head's outputs in one graph (one
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
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mobivision.commands.cli import exit_code, non_negative_float, positive_int
from mobivision.commands.export_formats import (
    DEFAULT_FORMATS,
    FORMATS,
    ExportJob,
    ExportRow,
    parse_formats,
    with_float_onnx,
    written_files,
)
from mobivision.errors import ConfigError, ExportError, MobivisionError, os_error_in
from mobivision.export.quantize import INT8_TARGETS, check_int8_target
from mobivision.inference import resolve_checkpoint_path
from mobivision.tasks.base import TaskModule
from mobivision.tasks.runner import load_task
from mobivision.tasks.task_data import TaskData

REPORT_NAME = "export_report.json"


# --- the export folder ------------------------------------------------------------------------------------


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
    int8_formats = [fmt.name for fmt in wanted if fmt.int8]
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
    for fmt in wanted:
        if fmt.extra is not None and not fmt.extra.available():
            raise ConfigError(f"format {fmt.name} needs optional packages: {fmt.extra.install}")
    job = ExportJob(
        task=task,
        graphs=task.export_graphs(),
        out_dir=out_dir,
        name=name,
        inputs=_parity_inputs(task, data, parity_images),
        data=data,
        opset=opset,
        exporter=exporter,
        calibration_images=calibration_images,
        eval_images=eval_images,
        threads=threads,
        max_metric_drop=max_metric_drop,
        int8_target=int8_target,
        checkpoint=checkpoint,
    )
    steps = with_float_onnx(wanted)
    result.files = [file for fmt in steps for file in written_files(job.path(fmt))]
    # nothing is written before the arguments and data are checked, nor removed before the folder is writable
    check_writable(out_dir, job.path(wanted[0]))
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
        for fmt in steps:
            path = job.path(fmt)
            with writing(out_dir, *written_files(path)):
                fmt.write(job, fmt, path)
            row = fmt.check(job, fmt, path)
            result.rows.append(row)
            if on_row is not None:
                on_row(row)
            if not row.ok:
                details = row.parity.table() if row.parity is not None else row.check
                raise ExportError(f"{row.format} export {row.path} failed its check:\n{details}")
            note = fmt.note(job, path) if fmt.note is not None else None
            if note is not None:
                result.notes.append(note)
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


def build_parser() -> argparse.ArgumentParser:
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
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


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
