"""Unit tests of ``mobivision.tasks.callbacks``: backbone freezing for fine-tuning and the plain progress lines.

ARCHITECTURE.md: freezing lives in a callback and puts frozen BatchNorm in eval mode, so a frozen backbone
keeps both its weights and its running statistics. The Lightning runs are tiny (8 images of 32 x 32, CPU).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mobivision import create_model
from mobivision.tasks.callbacks import BackboneFreeze, PlainProgress, set_frozen
from mobivision.tasks.classification import ClassificationTask


def _norms(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def _buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.detach().clone() for name, b in module.named_buffers()}


def _params(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _unchanged(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], *, suffix: str) -> list[str]:
    """Names ending in ``suffix`` (e.g. ``running_mean``) whose tensors are equal in ``a`` and ``b``."""
    return [k for k in a if k.endswith(suffix) and torch.equal(a[k], b[k])]


# --- set_frozen ---------------------------------------------------------------------------------


@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    return create_model("mobilenet_v1", width_mult=0.25, num_classes=3).train()


def test_frozen_backbone_gets_no_gradients_nor_statistics(model: nn.Module) -> None:
    x = torch.randn(4, 3, 32, 32)
    set_frozen(model.backbone, True)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    assert not any(m.training for m in _norms(model.backbone))
    assert model.backbone.training  # only BatchNorm switches to eval; dropout etc. follow the model
    before = _buffers(model.backbone)
    model(x).sum().backward()
    assert _same(_buffers(model.backbone), before)
    assert all(p.grad is None for p in model.backbone.parameters())
    assert model.head.fc.weight.grad is not None


def test_unfrozen_backbone_trains_again(model: nn.Module) -> None:
    x = torch.randn(4, 3, 32, 32)
    set_frozen(model.backbone, True)
    set_frozen(model.backbone, False)
    assert all(p.requires_grad for p in model.backbone.parameters())
    assert all(m.training for m in _norms(model.backbone))
    before = _buffers(model.backbone)
    model(x).sum().backward()
    after = _buffers(model.backbone)
    assert not _unchanged(before, after, suffix="running_mean")
    assert not _unchanged(before, after, suffix="running_var")
    assert all(p.grad is not None for p in model.backbone.parameters())


def test_unfreezing_an_eval_backbone_keeps_batchnorm_in_eval(model: nn.Module) -> None:
    model.eval()
    set_frozen(model.backbone, True)
    set_frozen(model.backbone, False)
    assert all(p.requires_grad for p in model.backbone.parameters())
    assert not any(m.training for m in _norms(model.backbone))


# --- Lightning runs --------------------------------------------------------------------------------------


class TinyImages(Dataset):
    """``n`` random 3 x 32 x 32 images with alternating targets 0/1, as ``{"image", "target"}`` dicts."""

    def __init__(self, n: int = 8) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(n, 3, 32, 32, generator=generator)
        self.targets = torch.arange(n) % 2

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index], "target": self.targets[index]}


class StateRecorder(L.Callback):
    """Copies of the backbone's parameters and buffers and the head's parameters at each epoch's end."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, dict[str, torch.Tensor]]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        model = pl_module.model
        self.epochs.append(
            {"backbone": _params(model.backbone), "stats": _buffers(model.backbone), "head": _params(model.head)}
        )


@pytest.fixture
def task(calibrate_bn) -> ClassificationTask:
    """A width-0.25 MobileNetV1 classifier whose BatchNorm statistics fit ``TinyImages``.

    As after pre-training: with a fresh network's identity statistics a frozen (eval) backbone's features
    fade to zero, and the head would get no gradient either.
    """
    torch.manual_seed(0)
    task = ClassificationTask(
        backbone={"name": "mobilenet_v1", "width_mult": 0.25},
        optimizer={"name": "sgd", "lr": 0.1},
        scheduler={"name": "constant"},
        class_names=["a", "b"],
    )
    calibrate_bn(task.model, TinyImages().images)
    return task.train()  # calibrate_bn leaves eval mode, and Lightning keeps the mode it is given


