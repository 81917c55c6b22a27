"""End-to-end task runs through ``mobivision.tasks.runner.train`` on composed configs (ARCHITECTURE.md, Conventions).

The learning test trains the embedded demo recipe on a smaller copy of its synthetic shapes data and
requires test top-1 far above chance; the round-trip test reloads the best checkpoint with no arguments.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from mobivision.tasks.classification import ClassificationTask
from mobivision.tasks.runner import load_task, train

# Every test uses ``demo_run``, the demo recipe trained for 20 epochs.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, compose_train) -> dict:
    """One real training run of the demo recipe (smaller data, fewer epochs), shared by the tests below."""
    tmp = tmp_path_factory.mktemp("demo")
    cfg = compose_train(
        tmp,
        [
            "experiment=demo_classification",
            "data.synthetic.images_per_class=150",
            "trainer.max_epochs=20",
        ],
    )
    summary = train(cfg)
    return {"summary": summary, "cfg": cfg}


def test_demo_recipe_learns_far_above_chance(demo_run: dict) -> None:
    summary = demo_run["summary"]
    print("test metrics:", summary["test"], "chance:", summary["chance"])
    assert summary["chance"] == pytest.approx(1 / 6)
    assert summary["test"]["test/top1"] > 0.6  # chance is 0.167
    assert summary["test"]["test/mean_class_acc"] > 0.6


def test_run_folder_holds_config_metrics_events_and_checkpoints(demo_run: dict) -> None:
    out = Path(demo_run["summary"]["output_dir"])
    assert (out / "config.yaml").is_file()
    assert json.loads((out / "summary.json").read_text())["test"] == demo_run["summary"]["test"]
    with open(out / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged_top1 = [float(r["val/top1"]) for r in rows if r.get("val/top1")]
    assert len(logged_top1) == 20  # one validation per epoch
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert (out / "checkpoints" / "best.ckpt").is_file()
    assert (out / "checkpoints" / "last.ckpt").is_file()


def test_checkpoint_round_trip_needs_no_arguments_and_reproduces_outputs(demo_run: dict) -> None:
    best = demo_run["summary"]["best_checkpoint"]
    task = ClassificationTask.load_from_checkpoint(best, map_location="cpu", weights_only=True).eval()
    again = load_task(best).eval()
    assert task.class_names == ["circle", "cross", "diamond", "ring", "square", "triangle"]
    assert task.data_meta["resolution"] == 64 and task.data_meta["mean"] == [0.5, 0.5, 0.5]
    assert task.model.pretrained_cfg["classes"] == task.class_names
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(task(x), again(x))
    checkpoint = torch.load(best, map_location="cpu", weights_only=True)
    assert checkpoint["mobivision"]["task"] == "mobivision.tasks.classification.ClassificationTask"
    assert checkpoint["hyper_parameters"]["run_config"]["backbone"]["width_mult"] == 0.25


def test_load_task_rejects_foreign_and_truncated_files(tmp_path: Path, demo_run: dict) -> None:
    from mobivision.errors import WeightFileError

    foreign = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(WeightFileError, match="not a mobivision task checkpoint"):
        load_task(foreign)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(Path(demo_run["summary"]["best_checkpoint"]).read_bytes()[:1000])
    with pytest.raises(WeightFileError, match=r"truncated\.ckpt"):
        load_task(truncated)
    with pytest.raises(WeightFileError, match="not found"):
        load_task(tmp_path / "missing.ckpt")


def test_test_reports_agree_with_the_logged_metrics(demo_run: dict) -> None:
    out = Path(demo_run["summary"]["output_dir"])
    with open(out / "per_class_test.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == ["circle", "cross", "diamond", "ring", "square", "triangle"]
    correct, support = sum(int(r["correct"]) for r in rows), sum(int(r["support"]) for r in rows)
    assert correct / support == pytest.approx(demo_run["summary"]["test"]["test/top1"], abs=1e-6)
    with open(out / "predictions_test.csv") as f:
        predictions = list(csv.DictReader(f))
    assert len(predictions) == support and all(p["image"].endswith(".png") for p in predictions)
    assert (out / "confusion_test.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "confused_pairs_test.csv").is_file()
