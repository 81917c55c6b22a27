"""Use a trained model: ``predictor = mobivision.load("best.ckpt" or "model.onnx"); result = predictor("photo.jpg")``.

A checkpoint runs on PyTorch (its export graph), an exported ``.onnx`` (fp32 or INT8) on ONNX Runtime with numpy,
Pillow and OpenCV only: loading and predicting from an ONNX file imports neither torch nor Lightning. The same
images give the same results either way (pre-processing and decoding are shared). ARCHITECTURE.md, "Inference".
"""

from __future__ import annotations

from pathlib import Path

from mobivision.errors import WeightFileError
from mobivision.inference.predictor import Predictor
from mobivision.inference.results import Attributes, Classes, Detections, Location, Result, Values

__all__ = ["Attributes", "Classes", "Detections", "Location", "Predictor", "Result", "Values", "load"]


def load(path: str | Path, *, device: str = "cpu", batch_size: int = 16, threads: int | None = None) -> Predictor:
    """A predictor for a task checkpoint (``.ckpt``) or an exported ``.onnx``; ``device``: ``cpu``, ``cuda``,
    ``cuda:1``...; ``threads``: ONNX Runtime's intra-op threads (default: its own choice)."""
    path = Path(path)
    if not path.is_file():
        raise WeightFileError(f"model file not found: {path}")
    if path.suffix == ".onnx":
        from mobivision.inference.runtimes import OnnxRuntime

        return Predictor(OnnxRuntime(path, device=device, threads=threads), batch_size=batch_size)
    from mobivision.inference.runtimes import TorchRuntime

    return Predictor(TorchRuntime(path, device=device), batch_size=batch_size)
