"""Which task classes exist: every class registered in the entry-point group ``mobivision.tasks``, the built-in
tasks (mobivision's own ``pyproject.toml``) and plug-ins alike.

A checkpoint records its task class (``module.Class``); ``load_task`` builds only classes found here, so a file
never makes the loader import an arbitrary module. A package registers its task in its ``pyproject.toml``::

    [project.entry-points."mobivision.tasks"]
    shape_count = "my_package.counting:ShapeCountTask"

Everything generic code needs to know about a kind is declared on its class (``tasks/base.py``: ``kind``,
``decoder``, ``primary_metric``, ``label_kind``, ``label_needs``, ``backbone_taps``, ``side_file``...); a class that
lacks one of the required declarations is refused when it is loaded, naming what is missing (ARCHITECTURE.md, "Add
a head"). Training needs no registration: the task's config names the class (``_target_``).
"""

from __future__ import annotations

import difflib
import importlib
import logging
from importlib.metadata import EntryPoint, entry_points

from mobivision.errors import ConfigError, WeightFileError
from mobivision.tasks.base import TaskModule
from mobivision.tasks.legacy_names import current_target

log = logging.getLogger("mobivision")

ENTRY_POINT_GROUP = "mobivision.tasks"
REQUIRED = ("kind", "decoder", "primary_metric")  # what every registered class declares (tasks/base.py)
MULTITASK = "multitask"  # the kind of the task whose heads are other tasks (not itself a head)


def class_path(task_class: type) -> str:
    """``module.Class``: how checkpoints and exported files name a task class."""
    return f"{task_class.__module__}.{task_class.__qualname__}"


def _load(entry: EntryPoint) -> type[TaskModule]:
    source = f"the entry point {entry.name!r} of group {ENTRY_POINT_GROUP}"
    module_name, _, class_name = entry.value.partition(":")
    try:
        task_class = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise WeightFileError(f"task {entry.value!r} registered by {source} cannot be imported ({exc})") from exc
    if not (isinstance(task_class, type) and issubclass(task_class, TaskModule)):
        raise WeightFileError(f"{entry.value!r} registered by {source} is not a mobivision TaskModule")
    missing = [name for name in REQUIRED if not hasattr(task_class, name)]
    if missing:
        raise WeightFileError(
            f"{entry.value!r} registered by {source} does not declare {', '.join(missing)} (every task declares "
            f"{', '.join(REQUIRED)}: tasks/base.py)"
        )
    return task_class


def registered() -> list[type[TaskModule]]:
    """Every registered task class, in the order of the entry points; ``WeightFileError`` if there is none (the
    package is not installed, so not even the built-in tasks are)."""
    entries = list(entry_points(group=ENTRY_POINT_GROUP))
    if not entries:
        raise WeightFileError(
            f"no task is registered in the entry-point group {ENTRY_POINT_GROUP!r}: mobivision is not installed "
            "(pip install -e . from the repository)"
        )
    return [_load(entry) for entry in entries]


def head_tasks() -> list[type[TaskModule]]:
    """The registered tasks that can be a head of a multi-task model (all but the multi-task model)."""
    return [task for task in registered() if task.kind != MULTITASK]


def task_class(name: str) -> type[TaskModule]:
    """The registered task class a checkpoint names (``module.Class``; 0.1.0's names: ``legacy_names.py``)."""
    name = current_target(name)
    classes = registered()
    for task in classes:
        if class_path(task) == name:
            return task
    raise WeightFileError(
        f"task class {name!r} is neither a built-in mobivision task nor a plug-in registered in the entry-point "
        f"group {ENTRY_POINT_GROUP!r} (known: {', '.join(class_path(t) for t in classes)})"
    )


def task_of_kind(kind: str) -> type[TaskModule]:
    """The registered task class whose ``kind`` is ``kind`` (a multi-task model's ``task.heads.<name>.kind``)."""
    heads = head_tasks()
    for task in heads:
        if task.kind == kind:
            return task
    kinds = sorted({t.kind for t in heads})
    close = difflib.get_close_matches(str(kind), kinds, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"unknown head kind {kind!r}{hint}; expected one of {kinds} (or a registered plug-in's)")
