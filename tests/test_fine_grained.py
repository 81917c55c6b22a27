"""Fine-grained classification end to end on synthetic "birds" whose classes differ only in small details:
a from-scratch learning test, then the fine-tuning recipe (``experiment=cub_finetune``) started from that
run's checkpoint: frozen-backbone warm-up, unfreezing, EMA, label smoothing, reports, class names kept."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from mobivision.tasks.classification import ClassificationTask
from mobivision.tasks.runner import load_task, train


# A learning run (and a fine-tuning run from it below): the tests that use them are marked slow.
@pytest.fixture(scope="module")
def scratch_run(tmp_path_factory: pytest.TempPathFactory, compose_train) -> dict:
    tmp = tmp_path_factory.mktemp("fine_grained")
    cfg = compose_train(tmp, ["experiment=demo_fine_grained"])
    return {"summary": train(cfg), "tmp": tmp}


# The same seed learns differently with other kernels, so the recipe was chosen for learning every class whatever
# the kernels and the seed (configs/experiment/demo_fine_grained.yaml): test top-1 0.977-0.985 in five runs on an
# Intel Xeon with AMX (seeds 42, 1, 2, 3 with AVX-512 kernels; seed 42 with AVX2 ones, ATEN_CPU_CAPABILITY=avx2
# ONEDNN_MAX_CPU_ISA=AVX2, as on a Zen 1 CPU without AVX-512), the weakest class 0.909 in each; 0.955 (weakest 0.864)
# in make measure, whose loader has 2 workers. The bounds are the lowest figures less a margin: 4 of the 132 test
# images (0.03), 3 of a class's 22 (0.136).
TOP1_BOUND = 0.955 - 0.03
WEAKEST_CLASS_BOUND = 0.864 - 0.136


@pytest.mark.slow
def test_learns_every_class_from_its_small_details(scratch_run: dict) -> None:
    """Far above chance (1/6) on classes that differ only in a small detail, every class learned (``TOP1_BOUND``)."""
    summary = scratch_run["summary"]
    with open(Path(summary["output_dir"]) / "per_class_test.csv") as f:
        per_class = {row["class"]: float(row["accuracy"]) for row in csv.DictReader(f)}
    print("fine-grained test metrics:", summary["test"], "chance:", summary["chance"], "per class:", per_class)
    assert summary["test"]["test/top1"] >= TOP1_BOUND and summary["test"]["test/mean_class_acc"] >= TOP1_BOUND
    assert len(per_class) == 6 and min(per_class.values()) >= WEAKEST_CLASS_BOUND, per_class  # none left confused


@pytest.fixture(scope="module")
def finetune_run(scratch_run: dict, compose_train) -> dict:
    tmp = scratch_run["tmp"] / "finetune"
    cfg = compose_train(
        tmp,
        [
            "experiment=cub_finetune",
            "data=demo_fine_grained",
            f"paths.data_dir={scratch_run['tmp'] / 'data'}",
            f"backbone.pretrained={scratch_run['summary']['best_checkpoint']}",
            "backbone.width_mult=0.25",
            "trainer=cpu",
            "trainer.max_epochs=3",
            "callbacks.backbone_freeze.unfreeze_at_epoch=1",
            "callbacks.ema.decay=0.9",
            "data.resolution=64",
            # keep the demo data's augmentation: a flip moves the detail to the other end of the body and colour
            # jitter changes its colour, and both are what tells these classes apart
            "data.augment.hflip=0.0",
            "data.augment.color_jitter=0.0",
            "data.augment.scale=[0.85,1.0]",
        ],
    )
    return {"summary": train(cfg), "cfg": cfg, "out": Path(cfg.paths.output_dir)}


@pytest.mark.slow
def test_finetune_recipe_starts_from_the_pretrained_backbone(finetune_run: dict, scratch_run: dict) -> None:
    with open(finetune_run["out"] / "csv" / "metrics.csv") as f:
        first_epoch = next(float(r["val/top1"]) for r in csv.DictReader(f) if r.get("val/top1"))
    # Epoch 1 trains only a new classifier on the frozen pretrained features: already far above chance.
    assert first_epoch > 3 * scratch_run["summary"]["chance"]
    assert finetune_run["summary"]["test"]["test/top1"] > 3 * scratch_run["summary"]["chance"]


@pytest.mark.slow
def test_finetuned_checkpoint_keeps_class_names_and_trained_the_backbone(finetune_run: dict, scratch_run: dict):
    tuned = load_task(finetune_run["summary"]["last_checkpoint"]).eval()
    source = load_task(scratch_run["summary"]["best_checkpoint"]).eval()
    assert tuned.class_names == source.class_names and len(tuned.class_names) == 6
    assert tuned.label_smoothing == 0.1 and tuned.backbone_lr_mult == 0.1
    again = ClassificationTask.load_from_checkpoint(
        finetune_run["summary"]["last_checkpoint"], map_location="cpu", weights_only=True
    ).eval()
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(tuned(x), again(x))  # the round trip reproduces predictions
    first_conv = "model.backbone.layers.Conv2d_0.conv.weight"
    assert not torch.equal(tuned.state_dict()[first_conv], source.state_dict()[first_conv])  # unfrozen after epoch 1


@pytest.mark.slow
def test_reports_are_written(finetune_run: dict) -> None:
    out = finetune_run["out"]
    for name in ("confusion_test.png", "per_class_test.csv", "confused_pairs_test.csv", "predictions_test.csv"):
        assert (out / name).is_file(), name


@pytest.mark.parametrize("experiment", ["cub_finetune", "dogs_finetune"])
def test_recipes_run_on_the_official_formats_with_box_crops(tmp_path: Path, compose_train, experiment: str) -> None:
    """The real recipes, shrunk, on tiny trees in the official CUB / Stanford Dogs formats, cropped to boxes."""
    from tests.unit.test_cub import write_cub
    from tests.unit.test_stanford_dogs import write_stanford_dogs

    root = tmp_path / "dataset"
    (write_cub if experiment == "cub_finetune" else write_stanford_dogs)(root)
    cfg = compose_train(
        tmp_path,
        [
            f"experiment={experiment}",
            "debug=fast",
            f"data.root={root}",
            "data.use_boxes=true",
            "data.resolution=32",
            "data.batch_size=2",
            "backbone.pretrained=null",
            "backbone.width_mult=0.25",
            "trainer=cpu",
        ],
    )
    summary = train(cfg)
    task = load_task(summary["last_checkpoint"])
    assert len(task.class_names) == len(set(task.class_names)) >= 2
    assert "test/top1" in summary["test"] and Path(cfg.paths.output_dir, "per_class_test.csv").is_file()
