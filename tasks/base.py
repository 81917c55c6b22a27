"""``TaskModule``: what every task shares (optimizer groups, schedules, checkpoint contents).

A task builds its network from plain configs (``backbone``, ``optimizer``, ``scheduler`` dicts), calls
``save_hyperparameters()`` so ``Task.load_from_checkpoint(path)`` needs no arguments, and exposes
``self.model`` with a ``backbone`` attribute (used for the parameter groups and by the freeze callback).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from mobivision.optim import build_optimizer, build_scheduler, parameter_groups


class TaskModule(L.LightningModule):
    """Base Lightning module; subclasses set ``self.model`` and implement the steps.

    Args:
        backbone: Model options passed to ``mobivision.create_model`` / ``create_backbone``.
        optimizer: ``{"name": sgd|rmsprop|adamw, "lr": ..., "weight_decay": ..., ...}``.
        scheduler: ``{"name": cosine|step|constant, "warmup_epochs": ..., ...}``.
        backbone_lr_mult: Learning-rate multiplier of the backbone groups (fine-tuning).
        data_meta: What inference needs from the data: resolution, mean, std.
        run_config: The resolved run configuration, kept in the checkpoint for reproducibility.
    """

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

    def gather_from_processes(self, value: Any) -> list[Any]:
        """``value`` of every process (rank order), for evaluations that must see all predictions at once."""
        if self.trainer.world_size == 1:
            return [value]
        gathered: list[Any] = [None] * self.trainer.world_size
        torch.distributed.all_gather_object(gathered, value)
        return gathered

    def gather_per_image(self, batches: list[tuple[torch.Tensor, torch.Tensor, list[str]]]) -> dict[str, Any]:
        """``(probabilities, targets, paths)`` batches of every process merged once per image path.

        DistributedSampler pads the last batch by repeating images, so each image is kept once, first seen
        first. Returns ``{"paths": [...], "probabilities": Tensor, "targets": Tensor}`` (empty tensors if none).
        """
        seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for probabilities, targets, paths in (
            batch for chunk in self.gather_from_processes(batches) for batch in chunk
        ):
            for p, t, path in zip(probabilities, targets, paths, strict=True):
                seen.setdefault(path, (p, t))
        if not seen:
            return {"paths": [], "probabilities": torch.zeros(0), "targets": torch.zeros(0)}
        return {
            "paths": list(seen),
            "probabilities": torch.stack([p for p, _ in seen.values()]),
            "targets": torch.stack([t for _, t in seen.values()]),
        }

    def configure_optimizers(self) -> dict[str, Any]:
        head = nn.ModuleList(m for name, m in self.model.named_children() if name != "backbone")
        groups = parameter_groups(
            backbone=self.model.backbone,
            head=head,
            lr=self.optimizer_cfg["lr"],
            weight_decay=self.optimizer_cfg.get("weight_decay", 0.0),
            backbone_lr_mult=self.backbone_lr_mult,
        )
        optimizer = build_optimizer(groups, **self.optimizer_cfg)
        total = int(self.trainer.estimated_stepping_batches)
        steps_per_epoch = max(total // max(self.trainer.max_epochs or 1, 1), 1)
        scheduler = build_scheduler(optimizer, total_steps=total, steps_per_epoch=steps_per_epoch, **self.scheduler_cfg)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["mobivision"] = {"task": f"{type(self).__module__}.{type(self).__qualname__}"}
        # The weights are in the state dict: a re-load must not look for the original pretrained file.
        backbone = checkpoint.get("hyper_parameters", {}).get("backbone")
        if isinstance(backbone, dict):
            backbone["pretrained"] = None
