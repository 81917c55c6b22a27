"""Export end to end: every task to ONNX (and TorchScript) with parity checked, the detector's in-graph NMS
against the task's own post-processing on test images, INT8 of a briefly trained classifier with its metric
reported by ``tools/export.py``, and bad checkpoints as one clear error line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_DETECTOR_SIZE, TINY_META, int8_weights

import mobivision
from mobivision.commands.export import export_task
from mobivision.data.coco import read_coco
from mobivision.data.detection_transforms import detection_eval_transform
from mobivision.data.records import load_rgb
from mobivision.data.synthetic import write_shapes_detection
from mobivision.detection.postprocess import class_scores
from mobivision.errors import ConfigError, ExportError, WeightFileError
from mobivision.export import compare_detections, mobile, onnx_session, openvino_ir, read_metadata, run_onnx
from mobivision.export.quantize import INT8_TARGETS
from mobivision.inference.runtimes import openvino_metadata
from mobivision.machine import cpu_description, cpu_model
from mobivision.tasks.runner import load_task, train

# Exports every task to ONNX / TorchScript / INT8 (and trains a classifier for the INT8 check): minutes on CPU.
pytestmark = pytest.mark.slow

META, DETECTOR_SIZE = TINY_META, TINY_DETECTOR_SIZE


@pytest.fixture(scope="module")
def tiny(tiny_task_checkpoints: dict[str, Path]) -> dict:
    """The tiny classifier, attribute model, geo model and detector of ``tiny_task_checkpoints``, loaded."""
    loaded = {name: load_task(path).eval() for name, path in tiny_task_checkpoints.items()}
    return {"tasks": loaded, "folder": next(iter(tiny_task_checkpoints.values())).parent}


@pytest.mark.parametrize("name", ["classifier", "attributes", "geo", "detector"])
def test_onnx_and_torchscript_export_of_every_task_match_pytorch(tiny: dict, name: str, tmp_path: Path) -> None:
    task = tiny["tasks"][name]
    result = export_task(task, tmp_path, formats="onnx,torchscript", parity_images=8, checkpoint="x.ckpt")
    assert [r.format for r in result.rows] == ["onnx", "torchscript"]
    assert all(r.ok and r.parity is not None and r.parity.ok for r in result.rows)
    assert any("random inputs only" in note for note in result.notes)  # no data recorded in these checkpoints
    print(f"\n{name}:\n{result.table()}")
    report = json.loads((tmp_path / "export_report.json").read_text())
    assert [row["format"] for row in report["rows"]] == ["onnx", "torchscript"]

    graph = task.export_graphs()["model"]
    session = onnx_session(tmp_path / "model.onnx", threads=1)
    assert [o.name for o in session.get_outputs()] == graph.output_names
    size = task.data_meta["resolution"]
    images = torch.randn(5, 3, size, size, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = graph.module(images)
    expected = expected if isinstance(expected, tuple) else (expected,)
    for got, want in zip(run_onnx(session, images), expected, strict=True):
        assert got.shape == tuple(want.shape)  # dynamic batch: 5 images through a graph traced on 2
        np.testing.assert_allclose(got, want.numpy(), atol=1e-4, rtol=1e-3)

    metadata = read_metadata(tmp_path / "model.onnx")
    assert metadata["task"] == f"mobivision.tasks.{type(task).__module__.split('.')[-1]}.{type(task).__name__}"
    assert json.loads(metadata["input_size"]) == [size, size]
    assert json.loads(metadata["mean"]) == [0.5] * 3 and json.loads(metadata["std"]) == [0.25] * 3
    assert metadata["channel_order"] == "RGB" and metadata["layout"] == "NCHW"
    assert set(json.loads(metadata["outputs"])) == set(graph.output_names)
    assert metadata["opset"] == "17" and metadata["source_checkpoint"] == "x.ckpt"
    if name == "attributes":
        assert json.loads(metadata["attribute_thresholds"]) == pytest.approx([0.3, 0.5, 0.7])
        assert json.loads(metadata["attribute_names"]) == ["glasses", "hat", "smile"]
    elif name == "geo":
        assert graph.output_names == ["logits_cells_10_300", "logits_cells_10_60", "cell_probabilities"]
        assert [p["cells"] for p in json.loads(metadata["partitions"])] == [len(c) for c in task.partitions]
        with torch.no_grad():
            probabilities = task.cell_probabilities(task(images))
        np.testing.assert_allclose(run_onnx(session, images)[-1], probabilities.numpy(), atol=1e-5)
        cells = json.loads((tmp_path / "model.cells.json").read_text())
        assert [p["tokens"] for p in cells["partitions"]] == [[c.token for c in cells_] for cells_ in task.partitions]
        assert cells["parents"] == [task.parents_0.tolist()]
    elif name == "detector":
        assert json.loads(metadata["class_names"]) == ["circle", "square", "triangle"]
        assert json.loads(metadata["postprocess"])["max_detections"] == 50
        assert metadata["score_function"] == "softmax"
    else:
        assert json.loads(metadata["class_names"]) == list("abcdef") and metadata["crop_pct"] == "1.0"


@pytest.fixture(scope="module")
def detection_images(tmp_path_factory: pytest.TempPathFactory) -> torch.Tensor:
    """Test images of the synthetic shapes set, pre-processed as the detector's evaluation does."""
    root = write_shapes_detection(tmp_path_factory.mktemp("shapes"), num_train=1, num_val=1, num_test=6, size=96)
    data = read_coco(root / "annotations" / "instances_test.json", root / "test")
    transform = detection_eval_transform(resolution=DETECTOR_SIZE, mean=META["mean"], std=META["std"])
    return torch.stack(
        [transform(image=load_rgb(r.path), bboxes=np.zeros((0, 4)), labels=[])["image"] for r in data.records]
    )


