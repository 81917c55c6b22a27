"""Callbacks: backbone freezing for fine-tuning, plain progress lines for non-terminal logs, what an exact
resume needs beyond Lightning's own checkpoint (RNG states, mid-epoch checkpoints), and one warning per epoch for
the unreadable images ``data.on_error=skip`` replaced."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn

from mobivision.data.records import SKIP_LOG_ENV, read_skip_log
from mobivision.errors import ConfigError, MobivisionError
from mobivision.tasks.resume import capture_rng, restore_rng


def set_frozen(module: nn.Module, frozen: bool) -> None:
    """Stop (or restart) gradients and BatchNorm statistics updates in ``module`` (a backbone, a head).

    Frozen BatchNorm layers are put in eval mode so they use, and keep, their running statistics.
    """
    for param in module.parameters():
        param.requires_grad = not frozen
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.train(not frozen and module.training)


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
        set_frozen(pl_module.model.backbone, self._frozen(trainer))

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        # Lightning may switch modules back to train mode after validation; keep frozen BN in eval.
        if self._frozen(trainer):
            set_frozen(pl_module.model.backbone, True)


class SkippedImages(L.Callback):
    """One warning at the end of each training epoch naming the unreadable images ``data.on_error=skip`` replaced in
    it, by any DataLoader worker (or DDP rank): ``epoch 3: data.on_error=skip replaced 5 unreadable images: a.jpg,
    ... (all listed in <log_file>)``. Nothing for an epoch without one; an image skipped again in a later epoch is
    counted again there.

    How the workers' skips get here (see ``record_skip`` in mobivision/data/records.py): ``setup`` puts ``log_file``
    in the environment (``SKIP_LOG_ENV``) before any loader starts its workers, which inherit it; each skip appends
    one line to the file; at the end of an epoch this callback reads the lines added since the last epoch. The file
    keeps the full list (created at the first skip only); lines already in it (a resumed run) are not reported
    again. ``teardown`` (or ``on_exception``) puts the environment back.
    """

    shown = 5

    def __init__(self, log_file: str | Path) -> None:
        self.log_file = Path(log_file)
        self._offset = 0
        self._previous: str | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._previous = os.environ.get(SKIP_LOG_ENV)
        os.environ[SKIP_LOG_ENV] = str(self.log_file)
        self._offset = self.log_file.stat().st_size if self.log_file.exists() else 0

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self._previous is None:
            os.environ.pop(SKIP_LOG_ENV, None)
        else:
            os.environ[SKIP_LOG_ENV] = self._previous

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.teardown(trainer, pl_module, "")  # a failed fit skips ``teardown``: the environment is put back here

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Every batch of the epoch was loaded by now, so every skip of the epoch is in the file (a worker reads an
        # image before its batch leaves it). Under DDP all ranks append to the one file; rank 0 reports.
        entries, self._offset = read_skip_log(self.log_file, self._offset)
        if not entries or not trainer.is_global_zero:
            return
        files = list(dict.fromkeys(path for path, _ in entries))  # each file once, in the order skipped
        named = ", ".join(files[: self.shown])
        more = f" and {len(files) - self.shown} more" if len(files) > self.shown else ""
        count = f"{len(entries)} unreadable images" if len(entries) > 1 else "1 unreadable image"
        if len(files) != len(entries):
            count += f" ({len(files)} files)"
        logging.getLogger("mobivision").warning(
            "epoch %d: data.on_error=skip replaced %s: %s%s (all listed in %s)",
            trainer.current_epoch + 1,  # counted from 1, as the progress lines do
            count,
            named,
            more,
            self.log_file,
        )


def _format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class StopOtherRanks(L.Callback):
    """DDP started by Lightning's subprocess launcher: when rank 0 stops at a user error (a checkpoint it cannot
    write, an unreadable image), the ranks it launched are stopped at once. Left running, they would fail seconds
    later in their next collective with a gloo/NCCL traceback after the one ``error:`` line."""

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        launcher = trainer.strategy.launcher
        if isinstance(exception, MobivisionError) and isinstance(launcher, _SubprocessScriptLauncher):
            launcher.kill(signal.SIGKILL)  # only the launching process (rank 0) holds the other ranks' processes


class PlainProgress(L.Callback):
    """One line every ``every_n_steps`` training steps with loss, LR and ETA, plus an end-of-epoch line;
    used instead of a progress bar when output goes to a file (CI, SLURM logs). Under DDP only rank 0 prints."""

    def __init__(self, *, every_n_steps: int = 50) -> None:
        self.every_n_steps = every_n_steps
        self._start = 0.0
        self._last_step = -1

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.monotonic()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step = trainer.global_step  # optimizer steps: unchanged on gradient-accumulation batches
        if not trainer.is_global_zero or step == 0 or step == self._last_step or step % self.every_n_steps:
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
        if trainer.sanity_checking or not trainer.is_global_zero:  # DDP: one line per run, not per process
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        shown = " ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))
        print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} {shown}", flush=True)


class ResumeState(L.Callback):
    """What a resumed fit needs beyond Lightning's own restore: the global RNG states (torch CPU and CUDA, numpy,
    python ``random``), kept in every checkpoint, and the training loader's position.

    Both are put back at ``on_train_start``: after Lightning seeded everything and built the loaders (which draw
    from the RNGs), before the first resumed batch, so the batches, augmentations, dropout and the next epochs'
    shuffles continue as in an uninterrupted run. Under DDP the states of rank 0 are kept (Lightning seeds every
    rank alike).

    The loader position: Lightning loads the checkpoint's loader states when it builds the training loader, but
    ``trainer.estimated_stepping_batches`` (used by ``configure_optimizers`` for the schedule length) builds it
    before the checkpoint is read, and the states are then never loaded (Lightning issue #20550). They are loaded
    here in that case, and the loader iterator is made again from them.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return {"rng": capture_rng()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict.get("rng")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        fit_loop = trainer.fit_loop
        fetcher = getattr(fit_loop, "_data_fetcher", None)
        if getattr(fit_loop, "_combined_loader_states_to_load", None) and fit_loop.restarting and fetcher is not None:
            fit_loop._load_combined_loader_states()
            iter(fetcher)  # a new iterator, from the loaded states
        if self._pending is not None:
            restore_rng(self._pending)
            self._pending = None


class LastCheckpoint(Checkpoint):
    """Writes ``<dirpath>/last.ckpt`` after every validation (at the end of each training epoch when there is no
    validation) and, with ``every_n_train_steps > 0``, every that many optimizer steps: the checkpoint ``resume``
    continues from, mid-epoch included (the loader position is in it).

    ``best.ckpt`` stays with the monitored ``ModelCheckpoint`` (Lightning 2.6's ``save_last`` only writes
    ``last.ckpt`` when the best one changes). Place this callback after that one, and let that one save at
    validation end (``save_on_train_epoch_end: false``; by default it saves at the end of the training epoch, after
    this one): checkpoint callbacks run last, in their order, so ``last.ckpt`` holds the best score of the same
    validation (tested).
    """

    def __init__(self, *, dirpath: str, every_n_train_steps: int = 0) -> None:
        if every_n_train_steps < 0:
            raise ConfigError(
                f"every_n_train_steps must be >= 0 (0: after validations only), got {every_n_train_steps}"
            )
        self.dirpath = Path(dirpath)
        self.every_n_train_steps = every_n_train_steps
        self._last_step = -1
        self._validated_epoch = -1

    @property
    def path(self) -> Path:
        return self.dirpath / "last.ckpt"

    @staticmethod
    def _fitting(trainer: L.Trainer) -> bool:
        return trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking and not trainer.fast_dev_run

    def _save(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # every rank calls, rank 0 writes (atomically)
        self._last_step = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        step, every = trainer.global_step, self.every_n_train_steps
        if every and step % every == 0 and step != self._last_step and self._fitting(trainer):
            self._save(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._fitting(trainer):
            self._validated_epoch = trainer.current_epoch
            self._save(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # After the epoch's validation (if any), which saved already.
        if self._validated_epoch != trainer.current_epoch and self._fitting(trainer):
            self._save(trainer)
