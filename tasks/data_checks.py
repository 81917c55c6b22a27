"""Data that cannot train (or cannot be evaluated by a checkpoint), refused before any work starts.

``train`` and ``check`` both ask ``untrainable_data`` (``require_trainable_data`` raises its answer as a
``DataError``); ``evaluate`` asks ``require_evaluable_data``. Each problem is one message that starts with the
config key it is about, so ``run_cli`` prints it as one ``error: <key>: <problem> (<expected>)`` line.

Every data module says which kind of labels each of its label sets holds (``label_kinds()``: ``{batch key: task
kind}``, the ``kind`` of the task that reads them); a multi-task model's data answers per source. What a kind needs
is declared by its task (``TaskModule.label_kind``, ``label_needs``, ``label_names``): no table here.
"""

from __future__ import annotations

from typing import Any

from mobivision.errors import DataError
from mobivision.tasks.multitask_data import source_modules
from mobivision.tasks.registry import head_tasks


def untrainable_data(datamodule: Any) -> str | None:
    """The first reason the set-up data module cannot train (an empty split, a training split smaller than one
    batch, too few classes), as ``<key>: <problem> (<expected>)``; None when it can."""
    for source, module in source_modules(datamodule).items():
        prefix = f"data.sources.{source}" if source else "data"
        for find in (_empty_split, _too_small_for_a_batch, _too_few_labels):
            problem = find(module, prefix)
            if problem is not None:
                return problem
    return None


def require_trainable_data(datamodule: Any) -> None:
    """Raise ``untrainable_data``'s reason as a ``DataError``."""
    problem = untrainable_data(datamodule)
    if problem is not None:
        raise DataError(problem)


def require_evaluable_data(task: Any, datamodule: Any, split: str) -> None:
    """The data has the labels ``task`` reads, of the kind it reads, and ``split`` has images; else ``DataError``."""
    modules = source_modules(datamodule)
    for (source, key), kind in _label_kinds_read(task).items():
        if kind is None:  # a task (a plug-in's) that reads whichever labels it chooses
            continue
        module = modules.get(source)
        data_kind = _label_kinds(module).get(key) if module is not None else None
        if module is None or (data_kind is not None and data_kind != kind):
            where = f"source {source!r}, " if source else ""
            found = f"{data_kind} data" if data_kind else "data without that source"
            raise DataError(
                f"data: a {kind} checkpoint cannot be evaluated on {found} ({where}data._target_ "
                f"{type(module or datamodule).__qualname__}; expected data of the checkpoint's task)"
            )
    for source, module in modules.items():
        prefix = f"data.sources.{source}" if source else "data"
        if split in module.datasets and len(module.datasets[split]) == 0:
            raise DataError(f"{prefix}.{_split_key(module, split)}: the {split} split has no images (expected some)")


# --- the problems --------------------------------------------------------------------------------------------


def _empty_split(module: Any, prefix: str) -> str | None:
    """A configured split without images: nothing to learn from, or a validation/test that would fail later."""
    for split, dataset in module.datasets.items():
        if len(dataset) == 0:
            return f"{prefix}.{_split_key(module, split)}: the {split} split has no images (expected some)"
    return None


def _too_small_for_a_batch(module: Any, prefix: str) -> str | None:
    """The training loader drops the last partial batch (equal batches for BatchNorm), so a training split smaller
    than one batch gives no training step at all."""
    train = module.datasets.get("train")
    if train is None or len(train) >= module.batch_size:
        return None
    images = len(train)
    return (
        f"{prefix}.batch_size: {module.batch_size} is larger than the train split ({images} images): no training "
        f"step (expected at most {images})"
    )


def _too_few_labels(module: Any, prefix: str) -> str | None:
    """A label set with fewer labels than its task kind learns from (one class: nothing to tell apart)."""
    inputs = module.label_sets() if hasattr(module, "label_sets") else {}
    for key, kind in _label_kinds(module).items():
        task = _task_reading(kind)
        needs = task.label_needs if task is not None else None
        if needs is None or key not in inputs:
            continue
        names = task.label_names(inputs[key])
        if len(names) < needs.minimum:
            shown = f" ({', '.join(repr(n) for n in names[:5])})" if names else ""
            noun = needs.noun if len(names) == 1 else needs.plural
            return (
                f"{prefix}: the train split has {len(names)} {noun}{shown}: {needs.learner} needs at least "
                f"{needs.minimum} (expected data with {needs.minimum} or more)"
            )
    return None


# --- what data and tasks hold ---------------------------------------------------------------------------------


def _task_reading(label_kind: str) -> Any:
    """The registered task class whose labels ``label_kind`` names (the task of that kind: label kinds are named
    after the task that defines them; other tasks may read them too, a plug-in's counting task detection boxes), or
    None."""
    return next((task for task in head_tasks() if task.kind == label_kind), None)


def _label_kinds(module: Any) -> dict[str, str]:
    """``{batch key: task kind}`` of a data module; empty for a plug-in's module that does not say."""
    kinds = getattr(module, "label_kinds", None)
    return kinds() if callable(kinds) else {}


def _label_kinds_read(task: Any) -> dict[tuple[str, str], str | None]:
    """``{(source, batch key): label kind}`` the task reads (None: any): a multi-task model's heads, or
    ``("", "target")``."""
    specs = getattr(task, "specs", None)
    if specs:
        return {(spec.data, spec.labels): task.head_tasks[name].label_kind for name, spec in specs.items()}
    return {("", "target"): task.label_kind}


def _split_key(module: Any, split: str) -> str:
    """The config key naming ``split`` (``splits.val`` for COCO data, ``val_split`` for the others)."""
    return getattr(module, "split_key", "{split}_split").format(split=split)