def test_detector_nms_in_the_graph_equals_the_tasks_postprocessing_on_test_images(
    tiny: dict, detection_images: torch.Tensor, tmp_path: Path
) -> None:
    task = tiny["tasks"]["detector"]
    model = task.model
    with torch.no_grad():  # a threshold that about 1% of (anchor, class) scores pass: a real NMS workload
        scores = class_scores(task(detection_images)["cls_logits"], model.loss_options.classification)
    options = model.postprocess_options
    model.postprocess_options = replace(options, score_threshold=float(scores.flatten().quantile(0.99)))
    try:
        result = export_task(task, tmp_path, formats=["onnx-nms"], parity_images=0)
        with torch.no_grad():
            expected = task.detect(detection_images)
    finally:
        model.postprocess_options = options
    assert result.rows[0].ok, result.rows[0].check
    boxes, scores_, labels, count = run_onnx(onnx_session(tmp_path / "model_nms.onnx"), detection_images)
    counts = [len(d["scores"]) for d in expected]
    print(f"\ndetections per test image: onnx {count.tolist()}, pytorch {counts}")
    assert count.tolist() == counts
    assert sum(counts) >= 20 and min(counts) < 50  # detections on every image, and NMS / the threshold bit
    padded = [np.zeros((len(expected), 50, 4)), np.zeros((len(expected), 50)), np.zeros((len(expected), 50), int)]
    for i, d in enumerate(expected):
        n = counts[i]
        padded[0][i, :n], padded[1][i, :n], padded[2][i, :n] = d["boxes"], d["scores"], d["labels"]
        assert sorted(labels[i, :n].tolist()) == sorted(d["labels"].tolist())
    diffs = compare_detections([*padded, np.array(counts)], [boxes, scores_, labels, count])
    assert all(d.ok for d in diffs), diffs
    assert diffs[0].max_abs_diff < 1e-2 and diffs[1].max_abs_diff < 1e-4
    metadata = read_metadata(tmp_path / "model_nms.onnx")
    assert set(json.loads(metadata["outputs"])) == {"boxes", "scores", "labels", "num_detections"}


@pytest.mark.parametrize("fmt", ["pte", "tflite"])
def test_mobile_formats_export_and_match_pytorch_where_installed(tiny: dict, fmt: str, tmp_path: Path) -> None:
    """ExecuTorch / LiteRT are optional packages: without them the format is refused with the install line;
    with them (``pip install executorch`` / ``litert-torch ai-edge-litert``) the classifier and the detector's raw
    graph export and pass the parity check. Each export takes 20-40 s, so only with the packages present."""
    task = tiny["tasks"]["classifier"]
    if not mobile.available(fmt):
        with pytest.raises(ConfigError, match=f"format {fmt} needs optional packages: pip install"):
            export_task(task, tmp_path, formats=[fmt], parity_images=0)
        pytest.skip(f"{fmt}: {mobile.INSTALL[fmt]} not installed")
    for name in ("classifier", "detector"):
        result = export_task(tiny["tasks"][name], tmp_path / name, formats=[fmt], parity_images=0)
        (row,) = result.rows
        print(f"\n{name} {fmt}: {row.size_mb:.2f} MB {row.check}")
        assert row.ok and row.path.suffix == f".{fmt}"


