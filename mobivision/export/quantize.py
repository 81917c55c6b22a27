"""INT8 ONNX by static post-training quantization (ONNX Runtime's ``quantize_static``, QDQ format).

Weights are quantized to int8 per output channel (symmetric), activations to int8 with ranges measured on
calibration images (min/max by default); only the operators of ``INT8_OP_TYPES`` are quantized. The weights' range
depends on the CPUs the file is for (``INT8_TARGETS``): 7 bits by default, exact on every CPU. The QDQ format keeps
the float graph and inserts QuantizeLinear/DequantizeLinear pairs, which ONNX Runtime (>= 1.11 for per-channel QDQ
on CPU) fuses into integer kernels; other runtimes that read QDQ (OpenVINO, TensorRT, QNN, XNNPACK through ORT) can
use the same file (the export checks OpenVINO when it is installed).
Before quantizing, the float model goes through ORT's ``quant_pre_process`` (shape inference and graph
optimisation), as ORT's documentation recommends.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mobivision.errors import ExportError, MobivisionError
from mobivision.export.onnx_model import read_metadata, set_metadata

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
# The operators quantized: those with integer kernels that carry a MobileNet's cost (convolutions, fully connected
# layers, residual additions, pooling), the activations ONNX Runtime folds into the quantization ranges (Relu, Clip:
# left out, each stays a float operator between DequantizeLinear and QuantizeLinear, measured 2.4x slower on
# MobileNetV1-1.0-224) and the data movement between them (a detector head's Reshape, Transpose, Concat). ONNX
# Runtime's default also wraps every other operator it knows (Mul, Softmax, Where...), constants included: the geo
# head's probability arithmetic then holds an int8 scalar constant times a float scale, which OpenVINO before 2024
# cannot fold ("Arguments do not have the same element type", OpenVINO 2023.3 on the geo and multi-task files), and
# quantizing probabilities costs accuracy for no speed.
INT8_OP_TYPES = (
    *("Conv", "Gemm", "MatMul", "Add", "GlobalAveragePool"),
    *("Relu", "Clip"),
    *("Flatten", "Reshape", "Transpose", "Concat"),
)


# The CPUs an INT8 file is written for. ONNX Runtime on x86 runs u8 activations x s8 weights; without VNNI (AVX2,
# AVX-512 without VNNI: most deployed x86 CPUs) its kernels (vpmaddubsw) add each pair of products in 16 bits, which
# saturates at 32,767: with 8-bit weights a pair reaches 2 x 255 x 127 = 64,770, with 7-bit weights ([-64, 64], ORT's
# ``reduce_range``) at most 2 x 255 x 64 = 32,640, so no sum is ever clipped. VNNI and AMX (and ARM's dot products)
# accumulate in 32 bits and are exact either way. NNCF's ``OverflowFix`` is the same choice for OpenVINO's INT8 IR.
# ``any`` is the default: exact everywhere, for at most a point of the trained demos' metrics and, in ONNX Runtime on
# a VNNI CPU, 6-15% of INT8 latency (the README's Deploy section has the figures).
INT8_TARGETS = {
    "any": "7-bit weights (reduce_range): exact on every CPU, x86 without VNNI (AVX2) included",
    "vnni": "8-bit weights: for CPUs whose int8 dot products add in 32 bits (x86 with VNNI or AMX, ARM); "
    "saturates on x86 CPUs without VNNI",
}


def int8_target_weights(target: str) -> str:
    """The weights a target writes, e.g. ``7-bit weights (reduce_range)``: the part of its description before ':'."""
    return INT8_TARGETS[target].split(":")[0]


def check_int8_target(target: str) -> str:
    """``target`` if it is one of ``INT8_TARGETS``, else an ``ExportError`` naming the choices."""
    if target not in INT8_TARGETS:
        raise ExportError(f"INT8 target must be one of {', '.join(INT8_TARGETS)}, got {target!r}")
    return target


def single_images(batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """Each ``[3, H, W]`` image of ``[B, 3, H, W]`` (or ``[3, H, W]``) float arrays, as float32."""
    for batch in batches:
        batch = np.asarray(batch, dtype=np.float32)
        yield from batch[None] if batch.ndim == 3 else batch


class _Reader:
    """``CalibrationDataReader`` over an iterable of ``[B, 3, H, W]`` (or ``[3, H, W]``) float arrays, one image
    per step: ORT's calibrators stack the collected activations, which fails for batches of unequal sizes (a
    short last batch), and min/max or histograms do not depend on the batching."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self.input_name = input_name
        self._images = single_images(batches)
        self.count = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._images, None)
        if image is None:
            return None
        self.count += 1
        return {self.input_name: np.ascontiguousarray(image[None])}

    def rewind(self) -> None:  # quantize_static reads the data once per calibration pass
        pass


