"""A checkpoint of mobivision 0.1.0 names its data module ``mobivision.tasks.datamodule.<Class>`` and two task
classes by their old modules: it loads with today's spelling (``mobivision.tasks.legacy_names``), and its data
module builds from it."""

from __future__ import annotations

from pathlib import Path

from conftest import TINY_BACKBONE, TINY_COMMON, TINY_META, save_task_checkpoint
from hydra.utils import get_class

from mobivision.data.synthetic.shapes import SHAPES
from mobivision.tasks.classification import ClassificationTask
from mobivision.tasks.classification_data import ClassificationDataModule
from mobivision.tasks.legacy_names import LEGACY_TARGETS, current_run_config
from mobivision.tasks.runner import build_datamodule, evaluation_data, load_task

OLD_DETECTION = "mobivision.tasks.datamodule.DetectionDataModule"


def test_every_old_target_names_a_class_of_the_same_name_today() -> None:
    for old, new in LEGACY_TARGETS.items():
        assert old.startswith(
            ("mobivision.tasks.datamodule.", "mobivision.tasks.face_attributes.", "mobivision.tasks.geolocation.")
        )
        assert get_class(new).__name__ == old.rpartition(".")[2]


def test_the_targets_of_the_task_the_data_and_each_source_are_renamed_and_nothing_else() -> None:
    multitask = "mobivision.tasks.multitask_data.MultiTaskDataModule"
    sources = {"faces": {"_target_": OLD_DETECTION, "root": "r"}, "birds": {"_target_": "plugin.BirdData"}}
    task = {"_target_": "mobivision.tasks.geolocation.GeoTask", "dropout": 0.0}
    stored = {"task_name": "t", "task": task, "data": {"_target_": multitask, "batch_size": 4, "sources": sources}}
    assert current_run_config(stored) == {
        "task_name": "t",
        "task": {"_target_": "mobivision.tasks.geo.GeoTask", "dropout": 0.0},
        "data": {
            "_target_": multitask,
            "batch_size": 4,
            "sources": {
                "faces": {"_target_": "mobivision.tasks.detection_data.DetectionDataModule", "root": "r"},
                "birds": {"_target_": "plugin.BirdData"},
            },
        },
    }
    assert stored["data"]["sources"]["faces"]["_target_"] == OLD_DETECTION  # a copy: the stored one is kept
    assert current_run_config(None) is None
    assert current_run_config({"task_name": "t"}) == {"task_name": "t"}


def test_a_checkpoint_with_the_old_spelling_loads_and_its_data_module_builds_from_it(tmp_path: Path) -> None:
    data = {
        "_target_": "mobivision.tasks.datamodule.ClassificationDataModule",
        "root": str(tmp_path / "shapes"),
        "synthetic": {"images_per_class": 3, "size": 16},
        "resolution": 32,
        "batch_size": 2,
        "num_workers": 0,
    }
    classes = sorted(SHAPES)
    task = ClassificationTask(
        class_names=classes, backbone=TINY_BACKBONE, data_meta=TINY_META, run_config={"data": data}, **TINY_COMMON
    )
    loaded = load_task(save_task_checkpoint(task, tmp_path / "old.ckpt"))
    stored = loaded.hparams.run_config["data"]
    assert stored == {**data, "_target_": "mobivision.tasks.classification_data.ClassificationDataModule"}
    datamodule = build_datamodule(evaluation_data(None, stored), TINY_BACKBONE["name"])
    assert isinstance(datamodule, ClassificationDataModule) and datamodule.class_names == classes
    assert len(datamodule.datasets["val"]) > 0