@pytest.fixture(scope="module")
def trained_classifier(tmp_path_factory: pytest.TempPathFactory, compose_train) -> Path:
    """A width-0.25 classifier trained for ten short epochs on 32 px synthetic shapes of three classes (about 70%
    validation top-1 against 33% chance)."""
    tmp = tmp_path_factory.mktemp("int8")
    cfg = compose_train(
        tmp,
        [
            "experiment=demo_classification",
            "data.resolution=32",
            "data.synthetic.size=32",
            "data.synthetic.images_per_class=100",
            "+data.synthetic.classes=[square,ring,cross]",
            "data.batch_size=16",
            "data.augment.scale=[0.85,1.0]",
            "optimizer.lr=0.01",
            "scheduler.warmup_epochs=0",
            "backbone.bn_momentum=0.1",
            "trainer.max_epochs=10",
            "test_after_training=false",
        ],
    )
    return Path(train(cfg)["best_checkpoint"])


def test_int8_export_of_a_trained_classifier_reports_its_top1(
    trained_classifier: Path, tmp_path: Path, start_tool
) -> None:
    openvino = openvino_ir.available(quantization=True)
    formats = "onnx,int8,openvino-int8" if openvino else "onnx,int8"
    process = start_tool(
        "export", str(trained_classifier), "--out", str(tmp_path), "--formats", formats,
        "--calibration-images", "48", cwd=tmp_path,
    )  # fmt: skip
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    print(stdout)
    assert "| int8 " in stdout and "model.int8.onnx" in stdout and "top1 " in stdout
    report = json.loads((tmp_path / "export_report.json").read_text())
    rows = {row["format"]: row for row in report["rows"]}
    assert rows["onnx"]["ok"] and "val images" in " ".join(rows["onnx"]["parity"]["inputs"])
    fp32, int8 = rows["int8"]["metrics"]["fp32"]["top1"], rows["int8"]["metrics"]["int8"]["top1"]
    assert fp32 > 0.5  # chance: 1/3
    assert abs(int8 - fp32) <= 0.15
    assert rows["int8"]["size_mb"] < rows["onnx"]["size_mb"]
    assert read_metadata(tmp_path / "model.int8.onnx")["calibration_images"] == "48"
    # Written for every CPU by default (7-bit weights), and the report says on which CPU the metric was checked
    assert rows["int8"]["int8_target"].startswith("any: 7-bit weights") and "target any (7-bit" in rows["int8"]["check"]
    assert rows["int8"]["checked_on"] == cpu_description() and cpu_model() in rows["int8"]["check"]
    # The inference API on the same validation images scores what the export reported, for each file
    val = Path(load_task(trained_classifier).hparams.run_config["data"]["root"]) / "val"
    paths = sorted(val.rglob("*.png"))
    files = [("int8", "fp32", "model.onnx"), ("int8", "int8", "model.int8.onnx"), ("int8", "fp32", trained_classifier)]
    if openvino:  # NNCF's INT8 IR, and ONNX Runtime's INT8 file read by OpenVINO (the export's note)
        files.append(("openvino-int8", "int8", "model.int8.xml"))
        ov_fp32, ov_int8 = (rows["openvino-int8"]["metrics"][k]["top1"] for k in ("fp32", "int8"))
        assert ov_fp32 == fp32 and abs(ov_int8 - fp32) <= 0.15
        assert read_metadata(tmp_path / "model.onnx")["task_kind"] == "classification"
        assert {"model.int8.xml", "model.int8.bin"} <= set(report["files"])
        (note,) = [n for n in report["notes"] if n.startswith("model.int8.onnx also runs in OpenVINO")]
        assert "top1" in note
    for row, name, model in files:
        results = mobivision.load(tmp_path / model, batch_size=32)(paths, top_k=1)
        top1 = np.mean([r.head.names[0] == p.parent.name for r, p in zip(results, paths, strict=True)])
        assert top1 == pytest.approx(rows[row]["metrics"][name]["top1"], abs=1e-6), (name, model)


