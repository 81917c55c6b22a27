"""What ``mobivision.load`` refuses before a model runs (mobivision/inference/runtimes.py, metadata.py): metadata that
lacks what prediction reads (ONNX, OpenVINO IR and checkpoints, every head of a multi-task model) and a device that
is not there, each one error naming the file, the entries or the device string.

The ONNX files are built here by hand (a ``ReduceMean`` per output, metadata written as the export writes it), so
no test trains or exports; the checkpoints are the random-weight ``tiny_task_checkpoints``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

import mobivision
from mobivision.errors import ConfigError, WeightFileError
from mobivision.export.onnx_model import set_metadata
from mobivision.inference import Classes
from mobivision.inference.runtimes import METADATA_SECTION

DECODE = "mobivision.inference.decode"
SHARED = {"input_size": [8, 8], "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "crop_pct": 1.0}
CLASSIFIER = {
    "task_kind": "classification",
    "decoder": f"{DECODE}:decode_classification",
    **SHARED,
    "class_names": ["a", "b", "c"],
}
MULTITASK = {
    "task_kind": "multitask",
    **SHARED,
    "heads": {
        "species": {"kind": "classification", "decoder": f"{DECODE}:decode_classification", "class_names": list("abc")},
        "faces": {
            "kind": "attributes",
            "decoder": f"{DECODE}:decode_attributes",
            "attribute_names": ["glasses", "hat", "smile"],
            "attribute_thresholds": [0.5, 0.5, 0.5],
        },
    },
}
DETECTOR = {
    "task_kind": "detection",
    "decoder": f"{DECODE}:decode_detection",
    **SHARED,
    "class_names": ["circle", "square"],
    "category_ids": [1, 2],
}
SSD_OUTPUTS = ("cls_logits", "bbox_regression", "anchors")
NMS_OUTPUTS = ("boxes", "scores", "labels", "num_detections")


def write_onnx(path: Path, metadata: dict, outputs: tuple[str, ...] = ("logits",)) -> Path:
    """A valid ONNX model, ``images [B, 3, 8, 8]`` -> per output name the per-channel means ``[B, 3]``, with
    ``metadata`` as ``tools/export.py`` writes metadata (``set_metadata``: non-string values as JSON)."""
    nodes = [helper.make_node("ReduceMean", ["images"], [name], axes=[2, 3], keepdims=0) for name in outputs]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 3]) for name in outputs],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every ONNX Runtime the project supports
    set_metadata(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def without(entries: dict, *keys: str) -> dict:
    return {k: v for k, v in entries.items() if k not in keys}


PICTURE = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)


# --- metadata --------------------------------------------------------------------------------------------


def test_a_complete_hand_made_file_loads_and_predicts(tmp_path: Path) -> None:
    """The control: the checks refuse nothing an export writes (the exports themselves: tests/test_inference.py)."""
    result = mobivision.load(write_onnx(tmp_path / "model.onnx", CLASSIFIER))(PICTURE, top_k=2)
    assert isinstance(result.head, Classes) and len(result.head.names) == 2
    heads = mobivision.load(write_onnx(tmp_path / "multi.onnx", MULTITASK, ("species.logits", "faces.logits")))
    assert set(heads(PICTURE).heads) == {"species", "faces"}
    assert mobivision.load(write_onnx(tmp_path / "nms.onnx", DETECTOR, NMS_OUTPUTS)).kind == "detection"


def test_a_plain_onnx_model_says_it_is_no_mobivision_export_and_how_one_is_made(tmp_path: Path) -> None:
    """Before: ``not a mobivision export (no task_kind in its metadata)``, with no word on how to make one."""
    path = write_onnx(tmp_path / "plain.onnx", {})
    with pytest.raises(WeightFileError) as error:
        mobivision.load(path)
    assert str(error.value) == (
        f"{path}: not a mobivision export: its metadata has none of task_kind, input_size, mean, std (found: no "
        "entries); a mobivision ONNX file is written by tools/export.py CHECKPOINT --out DIR from a trained checkpoint"
    )


def test_partial_metadata_names_the_file_and_every_missing_entry(tmp_path: Path) -> None:
    """Before: ``KeyError: 'input_size'`` from ``Predictor.__init__``."""
    path = write_onnx(tmp_path / "partial.onnx", without(CLASSIFIER, "input_size", "std"))
    with pytest.raises(WeightFileError) as error:
        mobivision.load(path)
    message = str(error.value)
    assert message.startswith(f"{path}: incomplete mobivision metadata: missing input_size, std; ")
    assert message.endswith("written by tools/export.py CHECKPOINT --out DIR from a trained checkpoint")


def test_malformed_shared_entries_are_named_with_what_was_expected(tmp_path: Path) -> None:
    """Before: ``TypeError`` / ``ValueError`` from the pre-processing (``int('abc'[0])``...)."""
    path = write_onnx(tmp_path / "bad.onnx", CLASSIFIER | {"input_size": "abc", "mean": [0.5, 0.5]})
    with pytest.raises(WeightFileError) as error:
        mobivision.load(path)
    assert "input_size is 'abc', expected [height, width], two integers > 0" in str(error.value)
    assert "mean is [0.5, 0.5], expected three numbers (R, G, B)" in str(error.value)


def test_a_head_without_its_decoders_entries_is_refused_at_load(tmp_path: Path) -> None:
    """Before: the file loaded, and the first prediction failed with ``KeyError: 'class_names'``."""
    path = write_onnx(tmp_path / "model.onnx", without(CLASSIFIER, "class_names"))
    with pytest.raises(WeightFileError) as error:
        mobivision.load(path)
    assert str(error.value).startswith(
        f"{path}: incomplete mobivision metadata: missing class_names (the classification decoder reads them)"
    )


def test_every_head_of_a_multitask_model_is_checked_by_its_kind(tmp_path: Path) -> None:
    """Before: the file loaded; a prediction failed with a bare ``KeyError`` for the first head that lacked one."""
    heads = {
        "species": without(MULTITASK["heads"]["species"], "class_names"),
        "faces": without(MULTITASK["heads"]["faces"], "attribute_thresholds"),
    }
    path = write_onnx(tmp_path / "multi.onnx", MULTITASK | {"heads": heads}, ("species.logits", "faces.logits"))
    with pytest.raises(WeightFileError) as error:
        mobivision.load(path)
    message = str(error.value)
    assert message.startswith(f"{path}: incomplete mobivision metadata: ")
    assert "head 'species': missing class_names (the classification decoder reads them)" in message
    assert "head 'faces': missing attribute_thresholds (the attributes decoder reads them)" in message
    assert "tools/export.py" in message

    no_kind = {"species": without(MULTITASK["heads"]["species"], "kind", "decoder")}
    path = write_onnx(tmp_path / "no_kind.onnx", MULTITASK | {"heads": no_kind}, ("species.logits",))
    kinds = r"attributes, classification, detection, geo"  # the registered head kinds, sorted
    with pytest.raises(WeightFileError, match=rf"head 'species': missing kind \(one of {kinds}"):
        mobivision.load(path)
    path = write_onnx(tmp_path / "no_heads.onnx", without(MULTITASK, "heads"), ("species.logits",))
    with pytest.raises(WeightFileError, match=r"missing heads \(a multitask model's entries per head\)"):
        mobivision.load(path)


def test_a_detectors_entries_depend_on_its_graph(tmp_path: Path) -> None:
    """Raw SSD outputs are decoded in numpy (box coder, thresholds, NMS options); the graph with NMS inside needs
    only the label map. Before: a raw-output file without ``postprocess`` loaded and failed at its first image."""
    raw = write_onnx(tmp_path / "model.onnx", DETECTOR, SSD_OUTPUTS)
    with pytest.raises(WeightFileError) as error:
        mobivision.load(raw)
    assert "missing postprocess, score_function, box_coder_weights (the detection decoder reads them)" in str(
        error.value
    )
    post = {"score_threshold": 0.01, "nms_iou": 0.5}  # topk_candidates and max_detections missing
    ssd = {"postprocess": post, "score_function": "sigmoid", "box_coder_weights": [10.0, 10.0, 5.0, 5.0]}
    raw = write_onnx(tmp_path / "post.onnx", DETECTOR | ssd, SSD_OUTPUTS)
    with pytest.raises(WeightFileError, match=r"postprocess is .*, expected a mapping with score_threshold, topk_cand"):
        mobivision.load(raw)
    nms = write_onnx(tmp_path / "model_nms.onnx", DETECTOR, NMS_OUTPUTS)
    assert mobivision.load(nms).kind == "detection"
    wrong = write_onnx(
        tmp_path / "wrong.onnx", DETECTOR | ssd | {"postprocess": post | {"topk_candidates": 1, "max_detections": 5}}
    )
    with pytest.raises(WeightFileError, match=r"the graph lacks the outputs cls_logits, bbox_regression, anchors the"):
        mobivision.load(wrong)


def test_an_openvino_ir_with_partial_runtime_info_is_refused_by_the_same_check(tmp_path: Path) -> None:
    ov = pytest.importorskip("openvino", reason="OpenVINO is not installed: pip install -e '.[openvino]'")
    model = ov.convert_model(str(write_onnx(tmp_path / "model.onnx", CLASSIFIER)))
    for key, value in {"task_kind": "classification", "class_names": '["a", "b", "c"]'}.items():
        model.set_rt_info(value, [METADATA_SECTION, key])
    ov.save_model(model, str(tmp_path / "model.xml"))
    with pytest.raises(WeightFileError) as error:
        mobivision.load(tmp_path / "model.xml")
    assert str(error.value).startswith(f"{tmp_path / 'model.xml'}: incomplete mobivision metadata: missing input_size")
    assert str(error.value).endswith("tools/export.py CHECKPOINT --formats openvino --out DIR")


def test_a_checkpoint_whose_task_leaves_out_an_entry_is_refused_at_load(
    tiny_task_checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plug-in task whose ``export_metadata()`` forgets an entry. Before: a ``KeyError`` at its first image."""
    from mobivision.tasks.classification import ClassificationTask

    monkeypatch.setattr(ClassificationTask, "export_metadata", lambda self: {})
    path = tiny_task_checkpoints["classifier"]
    with pytest.raises(WeightFileError) as error:
        mobivision.load(path)
    assert str(error.value) == (
        f"{path}: incomplete mobivision metadata: missing class_names (the classification decoder reads them); "
        "the task's export_metadata() must provide them (the entries tools/export.py writes)"
    )


