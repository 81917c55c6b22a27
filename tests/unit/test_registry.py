"""Which task classes a checkpoint may name (tasks/registry.py): those of the entry-point group, where the
built-ins register like plug-ins, and nothing else; a half-declared class is refused naming what it lacks."""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import pytest

from mobivision.errors import WeightFileError
from mobivision.tasks import registry
from mobivision.tasks.attributes import AttributeTask
from mobivision.tasks.base import TaskModule
from mobivision.tasks.classification import ClassificationTask
from mobivision.tasks.geo import GeoTask


def test_built_in_tasks_are_found_by_the_name_checkpoints_record() -> None:
    assert registry.task_class("mobivision.tasks.classification.ClassificationTask") is ClassificationTask
    assert registry.task_class(registry.class_path(GeoTask)) is GeoTask


def test_checkpoints_of_0_1_0_name_the_modules_before_they_were_named_for_their_kind() -> None:
    assert registry.task_class("mobivision.tasks.face_attributes.AttributeTask") is AttributeTask
    assert registry.task_class("mobivision.tasks.geo.GeoTask") is GeoTask


def test_the_built_in_tasks_are_registered_in_the_entry_point_group_and_nowhere_else() -> None:
    registered = {entry.value for entry in entry_points(group="mobivision.tasks")}
    built_in = {
        "mobivision.tasks.classification:ClassificationTask",
        "mobivision.tasks.detection:DetectionTask",
        "mobivision.tasks.attributes:AttributeTask",
        "mobivision.tasks.geo:GeoTask",
        "mobivision.tasks.multitask:MultiTask",
    }
    assert built_in <= registered
    assert {task.kind for task in registry.head_tasks()} >= {"classification", "detection", "attributes", "geo"}
    assert "multitask" not in {task.kind for task in registry.head_tasks()}


def test_plugins_come_from_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    def plugins(group: str) -> list[EntryPoint]:
        assert group == "mobivision.tasks"
        return [EntryPoint("geo_again", "mobivision.tasks.geo:GeoTask", group)]

    monkeypatch.setattr(registry, "entry_points", plugins)
    assert registry.task_class("mobivision.tasks.geo.GeoTask") is GeoTask
    assert registry.task_of_kind("geo") is GeoTask
    with pytest.raises(WeightFileError, match=r"'mobivision\.tasks\.classification\.ClassificationTask' is neither"):
        registry.task_class("mobivision.tasks.classification.ClassificationTask")  # only what is registered


class HalfDeclared(TaskModule):
    """A task that forgot its decoder and primary metric."""

    kind = "half"


def test_a_half_declared_task_is_refused_naming_what_it_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    entry = EntryPoint("half", f"{__name__}:HalfDeclared", "mobivision.tasks")
    monkeypatch.setattr(registry, "entry_points", lambda group: [entry])
    with pytest.raises(WeightFileError, match=r"registered by the entry point 'half'.* does not declare decoder, "):
        registry.task_of_kind("half")


def test_no_registered_task_says_the_package_is_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "entry_points", lambda group: [])
    with pytest.raises(WeightFileError, match=r"no task is registered .*mobivision is not installed"):
        registry.task_class("mobivision.tasks.geo.GeoTask")


def test_an_unregistered_or_foreign_class_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(WeightFileError, match=r"'os\.system' is neither a built-in mobivision task nor a plug-in"):
        registry.task_class("os.system")
    monkeypatch.setattr(registry, "entry_points", lambda group: [EntryPoint("bad", "pathlib:Path", group)])
    with pytest.raises(
        WeightFileError, match=r"'pathlib:Path' registered by the entry point 'bad'.* is not a mobivision"
    ):
        registry.task_class("pathlib.Path")
