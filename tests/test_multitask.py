"""``experiment=demo_multitask`` end to end on a small synthetic set: train, add a head later with the old ones
frozen, resume, evaluate in 1 and 2 processes, predict and export (ONNX parity, INT8 per head).

The first run trains three heads (face detector + face attributes on the same in-the-wild images, a fine-grained
classifier on its own data); the second adds a geolocator with ``init_from`` and everything else frozen, as a user
adds geo-localization to a deployed detector.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from conftest import pause_training_at, wait_and_kill
from two_processes import evaluate_in_one_and_two_processes

import mobivision
from mobivision import profile
from mobivision.commands.export import export_task
from mobivision.data.synthetic import write_synthetic_faces
from mobivision.export import mobile, openvino_ir
from mobivision.export.onnx_model import read_metadata
from mobivision.tasks.multitask import MultiTask
from mobivision.tasks.runner import load_task

pytestmark = pytest.mark.slow

SMALL = [
    "experiment=demo_multitask",
    "backbone.width_mult=0.25",
    "data.num_workers=0",  # keys beside data.sources apply to every source
    "data.batch_size=8",
    "data.sources.faces.synthetic.num_images=80",
    "data.sources.birds.synthetic.images_per_class=10",
    "data.sources.geo.synthetic.num_images=160",
    "data.sources.geo.partitions.t_min=2",
    "data.sources.geo.partitions.t_max=[40,10]",
    "trainer.max_epochs=2",
    "trainer.deterministic=true",
    "scheduler.warmup_epochs=0",
    "progress=plain",
    "log_every_n_steps=1",
]
WITHOUT_GEO = ["~task.heads.geo", "~data.sources.geo"]
OLD_HEADS = ("faces", "attributes", "birds")
STEPS_PER_EPOCH = 8  # the longest source: 64 training faces in batches of 8 (the birds' loader starts over)


def _ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    return result


def _run_dir(cwd: Path) -> Path:
    (run,) = (cwd / "runs" / "demo_multitask").iterdir()
    return run


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, run_tool) -> dict:
    tmp = tmp_path_factory.mktemp("multitask")
    data = tmp / "datasets"
    first, second = tmp / "first", tmp / "second"
    first.mkdir(), second.mkdir()
    trained = _ok(run_tool("train", *SMALL, *WITHOUT_GEO, f"paths.data_dir={data}", cwd=first))
    best = json.loads((_run_dir(first) / "summary.json").read_text())["best_checkpoint"]
    frozen = [f"task.heads.{name}.freeze=true" for name in OLD_HEADS]
    added = _ok(
        run_tool(
            "train", *SMALL, f"paths.data_dir={data}", f"init_from={best}", "task.freeze_backbone=true", *frozen,
            cwd=second,
        )
    )  # fmt: skip
    return {"tmp": tmp, "data": data, "first": _run_dir(first), "second": _run_dir(second), "out": trained.stdout,
            "added_out": added.stdout, "best": Path(best)}  # fmt: skip


def test_training_logs_every_heads_metrics_prints_one_table_and_keeps_every_head_in_the_checkpoint(runs) -> None:
    summary = json.loads((runs["second"] / "summary.json").read_text())
    for metric in ("faces/mAP", "attributes/mAP", "birds/top1", "geo/acc_25km", "geo/median_km", "score"):
        assert f"val/{metric}" in summary["val"] and f"test/{metric}" in summary["test"], metric
    assert "heads test:\n| head | primary metric | value |" in runs["added_out"]
    for head in ("faces", "attributes", "birds", "geo"):
        assert f"| {head} |" in runs["added_out"], head
    assert (runs["second"] / "faces" / "per_class_test.md").is_file()  # each head's own reports, in its folder
    ckpt = _load(Path(summary["best_checkpoint"]))
    label_sets = ckpt["hyper_parameters"]["label_sets"]
    assert label_sets["faces"]["target"]["class_names"] == ["face"]
    assert len(label_sets["faces"]["attributes"]["attribute_names"]) == 8
    assert len(label_sets["birds"]["target"]["class_names"]) == 6
    assert [p["name"] for p in label_sets["geo"]["target"]["partitions"]] == ["cells_2_40", "cells_2_10"]
    thresholds = ckpt["mobivision"]["heads"]["attributes"]["attribute_thresholds"]
    assert len(thresholds) == 8 and thresholds != [0.5] * 8  # tuned on validation, kept per head
    task = load_task(summary["best_checkpoint"])
    assert isinstance(task, MultiTask) and task.head_tasks["attributes"].thresholds.tolist() == pytest.approx(
        thresholds
    )


def test_a_head_added_later_leaves_the_old_heads_bit_identical(runs) -> None:
    before, after = load_task(runs["best"]).eval(), load_task(runs["second"] / "checkpoints" / "best.ckpt").eval()
    assert list(before.model.heads) == list(OLD_HEADS) and list(after.model.heads) == [*OLD_HEADS, "geo"]
    images = torch.randn(4, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        old, new = before(images), after(images)
    for head in OLD_HEADS:
        mine, theirs = old[head], new[head]
        pairs = [(mine[k], theirs[k]) for k in mine] if isinstance(mine, dict) else [(mine, theirs)]
        assert all(torch.equal(a, b) for a, b in pairs), head
    state_before, state_after = before.state_dict(), after.state_dict()
    changed = [k for k, v in state_before.items() if not torch.equal(v, state_after[k])]
    assert not changed  # weights and BatchNorm statistics of the backbone and old heads
    assert any(k.startswith("model.heads.geo.") for k in state_after)
    val_first = json.loads((runs["first"] / "summary.json").read_text())["val"]
    val_second = json.loads((runs["second"] / "summary.json").read_text())["val"]
    assert val_second["val/faces/mAP"] == pytest.approx(val_first["val/faces/mAP"], abs=1e-9)


def test_resume_mid_epoch_ends_with_the_same_weights(runs, start_tool, run_tool) -> None:
    """The first run again, killed after step 11 (epoch 2; the birds' loader had started over in epoch 1) with the
    newest checkpoint at step 10, and resumed: the same final weights, BatchNorm statistics and optimizer state."""
    cwd = runs["tmp"] / "resumed"
    cwd.mkdir()
    common = [*SMALL, *WITHOUT_GEO, f"paths.data_dir={runs['data']}", "callbacks.last_checkpoint.every_n_train_steps=5"]
    pause, marker = pause_training_at(11, cwd)
    wait_and_kill(start_tool("train", *common, cwd=cwd, env=pause), marker)
    last = _run_dir(cwd) / "checkpoints" / "last.ckpt"
    assert _load(last)["global_step"] == 10
    _ok(run_tool("train", *common, "resume=auto", cwd=cwd))
    final, reference = _load(last), _load(runs["first"] / "checkpoints" / "last.ckpt")
    assert final["global_step"] == reference["global_step"] == 2 * STEPS_PER_EPOCH
    different = [k for k, v in reference["state_dict"].items() if not torch.equal(v, final["state_dict"][k])]
    assert not different
    for index, state in reference["optimizer_states"][0]["state"].items():
        for name, value in state.items():
            assert torch.equal(
                torch.as_tensor(value), torch.as_tensor(final["optimizer_states"][0]["state"][index][name])
            )


def test_evaluation_in_two_processes_equals_one(runs, tmp_path, start_tool) -> None:
    best = runs["second"] / "checkpoints" / "best.ckpt"
    single, double, _ = evaluate_in_one_and_two_processes(start_tool, best, tmp_path, "split=val")
    assert single.keys() == double.keys() and "test/geo/median_km" in single
    # Every evaluator metric; the detector's and attributes' losses are batch means logged per step, where the
    # image DistributedSampler repeats to pad the last shard counts twice.
    step_logged = {"test/faces/loss", "test/attributes/loss"}
    for key, value in single.items():
        if key in step_logged:
            continue
        assert double[key] == pytest.approx(value, abs=1e-6), key


def test_predict_writes_every_heads_results_from_one_pass(runs, run_tool, tmp_path) -> None:
    images = runs["data"] / "demo_faces" / "img_celeba"
    chosen = tmp_path / "images"
    chosen.mkdir()
    for path in sorted(images.glob("*.jpg"))[:3]:
        (chosen / path.name).write_bytes(path.read_bytes())
    best = runs["second"] / "checkpoints" / "best.ckpt"
    result = _ok(run_tool("predict", str(best), str(chosen), "--out", str(tmp_path / "out"), "--top-k", "2",
                          cwd=tmp_path))  # fmt: skip
    entries = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert [e["image"] for e in entries] == sorted(p.name for p in chosen.iterdir())
    for entry in entries:
        assert list(entry["heads"]) == ["faces", "attributes", "birds", "geo"]
        assert len(entry["heads"]["birds"][0]["top_k"]) == 2 and "lat" in entry["heads"]["geo"][0]
        assert set(entry["heads"]["attributes"][0]["probabilities"]) >= {"Smiling", "Eyeglasses"}
        line = next(line for line in result.stdout.splitlines() if line.startswith(entry["image"]))
        assert all(f"{head}: " in line for head in ("faces", "attributes", "birds", "geo")), line
        assert (tmp_path / "out" / Path(entry["image"]).with_suffix(".jpg")).is_file()
    predictor = mobivision.load(best)
    calls = []
    predictor.runtime.module.model.backbone.register_forward_hook(lambda *args: calls.append(1))
    results = predictor(sorted(chosen.iterdir()), top_k=2)
    assert len(calls) == 1  # one backbone pass for every head of the three images
    assert [r.entries() for r in results] == [[e] for e in entries]  # the files are the API's results


def test_export_writes_one_graph_with_every_heads_outputs_and_int8_per_head(runs, run_tool, tmp_path) -> None:
    best = runs["second"] / "checkpoints" / "best.ckpt"
    out = tmp_path / "export"
    formats = "onnx,int8,torchscript" + (",openvino,openvino-int8" if openvino_ir.available(quantization=True) else "")
    result = _ok(run_tool("export", str(best), "--out", str(out), "--formats", formats,
                          "--calibration-images", "16", cwd=tmp_path))  # fmt: skip
    report = json.loads((out / "export_report.json").read_text())
    rows = {row["format"]: row for row in report["rows"]}
    assert all(row["ok"] for row in rows.values()), result.stdout
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names[:3] == ["faces.cls_logits", "faces.bbox_regression", "faces.anchors"]
    assert "attributes.logits" in names and "birds.logits" in names and names[-1] == "geo.cell_probabilities"
    meta = read_metadata(out / "model.onnx")
    heads = json.loads(meta["heads"])
    assert meta["task_kind"] == "multitask" and list(heads) == ["faces", "attributes", "birds", "geo"]
    assert heads["faces"]["class_names"] == ["face"] and len(heads["attributes"]["attribute_names"]) == 8
    assert (out / "model.geo.cells.json").is_file()
    task = load_task(best).eval()
    image = np.random.default_rng(0).standard_normal((2, 3, 96, 96)).astype(np.float32)
    onnx_out = dict(zip(names, session.run(None, {session.get_inputs()[0].name: image}), strict=True))
    with torch.no_grad():
        torch_out = task.graph_outputs_from(task(torch.from_numpy(image)))
    for name, expected in zip(names, torch_out, strict=True):
        assert np.abs(onnx_out[name] - expected.numpy()).max() < 1e-3, name
    int8 = rows["int8"]["metrics"]
    for metric in ("faces/mAP", "attributes/mAP", "birds/top1", "geo/acc_25km", "score"):
        assert metric in int8["fp32"] and metric in int8["int8"], metric
    assert "faces/mAP" in rows["int8"]["check"] and "birds/top1" in rows["int8"]["check"]
    if "openvino" in formats:  # one IR with every head: the same outputs and results as the ONNX file
        assert rows["openvino"]["parity"]["outputs"] and "birds/top1" in rows["openvino-int8"]["metrics"]["int8"]
        images = [np.random.default_rng(i).integers(0, 256, (90, 120, 3), dtype=np.uint8) for i in range(3)]
        from_onnx, from_ir = (mobivision.load(out / f)(images, top_k=2) for f in ("model.onnx", "model.xml"))
        assert [r.line() for r in from_ir] == [r.line() for r in from_onnx]  # every head's rounded result


def test_benchmark_compares_the_joint_pass_with_separate_networks(runs, run_tool, tmp_path) -> None:
    best = runs["second"] / "checkpoints" / "best.ckpt"
    result = _ok(run_tool("benchmark", "multitask", str(best), "--repeats", "3", "--warmup", "1", "--threads", "1",
                          cwd=tmp_path))  # fmt: skip
    rows = {line.split("|")[1].strip(): line.split("|")[2:5] for line in result.stdout.splitlines() if "|" in line}
    joint, separate = (float(rows[k][0]) for k in ("joint (one backbone pass)", "4 separate networks"))
    task = load_task(best)
    backbone = profile(task.model.backbone, task.input_size).macs / 1e6
    assert joint == pytest.approx(separate - 3 * backbone, abs=0.2)  # the backbone once instead of four times
    ratios = [float(v) for v in rows["joint / separate"]]
    assert ratios[0] == pytest.approx(joint / separate, abs=2e-3) and all(0 < r < 1 for r in ratios[:2])
    assert "backbone share of the joint model" in result.stdout


def test_check_reports_every_source_and_head_and_refuses_a_head_on_the_wrong_labels(runs, run_tool, tmp_path) -> None:
    common = [*SMALL, f"paths.data_dir={runs['data']}"]
    result = _ok(run_tool("check", *common, cwd=tmp_path))
    out = result.stdout
    for source in ("faces", "birds", "geo"):
        assert f"✓ data.sources.{source}.root: " in out and f"✓ {source}: train split: " in out, source
    assert "faces: image float32 [8, 3, 96, 96]" in out and "attributes float32 [8, 8]" in out
    assert "✓ all checks passed" in out
    wrong = _run_bad(run_tool, tmp_path, *common, "+task.heads.birds.labels=attributes")
    assert "task.heads.birds.labels: source 'birds' has no label set 'attributes'; it has ['target']" in wrong
    wrong = _run_bad(run_tool, tmp_path, *common, "task.heads.attributes.kind=classification")
    assert "task.heads.attributes (classification) cannot be built from label set 'attributes'" in wrong


def _run_bad(run_tool, cwd: Path, *args: str) -> str:
    result = run_tool("train", *args, cwd=cwd)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return errors[0]


def test_the_celeba_recipe_trains_on_files_in_celebas_layout(run_tool, tmp_path) -> None:
    """``experiment=celeba_face_detect_attributes`` on the synthetic faces written in CelebA's official layout."""
    root = write_synthetic_faces(tmp_path / "celeba", num_images=40, seed=1)
    result = _ok(run_tool(
        "train", "experiment=celeba_face_detect_attributes", "debug=fast", "trainer=cpu", "backbone.pretrained=null",
        "backbone.width_mult=0.25", f"data.sources.faces.root={root}", "data.sources.faces.resolution=96",
        "data.batch_size=8", cwd=tmp_path,
    ))  # fmt: skip
    (run,) = (tmp_path / "runs" / "celeba_face_detect_attributes").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert {"test/faces/mAP", "test/attributes/mAP", "test/score"} <= set(summary["test"])
    assert (root / "annotations_faces" / "celeba_faces_train.json").is_file()  # boxes converted once, kept
    label_sets = _load(Path(summary["best_checkpoint"]))["hyper_parameters"]["label_sets"]["faces"]
    assert label_sets["target"]["class_names"] == ["face"] and len(label_sets["attributes"]["attribute_names"]) == 8
    assert "| faces | mAP |" in result.stdout and "| attributes | mAP |" in result.stdout


def test_the_multitask_graph_exports_to_executorch(runs, tmp_path) -> None:
    """The mobile format of the single tasks works for the one multi-task graph too (ExecuTorch, in ``dev``)."""
    if not mobile.available("pte"):
        pytest.skip(f"pte: {mobile.INSTALL['pte']} not installed")
    task = load_task(runs["second"] / "checkpoints" / "best.ckpt")
    result = export_task(task, tmp_path, formats=["pte"], parity_images=2)
    (row,) = result.rows
    assert row.ok and row.path.name == "model.pte" and row.parity is not None
    assert {o.name for o in row.parity.outputs} >= {"faces.cls_logits", "attributes.logits", "geo.cell_probabilities"}
