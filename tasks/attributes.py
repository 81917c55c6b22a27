"""Face attributes task: multi-label prediction with optional distillation (MobileNets paper Sec. 4.5).

The paper trained small MobileNets for face attributes by distilling a large teacher: the student mimics the
teacher's outputs, so it can learn from images without labels. Here the loss mixes ground-truth BCE (with an
optional per-attribute ``pos_weight`` from the training split's positive rates) and the teacher's soft
targets (``mobivision.heads.attributes.attribute_loss``). Validation reports mean AP (the paper's metric),
mean accuracy and balanced accuracy, and tunes one decision threshold per attribute on the validation split;
the thresholds are saved in the checkpoint and used by test and predict.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F

from mobivision import create_attribute_model
from mobivision.errors import ConfigError
from mobivision.evaluation.attributes import AttributeEvaluator
from mobivision.evaluation.evaluator import Evaluator
from mobivision.export.graphs import ExportGraph, SingleOutput
from mobivision.heads.attributes import attribute_loss, positive_weight
from mobivision.tasks.base import LabelNeeds, PrimaryMetric, TaskModule, describe_value


class AttributeTask(TaskModule):
    """Multi-label attribute classifier; logs ``train/loss`` (+ ``bce``, ``distill``), ``*/mAP``, ``*/mean_acc``,
    ``*/balanced_acc``.

    Args:
        attribute_names: Attribute names in output order; kept in the checkpoint.
        positive_rate: Each attribute's positive rate in the training split (from the data module).
        pos_weight: Weigh positives by negatives/positives per attribute (``pos_weight`` of BCE), for imbalanced
            attributes; clamped to ``[1 / max_pos_weight, max_pos_weight]``.
        teacher: Distillation: ``{"checkpoint": path to any mobivision attribute checkpoint, "weight": share of the
            teacher term on labeled images (0: plain BCE, 1: teacher only), "temperature": T}``; None: no teacher.
        threshold_criterion: What the per-attribute thresholds maximise on validation: ``accuracy`` or
            ``balanced_accuracy``.
        **See ``TaskModule`` for the shared arguments.**
    """

    kind: ClassVar[str] = "attributes"
    decoder: ClassVar[str] = "mobivision.inference.decode:decode_attributes"
    primary_metric: ClassVar[PrimaryMetric] = PrimaryMetric("mAP", "max")
    label_kind: ClassVar[str] = "attributes"
    label_needs: ClassVar[LabelNeeds] = LabelNeeds(1, "attribute", "attributes", "the attributes task")  # yes/no each

    @classmethod
    def label_names(cls, inputs: dict[str, Any]) -> list[str]:
        return list(inputs.get("attribute_names") or [])

    def __init__(
        self,
        *,
        attribute_names: list[str],
        positive_rate: list[float] | None = None,
        pos_weight: bool = False,
        max_pos_weight: float = 10.0,
        teacher: dict[str, Any] | None = None,
        threshold_criterion: str = "accuracy",
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.save_hyperparameters()
        self.class_names = list(attribute_names)
        if pos_weight and positive_rate is None:
            raise ConfigError("task.pos_weight needs the training split's positive rates (data has no train split)")
        if threshold_criterion not in ("accuracy", "balanced_accuracy"):
            raise ConfigError(
                f"task.threshold_criterion must be accuracy or balanced_accuracy, got {threshold_criterion!r}"
            )
        self.teacher_cfg = _teacher_options(teacher)
        self.threshold_criterion = threshold_criterion
        num_attributes = len(self.class_names)
        options = dict(self.backbone_cfg)
        self.model = create_attribute_model(options.pop("name"), num_attributes=num_attributes, **options)
        self.model.pretrained_cfg["classes"] = self.class_names
        weight = positive_weight(positive_rate, max_weight=max_pos_weight) if pos_weight else None
        self.register_buffer("pos_weight", weight, persistent=False)
        # Tuned on validation; kept in the checkpoint by on_save_checkpoint (a plain tensor, not a buffer, so
        # weight averaging (EMA) never averages it).
        self.thresholds = torch.full((num_attributes,), 0.5)

    @property
    def chance_level(self) -> dict[str, float]:
        """What guessing scores: mean AP of random scores (= mean positive rate) and mean accuracy of always
        answering each attribute's majority value, from the training split's positive rates."""
        rates = self.hparams.positive_rate
        if not rates:
            return {}
        return {"mAP": sum(rates) / len(rates), "mean_acc": sum(max(r, 1 - r) for r in rates) / len(rates)}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    # --- teacher -------------------------------------------------------------------------------------------

    def setup(self, stage: str) -> None:
        if stage != "fit":
            return
        unlabeled = getattr(self.trainer.datamodule, "unlabeled_count", 0) if self.trainer.datamodule else 0
        if unlabeled and self.teacher_cfg is None:
            raise ConfigError(
                f"{unlabeled} training images have no labels; they need a teacher (task.teacher.checkpoint=...), "
                "or leave them out with data.keep_unlabeled=false"
            )
        if self.teacher_cfg is not None and "teacher" not in self.__dict__:
            # Kept out of the module tree on purpose: the frozen teacher must not be saved in the student's
            # checkpoints, optimised, wrapped by DDP or restored on resume.
            self.__dict__["teacher"] = _load_teacher(self.teacher_cfg["checkpoint"], self.class_names)

    def on_fit_start(self) -> None:
        if "teacher" in self.__dict__:
            self.__dict__["teacher"].model.to(self.device)

    def _teacher_logits(self, images: torch.Tensor) -> torch.Tensor | None:
        """The teacher's logits of the student's attributes, on the images pre-processed the teacher's way."""
        teacher = self.__dict__.get("teacher")
        if teacher is None:
            return None
        model, indices, meta = teacher
        mean, std = (torch.tensor(self.data_meta[k], device=images.device).view(1, 3, 1, 1) for k in ("mean", "std"))
        pixels = images * std + mean
        if meta["resolution"] != images.shape[-1]:
            size = (meta["resolution"], meta["resolution"])
            pixels = F.interpolate(pixels, size=size, mode="bilinear", antialias=True, align_corners=False)
        t_mean, t_std = (torch.tensor(meta[k], device=images.device).view(1, 3, 1, 1) for k in ("mean", "std"))
        with torch.no_grad():
            return model((pixels - t_mean) / t_std)[:, indices]

    # --- steps ---------------------------------------------------------------------------------------------

    def loss(self, outputs: torch.Tensor, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Masked BCE, mixed with the teacher's soft targets when there is a teacher."""
        teacher_logits = self._teacher_logits(batch["image"])
        options = self.teacher_cfg or {}
        return attribute_loss(
            outputs.float(),
            batch["target"],
            pos_weight=self.pos_weight,
            teacher_logits=None if teacher_logits is None else teacher_logits.float(),
            teacher_weight=options.get("weight", 0.0),
            temperature=options.get("temperature", 1.0),
        )

    def evaluate_outputs(
        self, evaluator: Evaluator, outputs: torch.Tensor, batch: dict[str, Any]
    ) -> dict[str, torch.Tensor]:
        """Probabilities into the evaluator; the BCE of the known labels is logged."""
        logits = outputs.float()
        loss = F.binary_cross_entropy_with_logits(logits, batch["target"].nan_to_num(0.0), reduction="none")
        known = ~batch["target"].isnan()
        self.update_evaluator(evaluator, (logits,), batch)
        return {"loss": loss[known].mean()}

    # --- protocol ------------------------------------------------------------------------------------------

    def make_evaluator(self, dataset: Any, stage: str) -> AttributeEvaluator:
        """Validation tunes the thresholds on the whole split first (every process sees all of it); test and
        export score at the thresholds kept in the checkpoint."""
        tune = self.threshold_criterion if stage == "val" else None
        return AttributeEvaluator(self.class_names, thresholds=self.thresholds, tune=tune)

    def update_evaluator(self, evaluator: Evaluator, outputs: Sequence[torch.Tensor], batch: dict[str, Any]) -> None:
        evaluator.update(outputs[0].float().sigmoid(), batch)

    def on_evaluated(self, stage: str, evaluator: Evaluator) -> None:
        self.thresholds = evaluator.thresholds

    def export_graphs(self) -> dict[str, ExportGraph]:
        meaning = "[B, attributes] logits; sigmoid gives probabilities, present where >= attribute_thresholds"
        return {"model": ExportGraph(SingleOutput(self.model), ["logits"], {"logits": meaning})}

    def export_metadata(self) -> dict[str, Any]:
        return {
            "attribute_names": self.class_names,
            "attribute_thresholds": [round(float(t), 6) for t in self.thresholds],
        }

    def describe_target(self, target: Any) -> str:
        unknown = int(target.isnan().sum())
        return describe_value(target) + (f", {unknown} unknown (NaN)" if unknown else "")

    # --- checkpoint ----------------------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["mobivision"]["attribute_thresholds"] = self.thresholds.tolist()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        thresholds = checkpoint.get("mobivision", {}).get("attribute_thresholds")
        if thresholds is not None:
            self.thresholds = torch.tensor(thresholds, dtype=torch.float32)


def _teacher_options(teacher: dict[str, Any] | None) -> dict[str, Any] | None:
    if teacher is None or teacher.get("checkpoint") is None:
        return None
    unknown = sorted(set(teacher) - {"checkpoint", "weight", "temperature"})
    if unknown:
        raise ConfigError(f"task.teacher: unknown keys {unknown}; expected checkpoint, weight, temperature")
    options = {"weight": 0.5, "temperature": 1.0, **teacher}
    if not 0.0 <= options["weight"] <= 1.0:
        raise ConfigError(f"task.teacher.weight must be in [0, 1], got {options['weight']}")
    if options["temperature"] <= 0:
        raise ConfigError(f"task.teacher.temperature must be > 0, got {options['temperature']}")
    return options


class Teacher(NamedTuple):
    """A frozen teacher: its network, the indices of the student's attributes among its outputs, and its
    pre-processing (``data_meta``: resolution, mean, std)."""

    model: torch.nn.Module
    indices: list[int]
    meta: dict[str, Any]


def _load_teacher(checkpoint: str, attribute_names: list[str]) -> Teacher:
    """The teacher of ``attribute_names`` from any mobivision attribute checkpoint."""
    from mobivision.tasks.runner import load_task  # the runner imports the task modules; import it late

    teacher = load_task(checkpoint)
    if not isinstance(teacher, AttributeTask):
        raise ConfigError(f"task.teacher.checkpoint {checkpoint} is a {type(teacher).__name__}, not an attribute model")
    missing = [name for name in attribute_names if name not in teacher.class_names]
    if missing:
        raise ConfigError(f"task.teacher.checkpoint {checkpoint} does not predict the attributes {missing}")
    model = teacher.model.eval().requires_grad_(False)
    return Teacher(model, [teacher.class_names.index(name) for name in attribute_names], teacher.data_meta)
