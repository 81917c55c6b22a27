"""Where the network runs: ``OnnxRuntime`` (an exported ``.onnx``, fp32 or INT8; numpy and onnxruntime only) or
``OpenVinoRuntime`` (an exported OpenVINO IR ``.xml``, fp32, fp16 weights or INT8; numpy and openvino only), both
opening their file through ``sessions.py``; a task checkpoint runs on
``mobivision.tasks.checkpoint_runtime.CheckpointRuntime`` (the training layer: the task's export graph, the same graph
the exported files hold), which ``mobivision.load`` finds through the entry point ``checkpoint`` of the group
``mobivision.runtimes``, so that this library imports nothing of the layers above it.

All three expose the same three things: ``metadata`` (the exported file's entries, JSON values decoded; for a
checkpoint the entries an export would write; checked by ``metadata.check_metadata`` before anything uses them),
``side_data`` (per head, the JSON its decoder reads besides the outputs: a geolocation head's cells) and
``run(batch) -> {output name: array}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mobivision.errors import ConfigError, WeightFileError
from mobivision.inference.metadata import check_metadata
from mobivision.inference.sessions import compile_openvino, onnx_session, run_onnx, run_openvino

METADATA_SECTION = "mobivision"  # the runtime-info section of an OpenVINO IR that holds the export's metadata


class OnnxRuntime:
    """An exported ONNX file on ONNX Runtime (CPU unless ``device`` is ``cuda``)."""

    def __init__(self, path: Path, *, device: str = "cpu", threads: int | None = None) -> None:
        self.session = onnx_session(path, threads=threads, device=device)
        raw = self.session.get_modelmeta().custom_metadata_map
        self.metadata = {key: _json_or_text(value) for key, value in raw.items()}
        self.output_names = [output.name for output in self.session.get_outputs()]
        check_metadata(path, self.metadata, self.output_names, source="onnx")
        self.side_data = _side_files(path, self.metadata)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, run_onnx(self.session, batch), strict=True))


def openvino_metadata(model: Any) -> dict[str, Any]:
    """The export metadata an IR holds under ``METADATA_SECTION`` (JSON values decoded; empty: none)."""
    if not model.has_rt_info([METADATA_SECTION]):
        return {}
    section = model.get_rt_info()[METADATA_SECTION]
    return {key: _json_or_text(value.astype(str)) for key, value in section.items()}


class OpenVinoRuntime:
    """An exported OpenVINO IR (``model.xml`` beside its ``model.bin``) on OpenVINO's CPU plugin, f32 arithmetic."""

    def __init__(self, path: Path, *, threads: int | None = None) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise ConfigError(f"{path}: an OpenVINO IR needs openvino: pip install 'mobivision[openvino]'") from exc
        try:
            model = ov.Core().read_model(str(path))
            compiled = compile_openvino(model, threads=threads)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses for foreign, truncated or unpaired files
            raise WeightFileError(f"{path}: cannot open as an OpenVINO IR ({type(exc).__name__}: {exc})") from exc
        self.metadata = openvino_metadata(model)
        # the model's outputs, not the compiled ones: compiling adds the names of the nodes fused into an output
        self.output_names = [output.get_any_name() for output in model.outputs]
        check_metadata(path, self.metadata, self.output_names, source="openvino")
        self.request = compiled.create_infer_request()
        self.side_data = _side_files(path, self.metadata)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, run_openvino(self.request, batch), strict=True))


def _json_or_text(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def side_file_of(entries: dict[str, Any]) -> str | None:
    """The suffix of a head's side file (its ``side_file`` entry); files of 0.1.0 lack the entry, and a geolocation
    head's ``cells_file`` description then says it is ``cells``."""
    return entries.get("side_file") or ("cells" if "cells_file" in entries else None)


def _side_files(path: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """Each head's side file: ``<name>.<side_file>.json`` (multi-task ``<name>.<head>.<side_file>.json``) beside the
    file, ``<name>`` being the file's name without its format suffixes (``.onnx``, ``.xml``, ``.int8``, ``.fp16``)."""
    name = path.name
    for suffix in (".onnx", ".xml", ".int8", ".fp16", "_nms"):
        name = name.removesuffix(suffix)
    heads = metadata.get("heads") or {metadata["task_kind"]: metadata}
    found = {}
    for head, entries in heads.items():
        side_file = side_file_of(entries)
        if side_file is None:
            continue
        stem = name if "heads" not in metadata else f"{name}.{head}"
        side = path.with_name(f"{stem}.{side_file}.json")
        if not side.is_file():
            raise WeightFileError(f"{path}: head {head!r} reads its {side_file} file {side}, which is missing")
        found[head] = json.loads(side.read_text())
    return found
