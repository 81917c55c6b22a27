"""Where the network runs: ``OnnxRuntime`` (an exported ``.onnx``, fp32 or INT8; numpy and onnxruntime only) or
``OpenVinoRuntime`` (an exported OpenVINO IR ``.xml``, fp32, fp16 weights or INT8; numpy and openvino only); a task
checkpoint runs on ``mobivision.tasks.checkpoint_runtime.CheckpointRuntime`` (the training layer: the task's export
graph, the same graph the exported files hold), which ``mobivision.load`` finds through the entry point
``checkpoint`` of the group ``mobivision.runtimes``, so that this library imports nothing of the layers above it.

All three expose the same three things: ``metadata`` (the exported file's entries, JSON values decoded; for a
checkpoint the entries an export would write; checked by ``metadata.check_metadata`` before anything uses them),
``side_data`` (per head, the JSON its decoder reads besides the outputs: a geolocation head's cells) and
``run(batch) -> {output name: array}``.

``device`` (``parse_device``): ``cpu``, ``cuda`` or ``cuda:N``; a GPU that is not there is a ``ConfigError`` before
anything loads on it (checkpoints: torch's CUDA device count; ONNX: the providers ONNX Runtime has and runs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mobivision.errors import ConfigError, WeightFileError
from mobivision.inference.metadata import check_metadata

METADATA_SECTION = "mobivision"  # the runtime-info section of an OpenVINO IR that holds the export's metadata
# OpenVINO compiles for f32 arithmetic by default only where the CPU has no bf16 (AMX / AVX-512 BF16 CPUs get bf16,
# about 3 significant digits): "f32" keeps the results those of the ONNX file; "bf16" is the faster choice there.
OPENVINO_PRECISIONS = ("f32", "bf16", "f16")
DEVICE_FORMS = "cpu, cuda or cuda:N (N: the GPU's index, cuda:0 the first)"
CUDA_PROVIDER = "CUDAExecutionProvider"


def parse_device(device: str) -> int | None:
    """``device`` checked: None for ``cpu``, the GPU index for ``cuda`` (0) or ``cuda:N``; anything else is a
    ``ConfigError`` listing the accepted forms."""
    if device == "cpu":
        return None
    if device == "cuda":
        return 0
    kind, colon, index = device.partition(":") if isinstance(device, str) else ("", "", "")
    if kind == "cuda" and colon and index.isascii() and index.isdigit():
        return int(index)
    raise ConfigError(f"device {device!r}: unknown device; expected {DEVICE_FORMS}")


class OnnxRuntime:
    """An exported ONNX file on ONNX Runtime (CPU unless ``device`` is ``cuda``)."""

    def __init__(self, path: Path, *, device: str = "cpu", threads: int | None = None) -> None:
        import onnxruntime as ort  # imported here: a checkpoint user need not have it

        gpu = parse_device(device)
        if gpu is not None and CUDA_PROVIDER not in ort.get_available_providers():
            raise ConfigError(
                f"device {device!r}: this ONNX Runtime has no {CUDA_PROVIDER} (it has "
                f"{', '.join(ort.get_available_providers())}; the onnxruntime-gpu package has CUDA); use device='cpu'"
            )
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        cpu = ["CPUExecutionProvider"]
        providers = cpu if gpu is None else [(CUDA_PROVIDER, {"device_id": gpu}), *cpu]
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types for foreign or truncated files
            if gpu is not None and _opens_on_cpu(ort, path):
                raise ConfigError(
                    f"device {device!r}: ONNX Runtime cannot run on it ({type(exc).__name__}: {exc})"
                ) from exc
            raise WeightFileError(f"{path}: cannot open as an ONNX model ({type(exc).__name__}: {exc})") from exc
        if gpu is not None and CUDA_PROVIDER not in self.session.get_providers():  # ORT fell back to the CPU
            raise ConfigError(
                f"device {device!r}: ONNX Runtime could not start its {CUDA_PROVIDER} here (no usable CUDA GPU "
                f"{gpu} or CUDA libraries; the session would run on {', '.join(self.session.get_providers())}); "
                f"use device='cpu'"
            )
        raw = self.session.get_modelmeta().custom_metadata_map
        self.metadata = {key: _json_or_text(value) for key, value in raw.items()}
        check_metadata(path, self.metadata, [o.name for o in self.session.get_outputs()], source="onnx")
        self.input_name = self.session.get_inputs()[0].name
        self.side_data = _side_files(path, self.metadata)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        names = [output.name for output in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, {self.input_name: batch}), strict=True))


def compile_openvino(
    model: Any, *, threads: int | None = None, precision: str | None = "f32", device: str = "CPU"
) -> Any:
    """An ``openvino.CompiledModel`` of ``model`` (a path or an ``openvino.Model``) tuned for latency.

    ``precision``: OpenVINO's ``INFERENCE_PRECISION_HINT`` (``f32``, ``bf16``, ``f16``; None: OpenVINO's default for
    the device); ``threads``: ``INFERENCE_NUM_THREADS`` (default: OpenVINO's choice).
    """
    import openvino as ov

    if precision is not None and precision not in OPENVINO_PRECISIONS:
        raise ValueError(f"precision must be one of {OPENVINO_PRECISIONS} or None, got {precision!r}")
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if precision is not None:
        config["INFERENCE_PRECISION_HINT"] = precision
    if threads is not None:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    core = ov.Core()
    return core.compile_model(core.read_model(str(model)) if isinstance(model, str | Path) else model, device, config)


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
            self.compiled = compile_openvino(model, threads=threads)
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses for foreign, truncated or unpaired files
            raise WeightFileError(f"{path}: cannot open as an OpenVINO IR ({type(exc).__name__}: {exc})") from exc
        self.metadata = openvino_metadata(model)
        # the model's outputs, not the compiled ones: compiling adds the names of the nodes fused into an output
        self.output_names = [output.get_any_name() for output in model.outputs]
        check_metadata(path, self.metadata, self.output_names, source="openvino")
        self.request = self.compiled.create_infer_request()
        self.side_data = _side_files(path, self.metadata)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        results = self.request.infer({0: batch})
        return {name: np.array(results[i]) for i, name in enumerate(self.output_names)}


def _opens_on_cpu(ort: Any, path: Path) -> bool:
    """Whether ONNX Runtime opens ``path`` on the CPU: a file that does failed on the GPU, not for being foreign."""
    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception:
        return False
    return True


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
    """Each head's side file: ``<name>.<side_file>.json`` (multi-head ``<name>.<head>.<side_file>.json``) beside the
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
