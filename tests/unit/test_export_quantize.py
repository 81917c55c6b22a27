"""``quantize_int8``: static QDQ with per-channel int8 weights, metadata kept, calibration required; 7-bit weights by
default so that x86 CPUs without VNNI compute the same integers (checked on an emulated AVX2-only CPU where
``qemu-x86_64`` is installed: ``.ci/run`` installs Debian's ``qemu-user``)."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import int8_weights
from onnx import numpy_helper
from torch import nn

from mobivision.errors import ExportError
from mobivision.export import export_onnx, onnx_session, openvino_ir, quantize_int8, read_metadata, run_onnx
from mobivision.export.quantize import INT8_OP_TYPES, INT8_TARGETS
from mobivision.machine import has_int8_dot_product


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
    # Three quantized layers, each off by up to half a step of its 8-bit activation range and 7-bit weights: a few
    # percent of the output's range (measured 1.7% per channel, the same on AVX-512 VNNI and on an emulated AVX2 CPU;
    # 8-bit weights saturating on AVX2 gave 12%).
    assert np.abs(quantized - reference).max() < 0.1 * np.abs(reference).max()
    assert (quantized.argmax(1) == reference.argmax(1)).mean() >= 0.75


# The largest u8 x s8 pair sum that x86 CPUs without VNNI keep exact (vpmaddubsw adds two products in int16).
INT16_MAX = 32767


@pytest.mark.parametrize("target", list(INT8_TARGETS))
def test_the_target_sets_the_weights_range_so_that_avx2_pair_sums_fit_in_16_bits(
    tmp_path: Path, fp32: Path, target: str
) -> None:
    """``any`` (the default): every weight within [-64, 64], so a pair of u8 x s8 products is at most
    2 x 255 x 64 = 32,640 and never saturates; ``vnni``: full 8-bit weights (each channel's largest is 127)."""
    path = quantize_int8(fp32, tmp_path / f"{target}.onnx", _calibration(2), target=target)
    largest = [int(np.abs(w.astype(np.int32)).max()) for w in int8_weights(path)]
    assert len(largest) == 3  # two convolutions and the linear layer
    if target == "any":
        assert max(largest) <= 64 and 2 * 255 * max(largest) <= INT16_MAX
    else:
        assert largest == [127, 127, 127] and INT16_MAX < 2 * 255 * 127
    assert read_metadata(path)["int8_target"] == f"{target}: {INT8_TARGETS[target]}"
    default = quantize_int8(fp32, tmp_path / "default.onnx", _calibration(2))
    assert read_metadata(default)["int8_target"].startswith("any: ")


def test_an_unknown_target_is_an_export_error_naming_the_choices(tmp_path: Path, fp32: Path) -> None:
    with pytest.raises(ExportError, match=r"INT8 target must be one of any, vnni, got 'avx2'"):
        quantize_int8(fp32, tmp_path / "x.onnx", _calibration(1), target="avx2")
    assert not (tmp_path / "x.onnx").exists()


# Runs one ONNX file in ONNX Runtime and prints its outputs as JSON: inside qemu-x86_64, the CPU it emulates picks
# ORT's kernels (its CPUID decides), so the integer arithmetic is that CPU's.
RUN_ONNX = """
import json, sys
import numpy as np, onnxruntime as ort
x = np.load(sys.argv[2])
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
print(json.dumps(session.run(None, {session.get_inputs()[0].name: x})[0].tolist()))
"""
# AMD's first EPYC (Zen 1): AVX2 and FMA, no AVX-512, no VNNI: the CPU on which the 8-bit file saturated. The same
# CPU without AVX2 runs ORT's SSE4.1 kernels, which widen both operands to 16 bits and add products in 32 (pmaddwd):
# exact for any weights, whatever the host, so it is the reference the AVX2 arithmetic is compared with.
AVX2_ONLY_CPU = "EPYC-v1"
EXACT_CPU = "EPYC-v1,-avx2,-fma"


def _run_emulated(cpu: str, path: Path, x_path: Path, script: Path) -> np.ndarray:
    done = subprocess.run(
        ["qemu-x86_64", "-cpu", cpu, sys.executable, str(script), str(path), str(x_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return np.asarray(json.loads(done.stdout), dtype=np.float32)


@pytest.mark.skipif(
    shutil.which("qemu-x86_64") is None or platform.machine() != "x86_64",
    reason="needs an x86-64 host and qemu-x86_64 (Debian's qemu-user) to emulate an AVX2-only CPU",
)
def test_on_an_avx2_cpu_without_vnni_the_default_file_computes_the_same_integers(tmp_path: Path, fp32: Path) -> None:
    """Each file run by ONNX Runtime on an emulated Zen 1 (AVX2, no VNNI) and on the same CPU without AVX2 (exact
    16-bit products). The default (``any``) gives the same outputs on both up to float32 rounding of the
    dequantization (the integers are equal); ``vnni``'s 8-bit weights saturate on AVX2, moving outputs by ~12% of
    their range (the failure this default fixes). Natively the host's own kernels agree with the exact ones too."""
    x = _calibration(1)[0]
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "run.py").write_text(RUN_ONNX)
    (reference,) = run_onnx(onnx_session(fp32), x)
    scale = np.abs(reference).max()
    moved = {}
    for target in INT8_TARGETS:
        path = quantize_int8(fp32, tmp_path / f"{target}.onnx", _calibration(3), target=target)
        avx2 = _run_emulated(AVX2_ONLY_CPU, path, tmp_path / "x.npy", tmp_path / "run.py")
        exact = _run_emulated(EXACT_CPU, path, tmp_path / "x.npy", tmp_path / "run.py")
        moved[target] = np.abs(avx2 - exact).max() / scale
        print(f"{target}: |AVX2 - exact| / range {moved[target]:.2e}, |AVX2 - fp32| / range "
              f"{np.abs(avx2 - reference).max() / scale:.2e}")  # fmt: skip
        if target == "any":
            (native,) = run_onnx(onnx_session(path), x)
            np.testing.assert_allclose(native, exact, rtol=0, atol=1e-5 * scale)
    # The integers are equal; the float32 dequantization and requantization may differ by the order of their
    # operations, a few ulps (2^-23 ~ 1.2e-7) of each output: measured 0 to 1e-7
    assert moved["any"] < 1e-5
    assert moved["vnni"] > 1e-2  # saturated pair sums: measured 0.118 of the range


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


# Runs OpenVINO IRs on the CPU plugin in f32 (outside the INT8 kernels), as ``openvino_ir.openvino_runner`` compiles
# them, and prints their outputs as JSON; started with ONEDNN_MAX_CPU_ISA=AVX2, OpenVINO's oneDNN kernels are those
# of an AVX2 CPU without VNNI, on any x86 host. OpenVINO alone: no torch import in each of the two processes.
RUN_IRS = """
import json, sys
import numpy as np, openvino as ov
x, core = np.load(sys.argv[1]), ov.Core()
compiled = [core.compile_model(p, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}) for p in sys.argv[2:]]
print(json.dumps([np.asarray(c(x)[0]).tolist() for c in compiled]))
"""


def _run_irs(paths: list[Path], x_path: Path, script: Path, **env: str) -> list[np.ndarray]:
    done = subprocess.run(
        [sys.executable, str(script), str(x_path), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in {**os.environ, "OMP_NUM_THREADS": "1", **env}.items() if v},  # "": left unset
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [np.asarray(out, dtype=np.float32) for out in json.loads(done.stdout)]


@pytest.mark.skipif(
    not openvino_ir.available(quantization=True) or platform.machine() != "x86_64",
    reason="needs an x86-64 host with the openvino extra (openvino and nncf)",
)
def test_openvino_int8_for_any_cpu_is_unchanged_by_avx2_kernels_and_8_bit_weights_saturate_there(
    tmp_path: Path, fp32: Path
) -> None:
    """NNCF's IR with the overflow fix (``any``) gives the same outputs with the host's kernels and with oneDNN
    capped at AVX2; the full 8-bit weights (``vnni``) moved outputs there (measured 2.8% -> 10.0% of the range on
    an AVX-512 VNNI host; on an AVX2-only host both runs are AVX2, so only the first assertion is checked)."""
    x = _calibration(1)[0]
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "run.py").write_text(RUN_IRS)
    (reference,) = run_onnx(onnx_session(fp32), x)
    scale = np.abs(reference).max()
    paths = [
        openvino_ir.quantize_openvino(fp32, tmp_path / f"{target}.xml", _calibration(3), target=target)
        for target in INT8_TARGETS
    ]
    host = _run_irs(paths, tmp_path / "x.npy", tmp_path / "run.py", ONEDNN_MAX_CPU_ISA="")  # the CPU's own kernels
    avx2 = _run_irs(paths, tmp_path / "x.npy", tmp_path / "run.py", ONEDNN_MAX_CPU_ISA="AVX2")
    moved = {t: np.abs(a - h).max() / scale for t, a, h in zip(INT8_TARGETS, avx2, host, strict=True)}
    print({t: f"{m:.2e}" for t, m in moved.items()})
    assert np.abs(avx2[0] - reference).max() / scale < 0.1  # measured 3.4%, as the host's
    assert moved["any"] < 1e-5  # the same integers; float32 rounding at most (measured 0)
    if has_int8_dot_product():
        assert moved["vnni"] > 1e-2