def quantize_int8(
    fp32_path: str | Path,
    int8_path: str | Path,
    calibration: Iterable[np.ndarray],
    *,
    per_channel: bool = True,
    calibrate_method: str = "minmax",
    preprocess: bool = True,
    target: str = "any",
) -> Path:
    """Quantize the float ONNX model at ``fp32_path`` into ``int8_path`` (QDQ, int8 weights and activations).

    Args:
        calibration: Pre-processed images, ``[B, 3, H, W]`` or ``[3, H, W]`` float32 arrays, as the model takes
            them (normalised); each is one calibration step.
        per_channel: One weight scale per output channel (else per tensor).
        calibrate_method: How activation ranges are set: ``minmax`` (ORT reduces each activation to its min and
            max per image), ``entropy`` or ``percentile`` (these keep every calibration image's full activations
            in memory for their histograms: gigabytes for 200 images of a MobileNet at 224 px).
        preprocess: Run ORT's ``quant_pre_process`` on the float model first.
        target: The CPUs the file is for, one of ``INT8_TARGETS``: ``any`` (7-bit weights) or ``vnni``.

    The float file's metadata are copied, plus ``quantization`` (a description), ``int8_target`` and
    ``calibration_images``.

    Raises:
        ExportError: No calibration data, an unknown target, or ONNX Runtime's quantizer failed.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    check_int8_target(target)
    if calibrate_method not in CALIBRATION_METHODS:
        raise ExportError(f"calibrate_method must be one of {CALIBRATION_METHODS}, got {calibrate_method!r}")
    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    if not fp32_path.is_file():
        raise ExportError(f"float ONNX model not found: {fp32_path}")
    metadata = read_metadata(fp32_path)
    input_name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name
    reader = _Reader(input_name, calibration)
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[calibrate_method]
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mobivision-quant-") as tmp:
        source: Any = fp32_path
        try:
            if preprocess:
                source = Path(tmp) / "preprocessed.onnx"
                quant_pre_process(str(fp32_path), str(source), skip_symbolic_shape=False)
            quantize_static(
                str(source),
                str(int8_path),
                reader,
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=method,
                reduce_range=target == "any",
                op_types_to_quantize=list(INT8_OP_TYPES),
                # Not CalibMaxIntermediateOutputs: ORT 1.32's min/max calibrator then drops the ranges collected
                # before each flush (only the last partial chunk counts; a whole number of chunks raises "No data
                # is collected"). Min/max keeps two numbers per tensor and image, so memory is no issue.
                extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
                calibration_providers=["CPUExecutionProvider"],
            )
        except MobivisionError:
            raise  # the calibration images' own error (unreadable data)
        except Exception as exc:
            if reader.count == 0:
                raise ExportError("INT8 quantization needs calibration images; none were given") from exc
            raise ExportError(f"INT8 quantization of {fp32_path} failed: {type(exc).__name__}: {exc}") from exc
    if reader.count == 0:
        raise ExportError("INT8 quantization needs calibration images; none were given")
    proto = onnx.load(str(int8_path))
    weights = "per-channel" if per_channel else "per-tensor"
    set_metadata(
        proto,
        {
            **metadata,
            "quantization": f"static INT8 QDQ (onnxruntime quantize_static) of {', '.join(INT8_OP_TYPES)}: "
            f"{int8_target_weights(target)} {weights} symmetric, int8 activations asymmetric, "
            f"{calibrate_method} calibration",
            "int8_target": f"{target}: {INT8_TARGETS[target]}",
            "calibration_images": str(reader.count),
        },
    )
    onnx.save(proto, str(int8_path))
    return int8_path
