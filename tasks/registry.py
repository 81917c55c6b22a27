"""Which task classes a checkpoint may name: the built-in tasks and the plug-ins registered as entry points.

A checkpoint records its task class (``module.Class``); ``load_task`` builds only classes found here, so a file
never makes the loader import an arbitrary module. A plug-in package registers its task in its ``pyproject.toml``::

    [project.entry-points."mobivision.tasks"]
    shape_count = "my_package.counting:ShapeCountTask"

(ARCHITECTURE.md, "Add a head"). Training needs no registration: the task's config names the class (``_target_``).
"""

from __future__ import annotations

import difflib
import importlib
import logging
from importlib.metadata import entry_points

from mobivision.errors import ConfigError, WeightFileError
from mobivision.tasks.base import TaskModule

log = logging.getLogger("mobivision")

ENTRY_POINT_GROUP = "mobivision.tasks"
BUILT_IN = (
    "mobivision.tasks.classification:ClassificationTask",
    "mobivision.tasks.detection:DetectionTask",
    "mobivision.tasks.face_attributes:AttributeTask",
    "mobivision.tasks.geolocation:GeoTask",
    "mobivision.tasks.multitask:MultiTask",
)


def class_path(task_class: type) -> str:
    """``module.Class``: how checkpoints and exported files name a task class."""
    return f"{task_class.__module__}.{task_class.__qualname__}"


def _load(reference: str, source: str) -> type[TaskModule]:
    module_name, _, class_name = reference.partition(":")
    try:
        task_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise WeightFileError(f"task {reference!r} registered by {source} cannot be imported ({exc})") from exc
    if not (isinstance(task_class, type) and issubclass(task_class, TaskModule)):
        raise WeightFileError(f"{reference!r} registered by {source} is not a mobivision TaskModule")
    return task_class


def task_class(name: str) -> type[TaskModule]:
    """The registered task class a checkpoint names (``module.Class``); built-ins first, then entry points."""
    for reference in BUILT_IN:
        task = _load(reference, "mobivision")
        if class_path(task) == name:
            return task
    plugins = entry_points(group=ENTRY_POINT_GROUP)
    for entry in plugins:
        task = _load(entry.value, f"the entry point {entry.name!r} of group {ENTRY_POINT_GROUP}")
        if class_path(task) == name:
            return task
    known = [class_path(_load(r, "mobivision")) for r in BUILT_IN] + [e.value for e in plugins]
    raise WeightFileError(
        f"task class {name!r} is neither a built-in mobivision task nor a plug-in registered in the entry-point "
        f"group {ENTRY_POINT_GROUP!r} (known: {', '.join(known)})"
    )


def task_of_kind(kind: str) -> type[TaskModule]:
    """The registered task class whose ``kind`` is ``kind`` (a multi-head model's ``task.heads.<name>.kind``)."""
    classes = [_load(r, "mobivision") for r in BUILT_IN] + [
        _load(e.value, f"the entry point {e.name!r}") for e in entry_points(group=ENTRY_POINT_GROUP)
    ]
    heads = [task for task in classes if getattr(task, "kind", "multitask") != "multitask"]  # no nesting
    for task in heads:
        if task.kind == kind:
            return task
    kinds = sorted({t.kind for t in heads})
    close = difflib.get_close_matches(str(kind), kinds, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"unknown head kind {kind!r}{hint}; expected one of {kinds} (or a registered plug-in's)")