# --- device ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["gpu", "GPU", "cuda:", "cuda:x", "cuda:-1", "cuda0", " cpu", "mps"])
def test_an_unknown_device_lists_the_accepted_forms(device: str, tmp_path: Path) -> None:
    """Before: on an ONNX file anything but ``cuda...`` ran silently on the CPU; on a checkpoint, torch's
    ``RuntimeError: Expected one of cpu, cuda, ipu, xpu, ...``."""
    path = write_onnx(tmp_path / "model.onnx", CLASSIFIER)
    expected = f"device {device!r}: unknown device; expected cpu, cuda or cuda:N (N: the GPU's index, cuda:0 the first)"
    with pytest.raises(ConfigError) as error:
        mobivision.load(path, device=device)
    assert str(error.value) == expected
    with pytest.raises(ConfigError) as error:
        mobivision.load(tmp_path / "missing.ckpt", device=device)  # the form is checked before the file
    assert str(error.value) == expected


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this ONNX Runtime has CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:3"])
def test_onnx_on_cuda_without_the_cuda_provider_names_the_providers_there(device: str, tmp_path: Path) -> None:
    """Before: ONNX Runtime warned and ran on the CPU, whatever the caller asked."""
    with pytest.raises(ConfigError) as error:
        mobivision.load(write_onnx(tmp_path / "model.onnx", CLASSIFIER), device=device)
    message = str(error.value)
    assert message.startswith(f"device {device!r}: this ONNX Runtime has no CUDAExecutionProvider (it has ")
    assert all(provider in message for provider in ort.get_available_providers())
    assert message.endswith("; use device='cpu'")


