"""Where the network runs: ``OnnxRuntime`` (an exported ``.onnx``, fp32 or INT8; numpy and onnxruntime only) or
``TorchRuntime`` (a task checkpoint: the task's export graph, the same graph the ``.onnx`` holds).

Both expose the same three things: ``metadata`` (the exported file's entries, JSON values decoded; for a
checkpoint the entries an export would write), ``cells`` (a geolocation head's cells file, per head) and
``run(batch) -> {output name: array}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mobivision.errors import WeightFileError


class OnnxRuntime:
    """An exported ONNX file on ONNX Runtime (CPU unless ``device`` is ``cuda``)."""

    def __init__(self, path: Path, *, device: str = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort  # imported here: a checkpoint user need not have it

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else None
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for foreign or truncated files
            raise WeightFileError(f"{path}: cannot open as an ONNX model ({type(exc).__name__}: {exc})") from exc
        raw = self.session.get_modelmeta().custom_metadata_map
        if "task_kind" not in raw:
            raise WeightFileError(f"{path}: not a mobivision export (no task_kind in its metadata)")
        self.metadata = {key: _json_or_text(value) for key, value in raw.items()}
        self.input_name = self.session.get_inputs()[0].name
        self.cells = _side_cells(path, self.metadata)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        names = [output.name for output in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, {self.input_name: batch}), strict=True))


class TorchRuntime:
    """A task checkpoint: its export graph (what ``tools/export.py`` writes) on ``device``."""

    def __init__(self, path: Path, *, device: str = "cpu") -> None:
        import torch

        from mobivision.commands.export import task_metadata
        from mobivision.tasks.runner import load_task

        self.torch = torch
        self.device = torch.device(device)
        task = load_task(path).eval()
        graph = task.export_graphs()["model"]
        self.metadata = json.loads(json.dumps(task_metadata(task, graph, checkpoint=path)))  # as a file stores them
        self.output_names = list(graph.output_names)
        self.module = graph.module.eval().to(self.device)
        self.cells = _task_cells(task)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        with self.torch.inference_mode():
            outputs = self.module(self.torch.from_numpy(batch).to(self.device))
        outputs = outputs if isinstance(outputs, tuple | list) else (outputs,)
        arrays = [o.float().cpu().numpy() for o in outputs]
        return dict(zip(self.output_names, arrays, strict=True))


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def _side_cells(path: Path, metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A geolocation head's cells: ``<name>.cells.json`` (multi-head ``<name>.<head>.cells.json``) beside the file,
    ``<name>`` being the file's name without ``.onnx`` and ``.int8``."""
    name = path.name.removesuffix(".onnx").removesuffix(".int8").removesuffix("_nms")
    heads = metadata.get("heads") or {metadata["task_kind"]: metadata}
    cells = {}
    for head, entries in heads.items():
        if entries.get("kind", metadata["task_kind"]) != "geo":
            continue
        side = path.with_name(f"{name}.cells.json" if "heads" not in metadata else f"{name}.{head}.cells.json")
        if not side.is_file():
            raise WeightFileError(f"{path}: the geolocation head's cells file {side} is missing (exported beside it)")
        cells[head] = json.loads(side.read_text())
    return cells


def _task_cells(task: Any) -> dict[str, dict[str, Any]]:
    heads = getattr(task, "head_tasks", None) or {task.kind: task}
    return {name: head.cells_payload() for name, head in heads.items() if head.kind == "geo"}
