"""Cost of a model: multiply-adds, parameters and CPU latency (paper Sec. 3.3 and Tables 6-7).

Multiply-adds are counted by PyTorch's own FLOP counter (``torch.utils.flop_counter``) on a real forward
pass, never from hand-kept constants; one multiply-add is two FLOPs. Like the paper and TF-Slim, this
counts convolutions and fully connected layers; BatchNorm, activations and pooling are not counted.

Latency is the median of batch-1 calls in one of ``LATENCY_RUNTIMES``: PyTorch eager (``measure_latency_ms``),
or the model exported to ONNX (``mobivision.export.export_onnx``) and run by ONNX Runtime or by OpenVINO with
f32 arithmetic (``measure_exported_latency_ms``), timed by ``mobivision.timing``. ``onnxruntime_call`` and
``openvino_call`` are the one place that opens a session / compiles a model for timing (``mobivision.runtime_latency``
uses them too).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mobivision.timing import median_seconds


@dataclass(frozen=True)
class ModelCost:
    """Multiply-adds for one image and the number of parameters; for a model with a ``backbone`` (detectors, multi-task
    models) also the backbone's, so its share is known (the heads' cost is the rest)."""

    macs: int
    params: int
    backbone_macs: int | None = None
    backbone_params: int | None = None

    @property
    def backbone_share(self) -> tuple[float, float] | None:
        """The backbone's share of the multiply-adds and of the parameters (None: no backbone)."""
        if self.backbone_macs is None or self.backbone_params is None:
            return None
        return self.backbone_macs / max(self.macs, 1), self.backbone_params / max(self.params, 1)

    @property
    def mmacs(self) -> float:
        return self.macs / 1e6

    @property
    def mparams(self) -> float:
        return self.params / 1e6


def count_parameters(model: nn.Module) -> int:
    """All parameters (BatchNorm running statistics are buffers and are not counted)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, resolution: int | tuple[int, int]) -> int:
    """Multiply-adds of one forward pass on a single ``3 x H x W`` image."""
    height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
    was_training = model.training
    model.eval()
    x = torch.zeros(1, 3, height, width, device=next(model.parameters()).device)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2


def profile(model: nn.Module, resolution: int | tuple[int, int]) -> ModelCost:
    """Multiply-adds at ``resolution`` and parameter count of ``model`` (and of its ``backbone`` where it has one)."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        return ModelCost(macs=count_macs(model, resolution), params=count_parameters(model))
    return ModelCost(
        macs=count_macs(model, resolution),
        params=count_parameters(model),
        backbone_macs=count_macs(backbone, resolution),
        backbone_params=count_parameters(backbone),
    )


LATENCY_RUNTIMES = ("torch", "onnxruntime", "openvino")
LATENCY_WARMUP, LATENCY_REPEATS = 5, 20


@torch.inference_mode()
def measure_latency_ms(
    model: nn.Module,
    *,
    resolution: int,
    batch_size: int = 1,
    warmup: int = LATENCY_WARMUP,
    repeats: int = LATENCY_REPEATS,
) -> float:
    """Median wall-clock milliseconds of one eval-mode forward pass on CPU."""
    model.eval()
    x = torch.randn(batch_size, 3, resolution, resolution)
    return 1e3 * median_seconds(lambda: model(x), warmup=warmup, repeats=repeats)


def onnxruntime_call(path: str | Path, x: np.ndarray, *, threads: int | None) -> tuple[Callable[[], object], Any]:
    """A call running the ONNX file on ``x`` in ONNX Runtime (``sessions.onnx_session``), and the session."""
    from mobivision.inference.sessions import onnx_session

    session = onnx_session(path, threads=threads)
    feed = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feed), session


def openvino_call(
    path: str | Path, x: np.ndarray, *, threads: int | None, precision: str | None = "f32"
) -> tuple[Callable[[], object], Any]:
    """A call running the ONNX file or IR on ``x`` in OpenVINO (``compile_openvino``: latency hint, ``precision``
    the inference precision, None OpenVINO's default for the CPU), and the compiled model."""
    from mobivision.inference.sessions import compile_openvino

    compiled = compile_openvino(path, threads=threads, precision=precision)
    request = compiled.create_infer_request()
    return lambda: request.infer({0: x}), compiled


def measure_exported_latency_ms(model: nn.Module, *, resolution: int, runtime: str, threads: int | None) -> float:
    """Median milliseconds of a batch-1 call of ``model`` exported to a temporary ONNX file and run by ``runtime``
    (``onnxruntime`` or ``openvino``, f32), with ``threads`` intra-op threads (None: the runtime's default)."""
    from mobivision.export import export_onnx

    calls = {"onnxruntime": onnxruntime_call, "openvino": openvino_call}
    x = torch.randn(1, 3, resolution, resolution).numpy()
    with tempfile.TemporaryDirectory(prefix="mobivision-latency-") as folder:
        path = export_onnx(model, Path(folder) / "model.onnx", input_size=(resolution,) * 2, output_names=["logits"])
        call, _ = calls[runtime](path, x, threads=threads)
        return 1e3 * median_seconds(call, warmup=LATENCY_WARMUP, repeats=LATENCY_REPEATS)