def test_onnx_on_cuda_where_the_provider_cannot_start_is_refused_not_run_on_the_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime-gpu on a machine without a usable GPU: the session falls back to the CPU provider. Simulated by
    listing the CUDA provider as available on a CPU build, which falls back the same way."""
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA: its fallback is not simulated")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    path = write_onnx(tmp_path / "model.onnx", CLASSIFIER)
    # ONNX Runtime's own warning of the fallback, then our error
    with pytest.warns(UserWarning, match="CUDAExecutionProvider"), pytest.raises(ConfigError) as error:
        mobivision.load(path, device="cuda:1")
    assert str(error.value).startswith("device 'cuda:1': ONNX Runtime could not start its CUDAExecutionProvider here")
    assert "the session would run on CPUExecutionProvider" in str(error.value)


TORCH_FREE = """
import sys
sys.modules["torch"] = None  # importing torch (or anything that does) now fails
import mobivision
from mobivision.errors import ConfigError, WeightFileError
for device in ("cuda", "gpu"):
    try:
        mobivision.load(sys.argv[1], device=device)
    except ConfigError as exc:
        print(exc)
try:
    mobivision.load(sys.argv[2])
except WeightFileError as exc:
    print(exc)
"""


def test_the_onnx_device_and_metadata_checks_import_no_torch(tmp_path: Path) -> None:
    good = write_onnx(tmp_path / "model.onnx", CLASSIFIER)
    partial = write_onnx(tmp_path / "partial.onnx", without(CLASSIFIER, "mean"))
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(TORCH_FREE), str(good), str(partial)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("device 'cuda': ") or "CUDAExecutionProvider" in ort.get_available_providers()
    assert lines[1].startswith("device 'gpu': unknown device")
    assert lines[2].startswith(f"{partial}: incomplete mobivision metadata: missing mean")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible here")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_a_checkpoint_on_cuda_without_a_gpu_says_so(device: str, tiny_task_checkpoints: dict[str, Path]) -> None:
    """Before: torch's ``RuntimeError: Found no NVIDIA driver on your system...`` after the checkpoint loaded."""
    with pytest.raises(ConfigError) as error:
        mobivision.load(tiny_task_checkpoints["classifier"], device=device)
    assert str(error.value) == (
        f"device {device!r}: no CUDA GPU is visible here (torch.cuda.is_available() is False); use device='cpu'"
    )


def test_a_checkpoint_on_a_gpu_index_that_is_not_there_names_the_ones_that_are(
    tiny_task_checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One GPU (simulated: torch's count patched), ``cuda:3`` asked. Before: ``RuntimeError: CUDA error: invalid
    device ordinal`` (here, without a GPU: the driver error) after the checkpoint loaded."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError) as error:
        mobivision.load(tiny_task_checkpoints["classifier"], device="cuda:3")
    assert str(error.value) == "device 'cuda:3': no such GPU; 1 CUDA GPU visible here (cuda:0)"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(
        ConfigError, match=r"^device 'cuda:2': no such GPU; 2 CUDA GPUs visible here \(cuda:0 to cuda:1\)$"
    ):
        mobivision.load(tiny_task_checkpoints["classifier"], device="cuda:2")
