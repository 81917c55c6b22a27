"""``mobivision/inference/sessions.py``: the one way an exported file is opened (ONNX Runtime, OpenVINO): its thread
option reaches the session, a missing or foreign file and an absent GPU are one clear error each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from mobivision.errors import ConfigError, WeightFileError
from mobivision.inference.sessions import compile_openvino, onnx_session, run_onnx, run_openvino

IMAGES = -np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4) + 40


def relu_onnx(path: Path) -> Path:
    """A one-node graph, ``images [B, 3, 4, 4]`` -> ``relu(images)``, ``relu(images) * 2``, written without torch."""
    shape = ["batch", 3, 4, 4]
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["images"], ["relu"]),
            helper.make_node("Add", ["relu", "relu"], ["twice"]),
        ],
        "relu",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in ("relu", "twice")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every ONNX Runtime this project supports
    onnx.save(model, str(path))
    return path


def test_an_onnx_session_takes_the_thread_count_and_runs_a_batch(tmp_path: Path) -> None:
    session = onnx_session(relu_onnx(tmp_path / "relu.onnx"), threads=2)
    options = session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (2, 1)
    assert session.get_providers() == ["CPUExecutionProvider"]
    relu, twice = run_onnx(session, IMAGES.astype(np.float64))  # any array-like: fed as float32
    np.testing.assert_array_equal(relu, np.maximum(IMAGES, 0))
    np.testing.assert_array_equal(twice, 2 * np.maximum(IMAGES, 0))


def test_a_missing_or_foreign_onnx_file_is_one_weight_file_error(tmp_path: Path) -> None:
    with pytest.raises(WeightFileError, match=r"^ONNX file not found: .*none\.onnx$"):
        onnx_session(tmp_path / "none.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(WeightFileError, match=r"bad\.onnx: cannot open as an ONNX model \(ONNX Runtime cannot load it"):
        onnx_session(tmp_path / "bad.onnx")


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this ONNX Runtime has CUDA")
def test_cuda_on_an_onnx_runtime_without_it_is_a_config_error_naming_the_provider(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^device 'cuda': this ONNX Runtime has no CUDAExecutionProvider \(it has "):
        onnx_session(relu_onnx(tmp_path / "relu.onnx"), device="cuda")


def test_an_unknown_device_is_refused_before_the_file_is_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^device 'gpu': unknown device; expected cpu, cuda or cuda:N"):
        onnx_session(tmp_path / "none.onnx", device="gpu")


def test_openvino_compiles_and_runs_the_same_file_with_copied_outputs(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    compiled = compile_openvino(relu_onnx(tmp_path / "relu.onnx"), threads=1)
    request = compiled.create_infer_request()
    first = run_openvino(request, IMAGES)
    run_openvino(request, -IMAGES)  # the request reuses its buffers: the first results are arrays of their own
    np.testing.assert_array_equal(first[0], np.maximum(IMAGES, 0))
    np.testing.assert_array_equal(first[1], 2 * np.maximum(IMAGES, 0))
    with pytest.raises(ValueError, match="precision must be one of"):
        compile_openvino(tmp_path / "relu.onnx", precision="int4")
