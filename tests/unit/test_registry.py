"""Which task classes a checkpoint may name (tasks/registry.py): built-ins, entry points, nothing else."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from mobivision.errors import WeightFileError
from mobivision.tasks import registry
from mobivision.tasks.classification import ClassificationTask
from mobivision.tasks.geolocation import GeoTask


def test_built_in_tasks_are_found_by_the_name_checkpoints_record() -> None:
    assert registry.task_class("mobivision.tasks.classification.ClassificationTask") is ClassificationTask
    assert registry.task_class(registry.class_path(GeoTask)) is GeoTask


def test_plugins_come_from_the_entry_point_group(monkeypatch: pytest.MonkeyPatch) -> None:
    def plugins(group: str) -> list[EntryPoint]:
        assert group == "mobivision.tasks"
        return [EntryPoint("geo_again", "mobivision.tasks.geolocation:GeoTask", group)]

    monkeypatch.setattr(registry, "entry_points", plugins)
    monkeypatch.setattr(registry, "BUILT_IN", registry.BUILT_IN[:1])
    assert registry.task_class("mobivision.tasks.geolocation.GeoTask") is GeoTask


def test_an_unregistered_or_foreign_class_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(WeightFileError, match=r"'os\.system' is neither a built-in mobivision task nor a plug-in"):
        registry.task_class("os.system")
    monkeypatch.setattr(registry, "entry_points", lambda group: [EntryPoint("bad", "pathlib:Path", group)])
    with pytest.raises(
        WeightFileError, match=r"'pathlib:Path' registered by the entry point 'bad'.* is not a mobivision"
    ):
        registry.task_class("pathlib.Path")
