"""``export_onnx`` / ``onnx_session`` / ``export_torchscript``: dynamic batch, opset, metadata, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from mobivision import create_model
from mobivision.errors import ExportError, MobivisionError
from mobivision.export import (
    export_onnx,
    export_torchscript,
    onnx_session,
    read_metadata,
    run_onnx,
    torch_runner,
    torchscript_runner,
)


class TwoOutputs(nn.Module):
    """A batched output and a constant one (like a detector's anchors)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.register_buffer("table", torch.arange(12.0).reshape(6, 2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.conv(x).mean((2, 3)), self.table


@pytest.fixture(scope="module")
def classifier(calibrate_bn) -> nn.Module:
    torch.manual_seed(0)
    return calibrate_bn(create_model("mobilenet_v1", num_classes=5, width_mult=0.25), torch.randn(8, 3, 32, 32))


@pytest.mark.parametrize("opset", [13, 17])
def test_onnx_has_a_dynamic_batch_the_opset_and_the_metadata(tmp_path: Path, classifier: nn.Module, opset: int) -> None:
    path = export_onnx(
        classifier,
        tmp_path / "m.onnx",
        input_size=(32, 32),
        opset=opset,
        output_names=["logits"],
        metadata={"mean": [0.5, 0.5, 0.5], "layout": "NCHW"},
        doc_string="tiny",
    )
    proto = onnx.load(str(path))
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [opset]
    assert proto.doc_string == "tiny"
    metadata = read_metadata(path)
    assert json.loads(metadata["mean"]) == [0.5, 0.5, 0.5] and metadata["layout"] == "NCHW"
    assert metadata["opset"] == str(opset) and json.loads(metadata["output_names"]) == ["logits"]
    assert metadata["input_name"] == "images"
    session = onnx_session(path, threads=1)
    assert session.get_inputs()[0].shape == ["batch", 3, 32, 32]
    assert session.get_outputs()[0].shape == ["batch", 5]
    reference = torch_runner(classifier)
    for batch in (1, 5):
        x = np.random.default_rng(batch).normal(size=(batch, 3, 32, 32)).astype(np.float32)
        (got,), (expected,) = run_onnx(session, x), reference(x)
        assert got.shape == (batch, 5)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-3)


def test_constant_outputs_keep_their_shape_and_batched_ones_become_dynamic(tmp_path: Path) -> None:
    path = export_onnx(TwoOutputs(), tmp_path / "two.onnx", input_size=(8, 8), output_names=["features", "table"])
    session = onnx_session(path)
    assert [o.shape for o in session.get_outputs()] == [["batch", 4], [6, 2]]
    features, table = run_onnx(session, np.zeros((3, 3, 8, 8), np.float32))
    assert features.shape == (3, 4) and np.array_equal(table, np.arange(12.0).reshape(6, 2))


def test_fixed_batch_when_asked(tmp_path: Path, classifier: nn.Module) -> None:
    path = export_onnx(
        classifier, tmp_path / "f.onnx", input_size=(32, 32), output_names=["logits"], dynamic_batch=False
    )
    assert onnx_session(path).get_inputs()[0].shape == [2, 3, 32, 32]


def test_bad_export_arguments_are_export_errors(tmp_path: Path, classifier: nn.Module) -> None:
    with pytest.raises(ExportError, match="exporter must be one of"):
        export_onnx(classifier, tmp_path / "a.onnx", input_size=(32, 32), output_names=["x"], exporter="tflite")
    with pytest.raises(ExportError, match="needs opset >= 18"):
        export_onnx(classifier, tmp_path / "a.onnx", input_size=(32, 32), output_names=["x"], exporter="dynamo")
    with pytest.raises(ExportError, match="returns 1 outputs but 2 names"):
        export_onnx(classifier, tmp_path / "a.onnx", input_size=(32, 32), output_names=["x", "y"])
    assert issubclass(ExportError, MobivisionError)


def test_onnx_session_on_a_missing_or_broken_file_is_an_export_error(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="not found"):
        onnx_session(tmp_path / "none.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(ExportError, match="cannot load"):
        onnx_session(tmp_path / "bad.onnx")


def test_torchscript_reproduces_pytorch_for_any_batch(tmp_path: Path, classifier: nn.Module) -> None:
    path = export_torchscript(classifier, tmp_path / "m.ts", input_size=(32, 32))
    run = torchscript_runner(path)
    for batch in (1, 4):
        x = np.random.default_rng(batch).normal(size=(batch, 3, 32, 32)).astype(np.float32)
        np.testing.assert_array_equal(run(x)[0], torch_runner(classifier)(x)[0])
