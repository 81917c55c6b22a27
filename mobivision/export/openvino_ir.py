"""OpenVINO IR export (``model.xml`` + ``model.bin``) and INT8 by NNCF post-training quantization.

- ``export_openvino``: the float ONNX file read by OpenVINO's ONNX front end and saved as IR with fp32
  weights, or fp16 weights (``fp16_weights``; OpenVINO decompresses them to f32 when it compiles, so the arithmetic
  stays f32 and only the weights are rounded). The ONNX file's metadata are copied into the IR's runtime info
  under ``mobivision`` (``openvino_metadata`` of ``mobivision.inference.runtimes`` reads them back), so a runtime
  finds the pre-processing and the outputs' meanings in the IR as in the ONNX file.
- ``quantize_openvino``: ``nncf.quantize`` of the converted model on the task's calibration images (the same
  images as the ONNX INT8), saved as IR. NNCF rather than loading ONNX Runtime's QDQ file into OpenVINO: NNCF
  places the fake-quantize nodes where OpenVINO's CPU plugin has INT8 kernels (the convolutions, with
  per-channel symmetric weights, the ``PERFORMANCE`` preset), and it is Intel's supported path; the QDQ ONNX
  file also runs in OpenVINO (the export checks it) but is laid out for ONNX Runtime's kernels.

Both need the optional ``openvino`` extra (``pip install 'mobivision[openvino]'``: openvino and nncf). Running
an IR (``mobivision.inference.sessions.compile_openvino``) needs openvino only, not torch.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mobivision.errors import ExportError
from mobivision.export.onnx_model import read_metadata
from mobivision.export.quantize import INT8_TARGETS, check_int8_target, single_images
from mobivision.inference.runtimes import METADATA_SECTION
from mobivision.inference.sessions import compile_openvino, run_openvino

INSTALL = "pip install 'mobivision[openvino]'  (openvino and nncf)"


def available(*, quantization: bool = False) -> bool:
    """Whether OpenVINO (and, with ``quantization``, NNCF) is installed."""
    modules = ("openvino", "nncf") if quantization else ("openvino",)
    return all(importlib.util.find_spec(m) is not None for m in modules)


def require(*, quantization: bool = False) -> None:
    if not available(quantization=quantization):
        raise ExportError(f"OpenVINO formats need optional packages: {INSTALL}")


def bin_file(xml_path: str | Path) -> Path:
    """The weights file of an IR (``model.xml`` -> ``model.bin``)."""
    return Path(xml_path).with_suffix(".bin")


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[None]:
    """NNCF without its noise: the progress bars it prints (the caller reports the result) and the warning PyTorch
    logs when NNCF imports ``torch.utils.cpp_extension`` to detect the model's framework on a machine without CUDA
    ("No CUDA runtime is found"; the OpenVINO path never builds a torch extension)."""
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


def _save(model: Any, xml_path: Path, metadata: dict[str, str], *, fp16_weights: bool) -> Path:
    import openvino as ov

    for key, value in metadata.items():
        model.set_rt_info(value, [METADATA_SECTION, key])
    xml_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ov.save_model(model, str(xml_path), compress_to_fp16=fp16_weights)
    except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
        raise ExportError(f"OpenVINO cannot write {xml_path}: {type(exc).__name__}: {exc}") from exc
    return xml_path


def _convert(onnx_path: Path) -> Any:
    import onnx
    import openvino as ov

    if not onnx_path.is_file():
        raise ExportError(f"float ONNX model not found: {onnx_path}")
    try:  # read_model rather than convert_model: the latter splits its path at commas (several framework files)
        model = ov.Core().read_model(str(onnx_path))
    except Exception as exc:
        raise ExportError(f"OpenVINO cannot convert {onnx_path}: {type(exc).__name__}: {exc}") from exc
    # An output tensor can carry the names of the ONNX nodes folded into it ("/head/Gemm_output_0" beside
    # "logits"); the IR keeps only the ONNX file's output name, so a runtime finds each output by it.
    onnx_names = {output.name for output in onnx.load(str(onnx_path), load_external_data=False).graph.output}
    for output in model.outputs:
        output.get_tensor().set_names(output.get_names() & onnx_names)
    return model


def export_openvino(onnx_path: str | Path, xml_path: str | Path, *, fp16_weights: bool = False) -> Path:
    """Convert the float ONNX file to OpenVINO IR at ``xml_path`` (and its ``.bin``), metadata copied.

    Raises:
        ExportError: OpenVINO is missing, or cannot convert or write the model.
    """
    require()
    onnx_path = Path(onnx_path)
    model = _convert(onnx_path)
    weights = "fp16 (decompressed to f32 when compiled)" if fp16_weights else "fp32"
    metadata = read_metadata(onnx_path) | {"openvino_weights": weights}
    return _save(model, Path(xml_path), metadata, fp16_weights=fp16_weights)


def quantize_openvino(
    onnx_path: str | Path, xml_path: str | Path, calibration: Iterable[np.ndarray], *, target: str = "any"
) -> Path:
    """INT8 IR of the float ONNX file by ``nncf.quantize`` on ``calibration`` (``[B, 3, H, W]`` or ``[3, H, W]``
    pre-processed float arrays; every image is one calibration sample). ``target`` (``quantize.INT8_TARGETS``):
    ``any`` halves every weight's range (NNCF's ``OverflowFix.ENABLE``: no 16-bit saturation on x86 without
    VNNI), ``vnni`` keeps the full 8 bits (``OverflowFix.DISABLE``).

    Raises:
        ExportError: OpenVINO or NNCF is missing, there are no calibration images, an unknown target, or NNCF failed.
    """
    check_int8_target(target)
    require(quantization=True)
    with _quiet_nncf():
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    overflow_fix = OverflowFix.ENABLE if target == "any" else OverflowFix.DISABLE
    onnx_path = Path(onnx_path)
    model = _convert(onnx_path)
    images = [np.ascontiguousarray(image[None]) for image in single_images(calibration)]
    if not images:
        raise ExportError("OpenVINO INT8 quantization needs calibration images; none were given")
    try:
        with _quiet_nncf():
            quantized = nncf.quantize(
                model,
                nncf.Dataset(images),
                preset=nncf.QuantizationPreset.PERFORMANCE,
                subset_size=len(images),
                advanced_parameters=AdvancedQuantizationParameters(overflow_fix=overflow_fix),
            )
    except Exception as exc:
        raise ExportError(f"NNCF quantization of {onnx_path} failed: {type(exc).__name__}: {exc}") from exc
    metadata = read_metadata(onnx_path) | {
        "quantization": f"static INT8 by nncf {nncf.__version__} quantize (PERFORMANCE preset: symmetric "
        "per-channel weights, symmetric activations), NNCF's default range estimation, "
        f"overflow fix {overflow_fix.value}",
        "int8_target": f"{target}: {INT8_TARGETS[target]}",
        "calibration_images": str(len(images)),
    }
    return _save(quantized, Path(xml_path), metadata, fp16_weights=False)


def openvino_runner(xml_path: str | Path, *, threads: int | None = None) -> Any:
    """The IR compiled for f32 arithmetic (``sessions.compile_openvino``), as a function of a numpy batch returning
    its outputs in graph order (``sessions.run_openvino``)."""
    require()
    try:
        compiled = compile_openvino(xml_path, threads=threads)
    except Exception as exc:
        raise ExportError(f"OpenVINO cannot compile {xml_path}: {type(exc).__name__}: {exc}") from exc
    return functools.partial(run_openvino, compiled.create_infer_request())
