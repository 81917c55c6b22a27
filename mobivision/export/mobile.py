"""Mobile runtime formats: ExecuTorch ``.pte`` (XNNPACK) and LiteRT ``.tflite``; both optional dependencies.

- ExecuTorch (``pip install executorch``; 1.5.1 tested, it leaves torch 2.14 alone): ``torch.export`` with a
  dynamic batch axis, lowered to the XNNPACK delegate (``to_edge_transform_and_lower``), saved as ``.pte`` and
  run here with ExecuTorch's Python runtime (``executorch.runtime``), the same runtime as on a phone.
- LiteRT (``pip install litert-torch ai-edge-litert``; 0.10.0 / 2.3.0 tested, they leave torch alone but pull
  in JAX and transformers): ``litert_torch.convert`` at batch 1, saved as ``.tflite`` and run with
  ``ai_edge_litert``'s interpreter (XNNPACK delegate on CPU). A dynamic batch axis does not convert: the JAX
  bridge of litert-torch 0.10 needs concrete shapes for ``view`` ("Shapes must be 1D sequences of concrete values
  of integer type"); the runner here feeds a batch one image at a time.

Both take the float graph (``export_pte`` / ``export_tflite``) and are checked for parity like every format.
"""

from __future__ import annotations

import importlib.util
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mobivision.errors import ExportError

MAX_BATCH = 64
INSTALL = {
    "pte": "pip install executorch  (ExecuTorch with XNNPACK, tested 1.5.1)",
    "tflite": "pip install litert-torch ai-edge-litert  (LiteRT, tested 0.10.0 / 2.3.0)",
}


def available(fmt: str) -> bool:
    """Whether the packages of a mobile format (``pte`` or ``tflite``) are installed."""
    modules = {"pte": ("executorch",), "tflite": ("litert_torch", "ai_edge_litert")}[fmt]
    return all(importlib.util.find_spec(m) is not None for m in modules)


def _require(fmt: str) -> None:
    if not available(fmt):
        raise ExportError(f"the {fmt} format needs optional packages: {INSTALL[fmt]}")


def _example(input_size: tuple[int, int]) -> torch.Tensor:
    height, width = (int(v) for v in input_size)
    return torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(0))


def warm_up(model: nn.Module, example: torch.Tensor) -> None:
    """One eager forward before tracing: caches filled on first use (a detector's anchors per input size) then
    hold real tensors and enter the graph as constants. Filled during ``torch.export`` instead, they would hold
    fake tensors (breaking later eager calls) and the anchor arithmetic (float64) would enter the graph."""
    with torch.no_grad():
        model.eval()(example)


def export_pte(model: nn.Module, path: str | Path, *, input_size: tuple[int, int], dynamic_batch: bool = True) -> Path:
    """ExecuTorch program lowered to XNNPACK, batch axis dynamic up to ``MAX_BATCH`` (or fixed at 1)."""
    _require("pte")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = _example(input_size) if dynamic_batch else _example(input_size)[:1]
    shapes = ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},) if dynamic_batch else None
    try:
        warm_up(model, example)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.export.export(model.eval(), (example,), dynamic_shapes=shapes)
            lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
        path.write_bytes(lowered.buffer)
    except Exception as exc:
        raise ExportError(f"ExecuTorch export failed: {type(exc).__name__}: {exc}") from exc
    return path


def pte_runner(path: str | Path):
    """A ``.pte`` file's ``forward`` under ExecuTorch's runtime, as a function of a numpy batch."""
    _require("pte")
    from executorch.runtime import Runtime

    try:
        method = Runtime.get().load_program(str(path)).load_method("forward")
    except Exception as exc:
        raise ExportError(f"ExecuTorch cannot load {path}: {type(exc).__name__}: {exc}") from exc

    def run(images: np.ndarray) -> list[np.ndarray]:
        outputs = method.execute([torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))])
        return [o.numpy() if isinstance(o, torch.Tensor) else np.asarray(o) for o in outputs]

    return run


def export_tflite(
    model: nn.Module, path: str | Path, *, input_size: tuple[int, int], dynamic_batch: bool = False
) -> Path:
    """LiteRT flatbuffer converted by ``litert_torch`` at batch 1 (``dynamic_batch`` fails to convert with
    litert-torch 0.10, see the module docstring)."""
    _require("tflite")
    import litert_torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = _example(input_size) if dynamic_batch else _example(input_size)[:1]
    shapes = ({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},) if dynamic_batch else None
    try:
        warm_up(model, example)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            converted = litert_torch.convert(model.eval(), (example,), dynamic_shapes=shapes)
            converted.export(str(path))
    except Exception as exc:
        raise ExportError(f"LiteRT export failed: {type(exc).__name__}: {exc}") from exc
    return path


def _output_order(name: str) -> tuple[int, str]:
    """LiteRT names a converted model's outputs ``output_0``, ``output_1``, ...: numeric order, not text order."""
    match = re.fullmatch(r"output_(\d+)", name)
    return (int(match.group(1)), "") if match else (1 << 30, name)


def tflite_runner(path: str | Path, *, threads: int | None = None):
    """A ``.tflite`` file under LiteRT's interpreter, as a function of a numpy batch (outputs in the order of the
    model's signature)."""
    _require("tflite")
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter: Any = Interpreter(model_path=str(path), num_threads=threads)
    except Exception as exc:
        raise ExportError(f"LiteRT cannot load {path}: {type(exc).__name__}: {exc}") from exc
    runner = interpreter.get_signature_runner()
    (input_name,) = runner.get_input_details()
    output_names = sorted(runner.get_output_details(), key=_output_order)

    def run_one(images: np.ndarray) -> list[np.ndarray]:
        outputs = runner(**{input_name: np.ascontiguousarray(images, dtype=np.float32)})
        return [outputs[name] for name in output_names]

    def run(images: np.ndarray) -> list[np.ndarray]:
        """Image by image when the graph's batch is fixed at 1: batched outputs (leading 1) concatenated, constant
        outputs (a detector's anchors) once."""
        if int(runner.get_input_details()[input_name]["shape"][0]) != 1:
            return run_one(images)
        parts = [run_one(images[i : i + 1]) for i in range(len(images))]
        return [
            np.concatenate([p[k] for p in parts]) if parts[0][k].ndim and parts[0][k].shape[0] == 1 else parts[0][k]
            for k in range(len(output_names))
        ]

    return run