def test_int8_losing_more_than_allowed_fails_with_the_metric_in_the_message(
    trained_classifier: Path, tmp_path: Path
) -> None:
    task = load_task(trained_classifier).eval()
    with pytest.raises(ExportError, match=r"(?s)int8 export .*model\.int8\.onnx failed its check.*top1 drop"):
        # a negative allowance fails even an INT8 model as good as the float one
        export_task(task, tmp_path, formats=["int8"], calibration_images=16, parity_images=0, max_metric_drop=-1.0)
    assert (tmp_path / "model.int8.onnx").is_file() and (tmp_path / "export_report.json").is_file()


def test_int8_target_vnni_writes_8_bit_weights_and_says_so_in_the_report_and_the_files(
    trained_classifier: Path, tmp_path: Path
) -> None:
    task = load_task(trained_classifier).eval()
    formats = ["int8", "openvino-int8"] if openvino_ir.available(quantization=True) else ["int8"]
    result = export_task(task, tmp_path, formats=formats, calibration_images=16, parity_images=0, int8_target="vnni")
    rows = {row.format: row.as_dict() for row in result.rows}
    assert rows["int8"]["int8_target"] == f"vnni: {INT8_TARGETS['vnni']}"
    assert "target vnni (8-bit" in rows["int8"]["check"]
    weights = int8_weights(tmp_path / "model.int8.onnx")
    assert weights and max(int(np.abs(w.astype(np.int32)).max()) for w in weights) == 127  # the full 8 bits
    assert read_metadata(tmp_path / "model.int8.onnx")["int8_target"].startswith("vnni: ")
    if "openvino-int8" in rows:
        assert rows["openvino-int8"]["int8_target"].startswith("vnni: ")
        import openvino as ov

        ir_metadata = openvino_metadata(ov.Core().read_model(str(tmp_path / "model.int8.xml")))
        assert "overflow fix disable" in ir_metadata["quantization"] and ir_metadata["int8_target"].startswith("vnni")
    with pytest.raises(ExportError, match=r"INT8 target must be one of any, vnni, got 'arm'"):
        export_task(task, tmp_path / "x", formats=["int8"], int8_target="arm")
    assert not (tmp_path / "x").exists()


def test_an_openvino_format_without_openvino_installed_is_a_config_error_naming_the_extra(
    tiny: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openvino_ir, "available", lambda quantization=False: False)
    with pytest.raises(
        ConfigError, match=r"format openvino needs optional packages: pip install 'mobivision\[openvino\]'"
    ):
        export_task(tiny["tasks"]["classifier"], tmp_path, formats="onnx,openvino", parity_images=0)
    assert not (tmp_path / "model.onnx").exists()  # refused before anything is written


def test_bad_checkpoints_are_one_clear_error_line(tiny: dict, tmp_path: Path, start_tool) -> None:
    """A truncated checkpoint and one whose weights do not fit its own configuration, through the tool (run side
    by side: each start imports torch and Lightning); a missing and a foreign file through the same loader."""
    good = tiny["folder"] / "classifier.ckpt"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:3000])
    mismatched = tmp_path / "mismatched.ckpt"
    checkpoint = torch.load(good, map_location="cpu", weights_only=False)
    checkpoint["hyper_parameters"]["class_names"] = list("abcdefg")  # 7 classes; the weights hold 6
    torch.save(checkpoint, mismatched)
    cases = {truncated: "cannot read checkpoint", mismatched: "weights do not fit the network its configuration builds"}
    processes = {path: start_tool("export", str(path), "--out", str(tmp_path / "out"), cwd=tmp_path) for path in cases}
    for path, process in processes.items():
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 2, (path.name, stderr[-2000:])
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}"), (path.name, stderr[-2000:])
        assert cases[path] in lines[0]
    assert not (tmp_path / "out").exists()

    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"weight": torch.zeros(3)}}, foreign)
    with pytest.raises(WeightFileError, match=r"foreign\.ckpt: not a mobivision task checkpoint"):
        load_task(foreign)
    with pytest.raises(WeightFileError, match=r"checkpoint not found: .*missing\.ckpt"):
        load_task(tmp_path / "missing.ckpt")
