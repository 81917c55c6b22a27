"""``MultiTask``: one shared backbone under several heads, trained, evaluated, predicted and exported as one.

Each head is driven by the task of its kind (``task.heads.<name>.kind``: ``detection``, ``classification``,
``attributes``, ``geo`` or a registered plug-in's), so its loss, evaluator, predictions and export outputs are that
task's own; this module only routes. Per batch of a data source the backbone runs once, and each head reading that
source computes its outputs from the shared feature maps (``mobivision.multitask.MultiTaskModel``), on the images
that carry its labels only: an image without a label for a head is left out of that head's loss and evaluation.
The training loss is the weighted sum of the heads' losses; checkpoints are chosen by ``val/score``, the weighted
mean of the heads' primary metrics (``mobivision.evaluation.multitask``). ARCHITECTURE.md, "One backbone, many
heads".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from mobivision.errors import ConfigError
from mobivision.evaluation.evaluator import Evaluator
from mobivision.evaluation.multitask import MultiTaskEvaluator
from mobivision.export.graphs import ExportGraph
from mobivision.multitask import MultiTaskModel, share_module, shared_backbone
from mobivision.tasks.base import PrimaryMetric, TaskModule, describe_value
from mobivision.tasks.callbacks import set_frozen
from mobivision.tasks.registry import task_of_kind


@dataclass(frozen=True)
class HeadSpec:
    """One ``task.heads.<name>`` entry.

    Attributes:
        kind: The head's task kind.
        data: The data source it learns from (a key of ``data.sources``).
        labels: The batch key of its labels in that source (``target``; a joint source has more, e.g. ``attributes``).
        loss_weight: Its weight in the summed training loss.
        lr_mult: Learning-rate multiplier of its parameters.
        freeze: Keep its weights and BatchNorm statistics as they are (e.g. loaded with ``init_from``).
        score_weight: Its weight in ``val/score``, the checkpoint-selection metric (0: not counted).
        options: The task's own options (those of its ``configs/task/<kind>.yaml`` besides the shared ones).
    """

    kind: str
    data: str
    labels: str = "target"
    loss_weight: float = 1.0
    lr_mult: float = 1.0
    freeze: bool = False
    score_weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, name: str, config: dict[str, Any]) -> HeadSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ConfigError(f"task.heads.{name}: unknown keys {unknown}; expected some of {sorted(known)}")
        missing = [key for key in ("kind", "data") if config.get(key) is None]
        if missing:
            raise ConfigError(f"task.heads.{name}: missing {missing} (the head's kind and its data source)")
        spec = cls(**config)
        for key in ("loss_weight", "lr_mult", "score_weight"):
            value = getattr(spec, key)
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"task.heads.{name}.{key} must be a number >= 0, got {value!r}")
        return spec


class MultiTask(TaskModule):
    """Several heads on one backbone; logs ``train/loss`` (weighted sum), ``train/<head>/<loss>``,
    ``val/<head>/<metric>`` and ``val/score``.

    Args:
        heads: ``{name: HeadSpec fields}`` (``task.heads``), in order.
        label_sets: ``{source: {batch key: what the task of that label set needs (class names, cells...)}}``, from
            the data (``MultiTaskDataModule.task_inputs``).
        freeze_backbone: Keep the backbone's weights and BatchNorm statistics as they are (adding a head later).
        **See ``TaskModule`` for the shared arguments**; ``data_meta`` is the first data source's pre-processing,
        which prediction and export use (one input for one backbone pass).
    """

    kind: ClassVar[str] = "multitask"
    decoder: ClassVar[str] = ""  # each head is decoded by its own task's decoder
    primary_metric: ClassVar[PrimaryMetric] = PrimaryMetric("score", "max")

    def __init__(
        self,
        *,
        heads: dict[str, dict[str, Any]],
        label_sets: dict[str, dict[str, dict[str, Any]]],
        freeze_backbone: bool = False,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.save_hyperparameters()
        if not heads:
            raise ConfigError("task.heads is empty: a multi-task model needs at least one head")
        self.specs = {name: HeadSpec.parse(name, dict(config)) for name, config in heads.items()}
        for name, spec in self.specs.items():
            if spec.data not in label_sets:
                raise ConfigError(
                    f"task.heads.{name}.data: no data source {spec.data!r}; sources: {sorted(label_sets)}"
                )
            if spec.labels not in label_sets[spec.data]:
                raise ConfigError(
                    f"task.heads.{name}.labels: source {spec.data!r} has no label set {spec.labels!r}; it has "
                    f"{sorted(label_sets[spec.data])}"
                )
        unused = [source for source in label_sets if not any(s.data == source for s in self.specs.values())]
        if unused:
            raise ConfigError(f"data.sources {unused}: no head learns from them (task.heads.<name>.data)")
        self.sources = list(label_sets)
        self.freeze_backbone = freeze_backbone
        options = {k: v for k, v in self.backbone_cfg.items() if k != "name"}
        kinds = {name: task_of_kind(spec.kind) for name, spec in self.specs.items()}
        taps = [tap for kind in kinds.values() for tap in kind.backbone_taps(self.backbone_cfg["name"])]
        body, settings = shared_backbone(self.backbone_cfg["name"], taps, **options)
        head_backbone = {**self.backbone_cfg, **settings, "pretrained": None}  # the shared backbone has the weights
        shared = {"optimizer": self.optimizer_cfg, "scheduler": self.scheduler_cfg, "data_meta": self.data_meta}
        tasks = {
            name: _build_head_task(name, kinds[name], spec, label_sets, backbone=head_backbone, **shared)
            for name, spec in self.specs.items()
        }
        self.model = MultiTaskModel(body, {name: task.model for name, task in tasks.items()}, pretrained_cfg={})
        # The heads' tasks (their buffers: cells, thresholds...) are sub-modules; their networks belong to self.model.
        self.head_tasks = nn.ModuleDict(
            {name: share_module(task, "model", self.model.heads[name]) for name, task in tasks.items()}
        )

    # --- training ------------------------------------------------------------------------------------------

    def forward(self, images: torch.Tensor) -> dict[str, Any]:
        return self.model(images)

    def _heads_of(self, source: str) -> list[str]:
        return [name for name, spec in self.specs.items() if spec.data == source]

    def head_batch(self, batch: dict[str, Any], name: str) -> tuple[dict[str, Any], torch.Tensor | None] | None:
        """The part of a source's ``batch`` that has labels for head ``name`` (``image``, ``target``, ``meta``) and
        the mask of those images (None: every image has them); None when no image has them."""
        key = self.specs[name].labels
        labeled = batch.get("labeled", {}).get(key)
        if labeled is None:
            return {"image": batch["image"], "target": batch[key], "meta": batch["meta"]}, None
        if not bool(labeled.any()):
            return None
        rows = labeled.nonzero().flatten().tolist()
        part = {k: take_rows(batch[k], rows) for k in ("image", "meta")}
        return {**part, "target": take_rows(batch[key], rows)}, labeled

    def _head_runs(self, batch: dict[str, Any], source: str, *, skip_frozen: bool = False):
        """``(head name, its batch, its outputs)`` for every head of ``source`` from one backbone pass."""
        features = self.model.backbone(batch["image"])
        for name in self._heads_of(source):
            if skip_frozen and self.specs[name].freeze:
                continue
            selected = self.head_batch(batch, name)
            if selected is None:
                continue
            part, mask = selected
            head_features = features if mask is None else {k: v[mask] for k, v in features.items()}
            yield name, part, self.model.heads[name].forward_from_features(head_features, part["image"])

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """``batch``: ``{source: that source's batch}`` (every source every step, ``MultiTaskDataModule``)."""
        total, logged = None, {}
        size = sum(len(source_batch["image"]) for source_batch in batch.values())
        for source, source_batch in batch.items():
            for name, part, outputs in self._head_runs(source_batch, source, skip_frozen=True):
                losses = self.head_tasks[name].loss(outputs, part)
                weighted = self.specs[name].loss_weight * losses["loss"]
                total = weighted if total is None else total + weighted
                logged |= {f"train/{name}/{k}": v.detach() for k, v in losses.items()}
        if total is None:
            raise ConfigError("no trainable head has labeled images in this batch (all heads frozen?)")
        self.log("train/loss", total, prog_bar=True, batch_size=size)
        self.log_dict(logged, batch_size=size)
        return total

    def compiled_modules(self) -> list[nn.Module]:
        # The steps call the backbone, then each head's forward_from_features (not a module call).
        return [self.model.backbone]

    def optimizer_parts(self) -> dict[str, tuple[nn.Module, float]]:
        parts = {"backbone": (self.model.backbone, self.backbone_lr_mult)}
        return parts | {name: (self.model.heads[name], spec.lr_mult) for name, spec in self.specs.items()}

    def _frozen_modules(self) -> list[nn.Module]:
        frozen = [self.model.heads[name] for name, spec in self.specs.items() if spec.freeze]
        return frozen + ([self.model.backbone] if self.freeze_backbone else [])

    def setup(self, stage: str) -> None:
        for module in self._frozen_modules():  # before the optimizer is made: frozen weights are left out of it
            set_frozen(module, True)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Lightning switches modules back to train mode after validation; frozen BatchNorm stays in eval mode.
        for module in self._frozen_modules():
            set_frozen(module, True)

    # --- evaluation ----------------------------------------------------------------------------------------

    def validation_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, dataloader_idx, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluate(batch, dataloader_idx, "test")

    def _evaluate(self, batch: dict[str, Any], index: int, stage: str) -> None:
        """A batch of the ``index``-th source (loaders in ``self.sources`` order) into each of its heads'
        evaluators."""
        for name, part, outputs in self._head_runs(batch, self.sources[index]):
            logged = self.head_tasks[name].evaluate_outputs(self.evaluator.parts[name], outputs, part)
            self.log_dict(
                {f"{stage}/{name}/{k}": v for k, v in logged.items()},
                batch_size=len(part["image"]),
                sync_dist=True,
                add_dataloader_idx=False,
            )

    def make_evaluator(self, dataset: Any, stage: str) -> MultiTaskEvaluator:
        """``dataset``: the split's dataset of every source (``self.sources`` order)."""
        by_source = dict(zip(self.sources, dataset, strict=True))
        parts = {
            name: self.head_tasks[name].make_evaluator(by_source[spec.data], stage) for name, spec in self.specs.items()
        }
        primary = {
            name: (type(t).primary_metric.name, type(t).primary_metric.mode) for name, t in self.head_tasks.items()
        }
        weights = {name: spec.score_weight for name, spec in self.specs.items()}
        return MultiTaskEvaluator(parts, primary, weights)

    def update_evaluator(self, evaluator: Evaluator, outputs: Sequence[torch.Tensor], batch: dict[str, Any]) -> None:
        """``outputs``: the export graph's (every head's, flat); ``batch`` of the source ``batch["source"]`` (export's
        INT8 check drives this with ONNX Runtime's outputs)."""
        start = 0
        for name, names in self.output_names.items():
            mine, start = outputs[start : start + len(names)], start + len(names)
            if self.specs[name].data != batch["source"]:
                continue
            selected = self.head_batch(batch, name)
            if selected is not None:
                part, mask = selected
                if mask is not None:  # per-image outputs only: constant outputs (a detector's anchors) stay whole
                    mine = [o[mask] if o.shape[:1] == mask.shape else o for o in mine]
                self.head_tasks[name].update_evaluator(evaluator.parts[name], mine, part)

    def on_validation_epoch_start(self) -> None:
        self.evaluator = self.make_evaluator(
            [loader.dataset for loader in _loaders(self.trainer.val_dataloaders)], "val"
        )

    def on_test_epoch_start(self) -> None:
        self.evaluator = self.make_evaluator(
            [loader.dataset for loader in _loaders(self.trainer.test_dataloaders)], "test"
        )

    def on_evaluated(self, stage: str, evaluator: Evaluator) -> None:
        for name, part in evaluator.parts.items():
            self.head_tasks[name].on_evaluated(stage, part)

    @property
    def chance_level(self) -> dict[str, float] | None:
        """Each head's chance levels, ``<head>/<metric>`` (None: no head states one)."""
        levels: dict[str, float] = {}
        for name, task in self.head_tasks.items():
            level = task.chance_level
            if isinstance(level, dict):
                levels |= {f"{name}/{k}": v for k, v in level.items()}
            elif level is not None:
                levels[f"{name}/{type(task).primary_metric.name}"] = level
        return levels or None

    # --- prediction and export -----------------------------------------------------------------------------

    def graph_outputs_from(self, outputs: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        return tuple(t for name, task in self.head_tasks.items() for t in task.graph_outputs_from(outputs[name]))

    @cached_property
    def output_names(self) -> dict[str, list[str]]:
        """Each head's outputs in the export graph, in order: ``<head>.<output of its main graph>``."""
        return {
            name: [f"{name}.{output}" for output in task.export_graphs()["model"].output_names]
            for name, task in self.head_tasks.items()
        }

    def export_graphs(self) -> dict[str, ExportGraph]:
        """One graph, one backbone pass: every head's main-graph outputs named ``<head>.<output>``."""
        meanings = {
            f"{name}.{output}": f"head {name}: {text}"
            for name, task in self.head_tasks.items()
            for output, text in task.export_graphs()["model"].meanings.items()
        }
        names = [output for outputs in self.output_names.values() for output in outputs]
        return {"model": ExportGraph(MultiTaskOutputs(self), names, meanings)}

    def export_metadata(self) -> dict[str, Any]:
        return {
            "heads": {
                name: {
                    "kind": task.kind,
                    **task.decoding_metadata(),
                    "outputs": self.output_names[name],
                    **task.export_metadata(),
                }
                for name, task in self.head_tasks.items()
            }
        }

    def export_side_files(self, out_dir: Path, name: str) -> list[Path]:
        return [f for head, task in self.head_tasks.items() for f in task.export_side_files(out_dir, f"{name}.{head}")]

    def describe_batch(self, batch: dict[str, Any]) -> str:
        """Per source its images, and each head's labels as that head's task shows them."""
        parts = []
        for source, source_batch in batch.items():
            heads = [
                f"{name} {self.head_tasks[name].describe_target(source_batch[self.specs[name].labels])}"
                for name in self._heads_of(source)
            ]
            parts.append(f"{source}: image {describe_value(source_batch['image'])}; " + "; ".join(heads))
        return " | ".join(parts)

    # --- checkpoint ----------------------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        heads = {}
        for name, task in self.head_tasks.items():
            part: dict[str, Any] = {}
            task.on_save_checkpoint(part)
            heads[name] = part["mobivision"]
        checkpoint["mobivision"]["heads"] = heads

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        for name, state in checkpoint.get("mobivision", {}).get("heads", {}).items():
            if name in self.head_tasks:
                self.head_tasks[name].on_load_checkpoint({"mobivision": state})


class MultiTaskOutputs(nn.Module):
    """The export graph: images -> every head's main-graph outputs, flat, from one backbone pass.

    Holds the network (a plain module) and the heads' ``graph_outputs_from`` as plain callables: the heads' tasks are
    Lightning modules, which tracers cannot walk; their constants (a geolocator's parent cells) enter the graph as
    constants.
    """

    def __init__(self, task: MultiTask) -> None:
        super().__init__()
        self.model = task.model
        self.converters = {name: head.graph_outputs_from for name, head in task.head_tasks.items()}

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(images)
        return tuple(t for name, convert in self.converters.items() for t in convert(outputs[name]))


def _build_head_task(
    name: str, task_class: type[TaskModule], spec: HeadSpec, label_sets: dict[str, Any], **common: Any
) -> TaskModule:
    """The task of head ``name``, from its options and its label set's inputs (class names, cells...)."""
    inputs = label_sets[spec.data][spec.labels]
    try:
        return task_class(**common, **spec.options, **inputs)
    except TypeError as exc:  # a label set of another kind (detection boxes for a classifier), or a wrong option
        raise ConfigError(
            f"task.heads.{name} ({spec.kind}) cannot be built from label set {spec.labels!r} of source {spec.data!r} "
            f"(it holds {sorted(inputs)}) with options {sorted(spec.options)}: {exc}"
        ) from exc


def take_rows(value: Any, rows: Sequence[int]) -> Any:
    """The ``rows`` of a collated batch value: a tensor's rows, a list's items (one per image, as detection batches
    hold targets and metas), a dict's or named tuple's values."""
    if isinstance(value, torch.Tensor):
        return value[rows]
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(take_rows(v, rows) for v in value))
    if isinstance(value, dict):
        return {k: take_rows(v, rows) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [value[i] for i in rows]
    raise TypeError(f"cannot select rows of a {type(value).__name__}")


def _loaders(loaders: Any) -> list[Any]:
    return list(loaders) if isinstance(loaders, list | tuple) else [loaders]
