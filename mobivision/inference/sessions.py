"""One way to open an exported file: ``onnx_session`` (ONNX Runtime, CPU or CUDA) and ``compile_openvino``
(OpenVINO, latency hint, f32 arithmetic by default), with ``run_onnx`` / ``run_openvino`` running a batch on them.

The runtimes of ``mobivision.load`` (``runtimes.py``), the export checks (``mobivision.export``), profiling and the
benchmarks all open their files here, so a file runs with the same providers, threads and precision everywhere.
numpy, onnxruntime and openvino only (each imported when first used): no torch.

``device`` (``parse_device``): ``cpu``, ``cuda`` or ``cuda:N``; a GPU that is not there is a ``ConfigError`` before
anything loads on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mobivision.errors import ConfigError, WeightFileError

DEVICE_FORMS = "cpu, cuda or cuda:N (N: the GPU's index, cuda:0 the first)"
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDERS = ["CPUExecutionProvider"]
ORT_ERRORS_ONLY = 3  # ONNX Runtime's log severity: errors and fatal errors, not its warnings about node placement
# OpenVINO compiles for f32 arithmetic by default only where the CPU has no bf16 (AMX / AVX-512 BF16 CPUs get bf16,
# about 3 significant digits): "f32" keeps the results those of the ONNX file; "bf16" is the faster choice there.
OPENVINO_PRECISIONS = ("f32", "bf16", "f16")


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


def onnx_session(path: str | Path, *, threads: int | None = None, device: str = "cpu") -> Any:
    """An ``onnxruntime.InferenceSession`` of ``path`` on the CPU, or on CUDA GPU N for ``device`` ``cuda[:N]``
    (with the CPU provider for the operators CUDA lacks). ``threads``: intra-op threads (default ORT's).

    Raises:
        WeightFileError: The file is missing, or ONNX Runtime cannot load it (a foreign or truncated file).
        ConfigError: ``device`` is not one of ``DEVICE_FORMS``, this ONNX Runtime has no CUDA provider, or the
            provider cannot start here (ONNX Runtime would fall back to the CPU).
    """
    import onnxruntime as ort  # imported here: a checkpoint user need not have it

    path = Path(path)
    gpu = parse_device(device)
    if gpu is not None and CUDA_PROVIDER not in ort.get_available_providers():
        raise ConfigError(
            f"device {device!r}: this ONNX Runtime has no {CUDA_PROVIDER} (it has "
            f"{', '.join(ort.get_available_providers())}; the onnxruntime-gpu package has CUDA); use device='cpu'"
        )
    if not path.is_file():
        raise WeightFileError(f"ONNX file not found: {path}")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.log_severity_level = ORT_ERRORS_ONLY
    providers = CPU_PROVIDERS if gpu is None else [(CUDA_PROVIDER, {"device_id": gpu}), *CPU_PROVIDERS]
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph / NoSuchFile types
        if gpu is not None and _opens_on_cpu(ort, path):
            raise ConfigError(
                f"device {device!r}: ONNX Runtime cannot run on it ({type(exc).__name__}: {exc})"
            ) from exc
        raise WeightFileError(
            f"{path}: cannot open as an ONNX model (ONNX Runtime cannot load it: {type(exc).__name__}: {exc})"
        ) from exc
    if gpu is not None and CUDA_PROVIDER not in session.get_providers():  # ORT fell back to the CPU
        raise ConfigError(
            f"device {device!r}: ONNX Runtime could not start its {CUDA_PROVIDER} here (no usable CUDA GPU "
            f"{gpu} or CUDA libraries; the session would run on {', '.join(session.get_providers())}); "
            f"use device='cpu'"
        )
    return session


def _opens_on_cpu(ort: Any, path: Path) -> bool:
    """Whether ONNX Runtime opens ``path`` on the CPU: a file that does failed on the GPU, not for being foreign."""
    try:
        ort.InferenceSession(str(path), providers=CPU_PROVIDERS)
    except Exception:
        return False
    return True


def run_onnx(session: Any, images: Any) -> list[np.ndarray]:
    """All outputs of ``session`` for an ``[B, 3, H, W]`` float32 batch (any array-like), in graph order."""
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.ascontiguousarray(images, dtype=np.float32)})


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


def run_openvino(request: Any, images: Any) -> list[np.ndarray]:
    """All outputs of an ``openvino.InferRequest`` for an ``[B, 3, H, W]`` batch, in graph order: arrays of their own
    (``infer`` copies them out of the request's buffers, which its next call reuses: ``share_outputs`` is off)."""
    return list(request.infer({0: np.ascontiguousarray(images, dtype=np.float32)}).to_tuple())
