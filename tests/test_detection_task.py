"""Detection end to end: the detector overfits a small synthetic shapes set through the real pipeline
(COCO writer -> reader -> transforms -> matching -> loss -> decoding -> COCOeval), which proves that
targets, loss, decoding and evaluation agree; then checkpoint round-trip, eval and predict tools."""

from __future__ import annotations

import json

import pytest
import torch
from two_processes import evaluate_in_one_and_two_processes

from mobivision.tasks.detection import DetectionTask
from mobivision.tasks.runner import load_task, train

# Every test uses the detector trained for 30 epochs by ``overfit_run`` (minutes on CPU).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory: pytest.TempPathFactory, compose_train) -> dict:
    tmp = tmp_path_factory.mktemp("overfit")
    cfg = compose_train(
        tmp,
        [
            "experiment=demo",
            "data.synthetic.num_train=47",  # odd: two evaluation processes get one padded duplicate
            "data.synthetic.num_val=4",
            "data.synthetic.num_test=4",
            # evaluate on the training images themselves: this test is about overfitting
            "data.splits.val=${data.splits.train}",
            "data.splits.test=${data.splits.train}",
            "+data.augment.iou_crop=false",
            "+data.augment.hflip=0.0",
            "data.batch_size=8",
            "trainer.max_epochs=30",
            "backbone.bn_momentum=0.1",  # 6 steps per epoch: let BatchNorm statistics follow quickly
            "+trainer.check_val_every_n_epoch=10",
            "scheduler.warmup_epochs=2",
        ],
    )
    return {"summary": train(cfg), "tmp": tmp}


def test_detector_overfits_a_small_shapes_set(overfit_run: dict) -> None:
    test = overfit_run["summary"]["test"]
    print("overfit metrics:", {k: round(v, 3) for k, v in test.items()})
    assert test["test/AP50"] >= 0.5
    assert 0.0 < test["test/mAP"] <= test["test/AP50"]


def test_checkpoint_keeps_the_label_map_and_reproduces_detections(overfit_run: dict) -> None:
    best = overfit_run["summary"]["best_checkpoint"]
    task = load_task(best).eval()
    again = DetectionTask.load_from_checkpoint(best, map_location="cpu", weights_only=True).eval()
    assert task.class_names == ["circle", "square", "triangle"] and task.category_ids == [1, 2, 3]
    assert task.model.pretrained_cfg["classes"] == task.class_names
    x = torch.randn(2, 3, 128, 128)
    first, second = task.detect(x), again.detect(x)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a["boxes"], b["boxes"]) and torch.equal(a["labels"], b["labels"])


def test_eval_tool_prints_the_per_class_table_and_writes_results(overfit_run: dict, run_tool) -> None:
    tmp = overfit_run["tmp"]
    result = run_tool(
        "eval", f"ckpt_path={overfit_run['summary']['best_checkpoint']}", f"paths.output_dir={tmp / 'eval'}", cwd=tmp
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| class" in result.stdout and "| circle" in result.stdout and "test/AP50" in result.stdout
    assert "test metrics computed with faster_coco_eval " in result.stdout  # the engine, named with its version
    assert json.loads((tmp / "eval" / "summary.json").read_text())["computed_by"].startswith("faster_coco_eval ")
    results = json.loads((tmp / "eval" / "results_test.json").read_text())
    assert results and {"image_id", "category_id", "bbox", "score"} <= set(results[0])
    expected = json.loads((tmp / "run" / "summary.json").read_text())["test"]["test/AP50"]
    assert json.loads((tmp / "eval" / "summary.json").read_text())["test"]["test/AP50"] == pytest.approx(expected)


def test_two_process_evaluation_equals_one_process(overfit_run: dict, start_tool) -> None:
    """DDP (gloo, 2 CPU processes): DistributedSampler pads 47 images to 48, so one image is evaluated
    twice; gathering and de-duplicating must give exactly the single-process metrics."""
    tmp = overfit_run["tmp"]
    one, two, _ = evaluate_in_one_and_two_processes(start_tool, overfit_run["summary"]["best_checkpoint"], tmp)
    # The loss is a per-batch mean synced across processes, so the padded duplicate shifts it; COCO metrics
    # are computed once on the de-duplicated detections and must be identical.
    assert {k: v for k, v in two.items() if k != "test/loss"} == {k: v for k, v in one.items() if k != "test/loss"}
    assert len(json.loads((tmp / "two" / "results_test.json").read_text())) == len(
        json.loads((tmp / "one" / "results_test.json").read_text())
    )


def test_predict_tool_writes_coco_json_and_pictures(overfit_run: dict, run_tool) -> None:
    tmp = overfit_run["tmp"]
    images = tmp / "data" / "demo_shapes_det" / "train"
    out = tmp / "predicted"
    result = run_tool("predict", overfit_run["summary"]["best_checkpoint"], str(images), "--out", str(out), cwd=tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = json.loads((out / "predictions.json").read_text())
    assert predictions and all(p["score"] >= 0.3 for p in predictions)
    assert {p["category_name"] for p in predictions} <= {"circle", "square", "triangle"}
    assert len(list(out.glob("*.jpg"))) == 47
    missing = run_tool("predict", overfit_run["summary"]["best_checkpoint"], str(tmp / "nope.jpg"), cwd=tmp)
    assert missing.returncode == 2 and "nope.jpg" in missing.stderr
