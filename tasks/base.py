"""``TaskModule``: the task protocol every head plugs into, and what all tasks share.

The tools (train, eval, predict, export, check, collect, benchmark) know tasks only through this protocol, never
by class (ARCHITECTURE.md, "The task protocol"). A task declares, in its own module:

- ``kind`` and ``primary_metric`` (name and mode): what export, collect and benchmark report;
- ``make_evaluator(dataset, stage)`` and ``update_evaluator(evaluator, outputs, batch)``: an
  ``mobivision.evaluation.evaluator.Evaluator`` that owns the split's ground truth; the validation and test loops
  here gather it from every process, log ``<stage>/<metric>``, and ``write_evaluation`` writes its reports;
- ``export_graphs()``: the deployable networks (images -> named outputs) with what each output means, and
  ``export_metadata()``: what a runtime needs besides pre-processing (label map, thresholds, cells...);
  ``update_evaluator`` takes exactly the main graph's outputs, so the INT8 check scores ONNX Runtime's outputs;
- ``loss(outputs, batch)``: the training losses of the network's outputs (the shared training step logs them);
- ``graph_outputs_from(outputs)`` and ``evaluate_outputs(evaluator, outputs, batch)``: the network's outputs as the
  main graph's, fed to the evaluator (the shared evaluation step; a multi-task model calls them per head);
- ``decoder``: where the torch-free function lives (``"module:function"``) that turns the main graph's outputs
  into per-image results (``mobivision.inference``: JSON entries, the printed line, the picture); export writes it
  into the file's metadata, so a checkpoint and its ONNX file are decoded by the same code;
- ``describe_target(target)``: what ``check`` prints of a batch's targets (``describe_batch``: of the whole batch);
- ``label_kind``, ``label_needs`` and ``label_names(inputs)``: which data labels it reads and the fewest it learns
  anything from (``tasks/data_checks.py`` refuses data with fewer before any step); None: not checked;
- ``backbone_taps(arch)``: the backbone endpoints its network reads (a multi-task model's shared backbone returns
  every head's); ``side_file`` / ``side_data()``: a JSON file exported beside the graphs for its decoder (geo: the
  cells).

Generic code asks these declarations and keeps no table of kinds: a new head kind is its task's module (with its
network and decoder), its configs and its entry point in the group ``mobivision.tasks`` (``tasks/registry.py``).

A task builds its network from plain configs (``backbone``, ``optimizer``, ``scheduler`` dicts), calls
``save_hyperparameters()`` so ``Task.load_from_checkpoint(path)`` needs no arguments, and exposes ``self.model``
with a ``backbone`` attribute (used for the parameter groups and by the freeze callback).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import numpy as np
import torch
from torch import nn

import mobivision
from mobivision.data.detection_transforms import detection_eval_transform
from mobivision.data.transforms import classification_eval_transform
from mobivision.evaluation.evaluator import Evaluator
from mobivision.export.graphs import ExportGraph
from mobivision.factory import last_feature_map
from mobivision.optim import build_optimizer, build_scheduler, parameter_groups


@dataclass(frozen=True)
class LabelNeeds:
    """The fewest labels a task learns anything from, and how messages name them: ``minimum`` 2, ``noun``
    ``class`` (plural ``classes``), ``learner`` ``a classifier``."""

    minimum: int
    noun: str
    plural: str
    learner: str


@dataclass(frozen=True)
class PrimaryMetric:
    """The metric that ranks checkpoints of a task: its name (without stage prefix) and ``max`` or ``min``."""

    name: str
    mode: str = "max"


class TaskModule(L.LightningModule):
    """Base Lightning module; subclasses set ``self.model``, the training step and the protocol members.

    Args:
        backbone: Model options passed to ``mobivision.create_model`` / ``create_backbone``.
        optimizer: ``{"name": sgd|rmsprop|adamw, "lr": ..., "weight_decay": ..., ...}``.
        scheduler: ``{"name": cosine|step|constant, "warmup_epochs": ..., ...}``.
        backbone_lr_mult: Learning-rate multiplier of the backbone groups (fine-tuning).
        data_meta: What inference needs from the data: resolution, mean, std (and crop_pct).
        run_config: The resolved run configuration, kept in the checkpoint for reproducibility.
    """

    kind: ClassVar[str]
    primary_metric: ClassVar[PrimaryMetric]
    decoder: ClassVar[str]  # "module:function" decoding the main graph's outputs (mobivision/inference/decode.py)
    default_resolution: ClassVar[int] = 224
    label_kind: ClassVar[str | None] = None  # the data labels it reads (a data module's ``label_kinds()``); None: any
    label_needs: ClassVar[LabelNeeds | None] = None
    side_file: ClassVar[str | None] = None  # ``<name>.<side_file>.json`` beside the graphs holds ``side_data()``
    model: nn.Module

    def __init__(
        self,
        *,
        backbone: dict[str, Any],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any],
        backbone_lr_mult: float = 1.0,
        data_meta: dict[str, Any] | None = None,
        run_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.backbone_cfg = dict(backbone)
        self.optimizer_cfg = dict(optimizer)
        self.scheduler_cfg = dict(scheduler)
        self.backbone_lr_mult = backbone_lr_mult
        self.data_meta = dict(data_meta or {})
        self.evaluator: Evaluator | None = None
        size = self.input_size
        self.example_input_array = torch.zeros(1, 3, *size)  # model summary: shapes, FLOPs

    # --- protocol: what each task declares ----------------------------------------------------------------

    def make_evaluator(self, dataset: Any, stage: str) -> Evaluator:
        """A fresh evaluator of ``dataset`` for ``stage`` (``val``, ``test``; export scores as ``test``)."""
        raise NotImplementedError

    def update_evaluator(self, evaluator: Evaluator, outputs: Sequence[torch.Tensor], batch: dict[str, Any]) -> None:
        """Feed ``evaluator`` the outputs of ``export_graphs()["model"]`` on ``batch["image"]``."""
        raise NotImplementedError

    def export_graphs(self) -> dict[str, ExportGraph]:
        """``{"model": the main graph}`` plus any extra deployable graph (detectors: ``"nms"``)."""
        raise NotImplementedError

    def export_metadata(self) -> dict[str, Any]:
        """Task entries of an exported file's metadata (label map, thresholds, decoding options...)."""
        return {"class_names": list(getattr(self, "class_names", []))}

    def file_metadata(self, graph: ExportGraph, *, checkpoint: str | Path | None = None) -> dict[str, Any]:
        """What a runtime needs to use ``graph`` (an exported file's metadata, and a checkpoint's in
        ``mobivision.load``): pre-processing, output meanings, how to decode, and the task's own entries."""
        meta = self.data_meta
        run = (self.hparams.get("run_config") or {}).get("task_name")
        entries: dict[str, Any] = {
            "mobivision_version": mobivision.__version__,
            "task": f"{type(self).__module__}.{type(self).__qualname__}",
            "task_kind": self.kind,
            **self.decoding_metadata(),
            "input_size": list(self.input_size),
            "layout": "NCHW",
            "channel_order": "RGB",
            "value_range": "[0, 1] before normalisation (pixel / 255)",
            "mean": list(meta["mean"]),
            "std": list(meta["std"]),
            "preprocessing": self.preprocessing_text(),
            "outputs": graph.meanings,
            "backbone": {k: v for k, v in self.backbone_cfg.items() if k != "pretrained"},
        }
        if self.crop_pct is not None:
            entries["crop_pct"] = self.crop_pct
        if checkpoint is not None:
            entries["source_checkpoint"] = str(checkpoint)
        if run:
            entries["run"] = run
        return entries | self.export_metadata()

    def decoding_metadata(self) -> dict[str, Any]:
        """The metadata entries that tell a runtime how to decode this task's outputs: ``decoder`` (and
        ``side_file``, the suffix of the JSON beside the graph that the decoder also reads)."""
        return {"decoder": self.decoder} | ({"side_file": self.side_file} if self.side_file else {})

    def export_side_files(self, out_dir: Path, name: str) -> list[Path]:
        """Files written beside the exported graphs: ``<name>.<side_file>.json`` holding ``side_data()`` if the task
        declares a ``side_file``, else none."""
        if self.side_file is None:
            return []
        path = Path(out_dir) / f"{name}.{self.side_file}.json"
        path.write_text(json.dumps(self.side_data()) + "\n")
        return [path]

    def side_data(self) -> Any:
        """What the decoder reads besides the graph's outputs (``side_file``); default none."""
        return None

    @classmethod
    def label_names(cls, inputs: dict[str, Any]) -> list[str]:
        """The labels of one label set (the task's inputs from the data): its class names by default."""
        return list(inputs.get("class_names") or [])

    @classmethod
    def backbone_taps(cls, arch: str) -> tuple[str, ...]:
        """The endpoints of backbone ``arch`` its network reads at output stride 32: the last feature map."""
        return (last_feature_map(arch),)

    def compiled_modules(self) -> list[nn.Module]:
        """What the ``compile`` training option compiles (``nn.Module.compile``: same weights, same names): the
        network, whose call is the task's forward."""
        return [self.model]

    def loss(self, outputs: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Training losses of the network's ``outputs`` on ``batch``: ``"loss"`` (minimised) and any terms to log."""
        raise NotImplementedError

    def graph_outputs_from(self, outputs: Any) -> tuple[torch.Tensor, ...]:
        """The outputs ``export_graphs()["model"]`` computes, from the network's ``outputs`` (default: as they are)."""
        return tuple(outputs) if isinstance(outputs, list | tuple) else (outputs,)

    def evaluate_outputs(self, evaluator: Evaluator, outputs: Any, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Feed ``evaluator`` the network's ``outputs`` on ``batch``; returns values to log (a task's loss)."""
        self.update_evaluator(evaluator, self.graph_outputs_from(outputs), batch)
        return {}

    def describe_batch(self, batch: dict[str, Any]) -> str:
        """What ``check`` prints of a training batch: ``image float32 [32, 3, 64, 64] in [-1.00, 1.00]; target ...``."""
        parts = [f"image {describe_value(batch['image'])}"]
        if batch.get("target") is not None:
            parts.append(f"target {self.describe_target(batch['target'])}")
        return "; ".join(parts)

    def describe_target(self, target: Any) -> str:
        """What ``check`` prints of one batch's targets."""
        text = describe_value(target)
        if isinstance(target, torch.Tensor) and not target.is_floating_point() and target.dim() == 1:
            classes = torch.unique(target)
            text += f", {len(classes)} distinct classes ({int(classes.min())}..{int(classes.max())})"
        return text

    @property
    def chance_level(self) -> float | dict[str, float] | None:
        """What guessing scores, printed beside the results (None: not stated)."""
        return None

    # --- pre-processing ---------------------------------------------------------------------------------------

    @property
    def input_size(self) -> tuple[int, int]:
        """``(height, width)`` the network is evaluated and exported at."""
        resolution = int(self.data_meta.get("resolution", self.default_resolution))
        return resolution, resolution

    @property
    def crop_pct(self) -> float | None:
        """Share of the resized image the evaluation crop keeps; None: the whole image resized (detection data)."""
        return self.data_meta.get("crop_pct", 0.875)

    @cached_property
    def _eval_transform(self) -> Any:
        """The evaluation transform of the task's data (built once: ``data_meta`` does not change)."""
        mean, std, resolution = tuple(self.data_meta["mean"]), tuple(self.data_meta["std"]), self.input_size[0]
        if self.crop_pct is None:
            return detection_eval_transform(resolution=resolution, mean=mean, std=std)
        return classification_eval_transform(resolution=resolution, mean=mean, std=std, crop_pct=self.crop_pct)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """One original RGB image as the evaluation transform of the task's data makes it."""
        if self.crop_pct is None:  # the detection transform also maps boxes: give it none
            return self._eval_transform(image=image, bboxes=np.zeros((0, 4)), labels=[])["image"]
        return self._eval_transform(image=image)["image"]

    def preprocessing_text(self) -> str:
        """The pre-processing in words, for exported metadata."""
        height, width = self.input_size
        if self.crop_pct is None:
            steps = f"resize to {width}x{height} (bilinear, aspect ratio not kept)"
        else:
            steps = (
                f"resize the shorter side to round({height} / {self.crop_pct}) = {round(height / self.crop_pct)} px "
                f"(bilinear), centre-crop {width}x{height}"
            )
        return (
            f"RGB image, {steps}, scale pixels to [0, 1] (/ 255), subtract mean, divide by std (per channel), "
            "float32 NCHW"
        )

    # --- evaluation loops (shared by every task) --------------------------------------------------------------

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.evaluation_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self.evaluation_step(batch, "test")

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = self.loss(self(batch["image"]), batch)
        size = len(batch["image"])
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=size)
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "loss"}, batch_size=size)
        return losses["loss"]

    def evaluation_step(self, batch: dict[str, Any], stage: str) -> None:
        logged = self.evaluate_outputs(self.evaluator, self(batch["image"]), batch)
        size = len(batch["image"])
        self.log_dict({f"{stage}/{k}": v for k, v in logged.items()}, batch_size=size, sync_dist=True)

    def on_validation_epoch_start(self) -> None:
        self.evaluator = self.make_evaluator(self.trainer.val_dataloaders.dataset, "val")

    def on_test_epoch_start(self) -> None:
        self.evaluator = self.make_evaluator(self.trainer.test_dataloaders.dataset, "test")

    def on_validation_epoch_end(self) -> None:
        self._finish_evaluation("val")

    def on_test_epoch_end(self) -> None:
        self._finish_evaluation("test")

    def _finish_evaluation(self, stage: str) -> None:
        """Every process's predictions, each image once, scored (on rank 0 and broadcast where expensive)."""
        evaluator = self.evaluator
        if self.trainer.sanity_checking or evaluator is None:
            return
        states = self.gather_from_processes(evaluator.state())
        if evaluator.rank_zero_only:
            metrics = evaluator.compute(states) if self.trainer.is_global_zero else {}
            metrics = self.trainer.strategy.broadcast(metrics)
        else:
            metrics = evaluator.compute(states)
        self.on_evaluated(stage, evaluator)
        if metrics:
            # The values are equal on every process; sync_dist only tells Lightning so.
            self.log_dict(
                {f"{stage}/{k}": float(v) for k, v in metrics.items()}, prog_bar=stage == "val", sync_dist=True
            )

    def on_evaluated(self, stage: str, evaluator: Evaluator) -> None:
        """Hook after an evaluation (attributes: keep the thresholds tuned on validation)."""

    def write_evaluation(self, output_dir: Path, split: str) -> list[Path]:
        """The last evaluation's report files (call on rank 0 after a test run)."""
        return self.evaluator.write_report(Path(output_dir), split) if self.evaluator is not None else []

    def gather_from_processes(self, value: Any) -> list[Any]:
        """``value`` of every process (rank order), for evaluations that must see all predictions at once."""
        if self.trainer.world_size == 1:
            return [value]
        gathered: list[Any] = [None] * self.trainer.world_size
        torch.distributed.all_gather_object(gathered, value)
        return gathered

    # --- optimisation and checkpoints -----------------------------------------------------------------------

    def optimizer_parts(self) -> dict[str, tuple[nn.Module, float]]:
        """What the optimizer's parameter groups are made of: ``{name: (module, learning-rate multiplier)}``."""
        head = nn.ModuleList(m for name, m in self.model.named_children() if name != "backbone")
        return {"backbone": (self.model.backbone, self.backbone_lr_mult), "head": (head, 1.0)}

    def configure_optimizers(self) -> dict[str, Any]:
        groups = parameter_groups(
            self.optimizer_parts(),
            lr=self.optimizer_cfg["lr"],
            weight_decay=self.optimizer_cfg.get("weight_decay", 0.0),
        )
        optimizer = build_optimizer(groups, **self.optimizer_cfg)
        total = int(self.trainer.estimated_stepping_batches)
        steps_per_epoch = max(total // max(self.trainer.max_epochs or 1, 1), 1)
        scheduler = build_scheduler(optimizer, total_steps=total, steps_per_epoch=steps_per_epoch, **self.scheduler_cfg)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["mobivision"] = {"task": f"{type(self).__module__}.{type(self).__qualname__}"}  # registry.py
        # The weights are in the state dict: a re-load must not look for the original pretrained file.
        backbone = checkpoint.get("hyper_parameters", {}).get("backbone")
        if isinstance(backbone, dict):
            backbone["pretrained"] = None


def describe_value(value: Any) -> str:
    """``float32 [32, 3, 64, 64] in [-1.00, 1.00]`` for a tensor; containers item by item."""
    if isinstance(value, torch.Tensor):
        text = f"{str(value.dtype).removeprefix('torch.')} {list(value.shape)}"
        if value.is_floating_point() and value.numel():
            finite = value[torch.isfinite(value)]
            if finite.numel():
                text += f" in [{float(finite.min()):.2f}, {float(finite.max()):.2f}]"
        return text
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple target
        return ", ".join(f"{name} {describe_value(v)}" for name, v in zip(value._fields, value, strict=True))
    if isinstance(value, list | tuple):
        return f"{type(value).__name__} of {len(value)}: " + ", ".join(describe_value(v) for v in value[:3])
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {describe_value(v)}" for k, v in value.items()) + "}"
    return type(value).__name__
