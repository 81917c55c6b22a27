"""Face attributes task: multi-label prediction with optional distillation (MobileNets paper Sec. 4.5).

The paper trained small MobileNets for face attributes by distilling a large teacher: the student mimics the
teacher's outputs, so it can learn from images without labels. Here the loss mixes ground-truth BCE (with an
optional per-attribute ``pos_weight`` from the training split's positive rates) and the teacher's soft
targets (``mobivision.heads.attributes.attribute_loss``). Validation reports mean AP (the paper's metric),
mean accuracy and balanced accuracy, and tunes one decision threshold per attribute on the validation split;
the thresholds are saved in the checkpoint and used by test and predict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from mobivision import create_model
from mobivision.errors import ConfigError
from mobivision.evaluation.attributes import attribute_metrics, tune_thresholds, write_attribute_report
from mobivision.heads.attributes import attribute_loss, decide, positive_weight
from tasks.base import TaskModule


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
        self.model = create_model(num_classes=num_attributes, **self.backbone_cfg)
        self.model.pretrained_cfg["classes"] = self.class_names
        weight = positive_weight(positive_rate, max_weight=max_pos_weight) if pos_weight else None
        self.register_buffer("pos_weight", weight, persistent=False)
        # Tuned on validation; kept in the checkpoint by on_save_checkpoint (a plain tensor, not a buffer, so
        # weight averaging (EMA) never averages it).
        self.thresholds = torch.full((num_attributes,), 0.5)
        resolution = self.data_meta.get("resolution", 224)
        self.example_input_array = torch.zeros(1, 3, resolution, resolution)
        self._outputs: list[tuple[torch.Tensor, torch.Tensor, list[str]]] = []
        self.last_evaluation: dict[str, Any] = {}

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

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor, images: torch.Tensor) -> dict[str, torch.Tensor]:
        teacher_logits = self._teacher_logits(images)
        options = self.teacher_cfg or {}
        return attribute_loss(
            logits.float(),
            targets,
            pos_weight=self.pos_weight,
            teacher_logits=None if teacher_logits is None else teacher_logits.float(),
            teacher_weight=options.get("weight", 0.0),
            temperature=options.get("temperature", 1.0),
        )

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = self._loss(self(batch["image"]), batch["target"], batch["image"])
        size = len(batch["target"])
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=size)
        self.log_dict({f"train/{k}": losses[k] for k in ("bce", "distill")}, batch_size=size)
        return losses["loss"]

    def _eval_step(self, batch: dict[str, Any], stage: str) -> None:
        logits = self(batch["image"]).float()
        loss = F.binary_cross_entropy_with_logits(logits, batch["target"].nan_to_num(0.0), reduction="none")
        known = ~batch["target"].isnan()
        self.log(f"{stage}/loss", loss[known].mean(), batch_size=len(logits), sync_dist=True)
        self._outputs.append((logits.sigmoid().cpu(), batch["target"].cpu(), batch["meta"]["path"]))

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self._outputs = []

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        """Tune the thresholds on the whole validation split (every process sees all of it), then score."""
        evaluation = self.gather_per_image(self._outputs)
        self._outputs = []
        if self.trainer.sanity_checking or not evaluation["paths"]:
            return
        self.thresholds = tune_thresholds(
            evaluation["probabilities"], evaluation["targets"], criterion=self.threshold_criterion
        )
        self._log_metrics("val", evaluation)

    def on_test_epoch_end(self) -> None:
        evaluation = self.gather_per_image(self._outputs)
        self._outputs = []
        if evaluation["paths"]:
            self._log_metrics("test", evaluation)

    def _log_metrics(self, stage: str, evaluation: dict[str, Any]) -> None:
        metrics = attribute_metrics(evaluation["probabilities"], evaluation["targets"], self.thresholds)
        # Every process computed the same values from the same gathered outputs.
        self.log_dict(metrics.summary(f"{stage}/"), prog_bar=stage == "val", sync_dist=True)
        self.last_evaluation = {**evaluation, "metrics": metrics}

    def write_evaluation(self, output_dir: Path, split: str) -> list[Path]:
        """After a test run: the per-attribute table (Markdown + CSV) and every image's probabilities."""
        if not self.last_evaluation:
            return []
        return write_attribute_report(
            output_dir,
            split,
            probabilities=self.last_evaluation["probabilities"],
            targets=self.last_evaluation["targets"],
            thresholds=self.thresholds,
            attribute_names=self.class_names,
            images=self.last_evaluation["paths"],
        )

    def predict_attributes(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities and decisions (at the tuned thresholds) for a batch of pre-processed images."""
        probabilities = self(images).float().sigmoid()
        return probabilities, decide(probabilities, self.thresholds.to(probabilities.device))

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        probabilities, present = self.predict_attributes(batch["image"])
        return {"probabilities": probabilities, "present": present, "meta": batch["meta"]}

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
    from tasks.runner import load_task  # the runner imports the task modules; import it late

    teacher = load_task(checkpoint)
    if not isinstance(teacher, AttributeTask):
        raise ConfigError(f"task.teacher.checkpoint {checkpoint} is a {type(teacher).__name__}, not an attribute model")
    missing = [name for name in attribute_names if name not in teacher.class_names]
    if missing:
        raise ConfigError(f"task.teacher.checkpoint {checkpoint} does not predict the attributes {missing}")
    model = teacher.model.eval().requires_grad_(False)
    return Teacher(model, [teacher.class_names.index(name) for name in attribute_names], teacher.data_meta)
