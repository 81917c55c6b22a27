"""Callbacks: backbone freezing for fine-tuning, and plain progress lines for non-terminal logs."""

from __future__ import annotations

import sys
import time
from typing import Any

import lightning as L
from torch import nn


def set_backbone_frozen(backbone: nn.Module, frozen: bool) -> None:
    """Stop (or restart) gradients and BatchNorm statistics updates in ``backbone``.

    Frozen BatchNorm layers are put in eval mode so they use, and keep, their running statistics.
    """
    for param in backbone.parameters():
        param.requires_grad = not frozen
    for module in backbone.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.train(not frozen and backbone.training)


class BackboneFreeze(L.Callback):
    """Freeze the task's ``model.backbone`` until epoch ``unfreeze_at_epoch`` (0: never frozen).

    Lightning's ``BaseFinetuning`` is not used: its frozen BatchNorm switches to batch statistics
    (``track_running_stats=False``) instead of eval mode, and it adds optimizer groups on unfreezing, while
    mobivision's optimizer already holds the backbone groups (params without gradients are skipped).
    """

    def __init__(self, *, unfreeze_at_epoch: int = 0) -> None:
        self.unfreeze_at_epoch = unfreeze_at_epoch

    def _frozen(self, trainer: L.Trainer) -> bool:
        return trainer.current_epoch < self.unfreeze_at_epoch

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        set_backbone_frozen(pl_module.model.backbone, self._frozen(trainer))

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        # Lightning may switch modules back to train mode after validation; keep frozen BN in eval.
        if self._frozen(trainer):
            set_backbone_frozen(pl_module.model.backbone, True)


def _format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class PlainProgress(L.Callback):
    """One line every ``every_n_steps`` training steps with loss, LR and ETA, plus an end-of-epoch line;
    used instead of a progress bar when output goes to a file (CI, SLURM logs)."""

    def __init__(self, *, every_n_steps: int = 50) -> None:
        self.every_n_steps = every_n_steps
        self._start = 0.0
        self._last_step = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step  # optimizer steps: unchanged on gradient-accumulation batches
        if step == 0 or step == self._last_step or step % self.every_n_steps:
            return
        self._last_step = step
        total = trainer.estimated_stepping_batches
        elapsed = time.monotonic() - self._start
        eta = elapsed / max(step, 1) * max(total - step, 0)
        loss = trainer.callback_metrics.get("train/loss")
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        print(
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} step {step}/{total} "
            f"loss {float(loss):.4f} lr {lr:.3g} elapsed {_format_seconds(elapsed)} eta {_format_seconds(eta)}"
            if loss is not None
            else f"step {step}/{total}",
            file=sys.stdout,
            flush=True,
        )

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After the module's own on_validation_epoch_end, so metrics it logs there (COCO mAP) are shown.
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        shown = " ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} {shown}", flush=True)
