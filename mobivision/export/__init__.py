"""Deployment formats of mobivision models, with a parity check against PyTorch after every export.

- ONNX (``export_onnx``): dynamic batch, chosen opset, the pre-processing in the file's metadata;
  ``onnx_session`` opens one for its check and ``run_onnx`` runs it (``mobivision.inference.sessions``).
- INT8 ONNX (``quantize_int8``): static post-training quantization by ONNX Runtime (QDQ, per-channel weights).
- TorchScript (``export_torchscript``).
- Mobile (``mobivision.export.mobile``, optional packages): ExecuTorch ``.pte`` (XNNPACK) and LiteRT ``.tflite``.
- Detector graphs (``SSDRawOutputs``, ``SSDWithNMS``) and the geo graph (``GeoOutputs``).
- ``verify_parity`` runs an exported model and the PyTorch model on the same inputs and reports per output the
  largest difference against a stated tolerance (``ParityReport.raise_if_failed`` -> ``ExportError``).

A task declares its graphs (``ExportGraph``) and metadata through the task protocol; ``mobivision.commands.export``
writes and checks them (``tools/export.py`` is its command line).
"""

from mobivision.export.detection import SSDRawOutputs, SSDWithNMS
from mobivision.export.geo import GeoOutputs
from mobivision.export.graphs import ExportGraph, SingleOutput
from mobivision.export.onnx_model import export_onnx, onnx_session, read_metadata
from mobivision.export.parity import (
    FP32_ATOL,
    FP32_RTOL,
    OutputDiff,
    ParityReport,
    compare_detections,
    compare_outputs,
    torch_runner,
    verify_parity,
)
from mobivision.export.quantize import quantize_int8
from mobivision.export.torchscript import export_torchscript, load_torchscript, torchscript_runner
from mobivision.inference.sessions import run_onnx

__all__ = [
    "FP32_ATOL",
    "FP32_RTOL",
    "ExportGraph",
    "GeoOutputs",
    "OutputDiff",
    "ParityReport",
    "SSDRawOutputs",
    "SSDWithNMS",
    "SingleOutput",
    "compare_detections",
    "compare_outputs",
    "export_onnx",
    "export_torchscript",
    "load_torchscript",
    "onnx_session",
    "quantize_int8",
    "read_metadata",
    "run_onnx",
    "torch_runner",
    "torchscript_runner",
    "verify_parity",
]
