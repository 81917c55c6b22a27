"""``quantize_int8``: static QDQ with per-channel int8 weights, metadata kept, calibration required."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from mobivision.errors import ExportError
from mobivision.export import export_onnx, onnx_session, quantize_int8, read_metadata, run_onnx
from mobivision.export.quantize import INT8_OP_TYPES


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(8 * 16 * 16, 4),
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("quant")
    return export_onnx(model, folder / "m.onnx", input_size=(16, 16), output_names=["logits"], metadata={"a": "b"})


def _calibration(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(size=(4, 3, 16, 16)).astype(np.float32) for _ in range(count)]


@pytest.mark.parametrize("per_channel", [True, False])
def test_int8_model_is_qdq_with_int8_weights_and_close_to_float(tmp_path: Path, fp32: Path, per_channel: bool) -> None:
    path = quantize_int8(fp32, tmp_path / "m.int8.onnx", _calibration(3), per_channel=per_channel)
    graph = onnx.load(str(path)).graph
    ops = [n.op_type for n in graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert "Relu" not in ops  # folded into the quantization ranges (a float Relu between DQ and Q is 2x slower)
    initializers = {i.name: i for i in graph.initializer}
    weights = [i for i in initializers.values() if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 4]
    assert len(weights) == 2  # both convolutions' weights stored as int8
    conv_scales = [
        numpy_helper.to_array(initializers[n.input[1]])
        for n in graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in {w.name for w in weights}
    ]
    assert [s.size for s in conv_scales] == ([8, 8] if per_channel else [1, 1])
    metadata = read_metadata(path)
    assert metadata["a"] == "b" and metadata["calibration_images"] == "12"
    assert ("per-channel" if per_channel else "per-tensor") in metadata["quantization"]
    x = _calibration(1)[0]
    (quantized,), (reference,) = run_onnx(onnx_session(path), x), run_onnx(onnx_session(fp32), x)
    assert np.abs(quantized - reference).max() < 0.1 * np.abs(reference).max()
    assert (quantized.argmax(1) == reference.argmax(1)).mean() >= 0.75


@pytest.mark.parametrize("sizes", [[4, 4, 3], [32, 32]])
def test_calibration_batches_of_any_sizes_all_count(tmp_path: Path, fp32: Path, sizes: list[int]) -> None:
    """A short last batch, and a whole number of 32-image chunks (ORT's chunked calibration loses those)."""
    rng = np.random.default_rng(1)
    batches = [rng.normal(size=(n, 3, 16, 16)).astype(np.float32) for n in sizes]
    path = quantize_int8(fp32, tmp_path / "q.onnx", iter(batches))
    assert read_metadata(path)["calibration_images"] == str(sum(sizes))


def test_without_calibration_images_is_an_export_error(tmp_path: Path, fp32: Path) -> None:
    with pytest.raises(ExportError, match="needs calibration images"):
        quantize_int8(fp32, tmp_path / "x.onnx", [])
    with pytest.raises(ExportError, match="not found"):
        quantize_int8(tmp_path / "missing.onnx", tmp_path / "x.onnx", _calibration(1))
    with pytest.raises(ExportError, match="calibrate_method"):
        quantize_int8(fp32, tmp_path / "x.onnx", _calibration(1), calibrate_method="mse")


class ScaledSoftmax(nn.Module):
    """A convolution, then probability arithmetic with a scalar constant (as the geo head's cell probabilities)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.conv(x).mean((2, 3)), 1) * 0.5


def test_only_operators_with_integer_kernels_are_quantized(tmp_path: Path) -> None:
    """Quantizing the scalar constant of a ``Mul`` broke OpenVINO < 2024 (``INT8_OP_TYPES``' comment): the
    probability arithmetic (Softmax, Mul) reads float tensors, not DequantizeLinear outputs, and no scalar constant
    is stored quantized."""
    torch.manual_seed(0)
    fp32 = export_onnx(ScaledSoftmax(), tmp_path / "s.onnx", input_size=(16, 16), output_names=["p"])
    path = quantize_int8(fp32, tmp_path / "s.int8.onnx", _calibration(2))
    graph = onnx.load(str(path)).graph
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    fed = {n.op_type for n in graph.node if dequantized & set(n.input)}
    assert "Conv" in fed and not fed & {"Softmax", "Mul"}, fed
    assert {"Softmax", "Mul"} <= {n.op_type for n in graph.node} and "Mul" not in INT8_OP_TYPES
    scalars = {i.name for i in graph.initializer if not i.dims}
    assert not [n.name for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in scalars]
    x = _calibration(1)[0]
    np.testing.assert_allclose(run_onnx(onnx_session(path), x)[0].sum(1), 0.5, rtol=1e-6)  # float softmax * 0.5