@pytest.fixture
def fit() -> Callable[..., L.Trainer]:
    """Train a task for ``max_epochs`` on CPU with the given callbacks (8 images, 2 steps per epoch + val).

    ``trainer_options`` go to ``lightning.Trainer``: e.g. ``val_check_interval=1`` validates after every
    training step, i.e. also in the middle of an epoch.
    """

    def run(
        task: L.LightningModule,
        *,
        max_epochs: int,
        callbacks: list[L.Callback],
        batch_size: int = 4,
        trainer_options: dict[str, Any] | None = None,
    ) -> L.Trainer:
        loader = DataLoader(TinyImages(), batch_size=batch_size)
        trainer = L.Trainer(
            max_epochs=max_epochs,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=callbacks,
            **(trainer_options or {}),
        )
        trainer.fit(task, train_dataloaders=loader, val_dataloaders=loader)
        return trainer

    return run


def test_backbone_freeze_until_epoch(task: ClassificationTask, fit: Callable[..., L.Trainer]) -> None:
    start = {"backbone": _params(task.model.backbone), "stats": _buffers(task.model.backbone)}
    start["head"] = _params(task.model.head)
    recorder = StateRecorder()
    fit(
        task,
        max_epochs=2,
        callbacks=[BackboneFreeze(unfreeze_at_epoch=1), recorder],
        trainer_options={"val_check_interval": 1},
    )
    first, second = recorder.epochs
    # Epoch 0: frozen. Weights and BatchNorm statistics untouched (despite validation switching modes), head trained.
    assert _same(first["backbone"], start["backbone"])
    assert _same(first["stats"], start["stats"])
    assert not _same(first["head"], start["head"])
    # Epoch 1: unfrozen. Every backbone weight and running statistic moves.
    assert not _unchanged(first["backbone"], second["backbone"], suffix="weight")
    assert not _unchanged(first["stats"], second["stats"], suffix="running_mean")
    assert not _unchanged(first["stats"], second["stats"], suffix="running_var")
    assert all(p.requires_grad for p in task.model.backbone.parameters())


def test_backbone_freeze_at_zero_never_freezes(task: ClassificationTask, fit: Callable[..., L.Trainer]) -> None:
    start = _buffers(task.model.backbone)
    recorder = StateRecorder()
    fit(task, max_epochs=1, callbacks=[BackboneFreeze(unfreeze_at_epoch=0), recorder])
    assert not _unchanged(start, recorder.epochs[0]["stats"], suffix="running_mean")


def test_plain_progress_lines(
    task: ClassificationTask, fit: Callable[..., L.Trainer], capsys: pytest.CaptureFixture[str]
) -> None:
    fit(task, max_epochs=1, callbacks=[PlainProgress(every_n_steps=1)])
    lines = capsys.readouterr().out.splitlines()
    steps = [line for line in lines if line.startswith("epoch 1/1 step")]
    assert len(steps) == 2, lines
    number = r"\d+\.\d{4}"
    duration = r"\d+m\d{2}s"
    for step, line in enumerate(steps, start=1):
        assert re.fullmatch(
            rf"epoch 1/1 step {step}/2 loss {number} lr 0\.1 elapsed {duration} eta {duration}", line
        ), line
    assert steps[-1].endswith("eta 0m00s")
    ends = [line for line in lines if line.startswith("epoch 1/1 val/")]
    assert len(ends) == 1, lines  # none for the sanity check
    assert re.search(rf"val/loss {number}", ends[0])
    assert re.search(rf"val/top1 {number}", ends[0])


def test_plain_progress_every_n_steps(
    task: ClassificationTask, fit: Callable[..., L.Trainer], capsys: pytest.CaptureFixture[str]
) -> None:
    fit(task, max_epochs=2, callbacks=[PlainProgress(every_n_steps=3)])
    steps = [line.split()[3] for line in capsys.readouterr().out.splitlines() if " step " in line]
    assert steps == ["3/4"]


def test_plain_progress_with_gradient_accumulation(
    task: ClassificationTask, fit: Callable[..., L.Trainer], capsys: pytest.CaptureFixture[str]
) -> None:
    # 4 batches, 2 per optimizer step: global_step stays put on the accumulating batches. Each optimizer step
    # is reported once, and there is no line for step 0 (before any update).
    trainer_options = {"accumulate_grad_batches": 2}
    fit(task, max_epochs=1, callbacks=[PlainProgress(every_n_steps=1)], batch_size=2, trainer_options=trainer_options)
    steps = [line.split()[3] for line in capsys.readouterr().out.splitlines() if " step " in line]
    assert steps == ["1/2", "2/2"]
