"""The expected wall time of a training run, from its config and a few timed steps on this machine.

``tools/check.py`` prints it before anyone commits to a long recipe: epochs x images at the measured training rate
(the slower of the training step and the data loader's workers), plus validations and the test pass at the measured
inference rate. ``training_schedule`` reads what the trainer config asks, as Lightning would schedule it;
``timed_throughput`` times the step, the loading and inference; ``WallTime`` adds them up and describes the result.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from mobivision.errors import MobivisionError
from mobivision.optim import build_optimizer, parameter_groups
from mobivision.tasks.multitask_data import source_modules
from mobivision.timing import median_seconds

# Each timing repeats its call until this many seconds have passed or MAX_TIMED calls were timed (at least one).
MEASURE_SECONDS = 2.0
MAX_TIMED = 5


class StepError(MobivisionError):
    """The timed training step or inference failed; the message starts with the config key it is about."""


@dataclass(frozen=True)
class Throughput:
    """Images per second timed on this machine: the training step (forward, loss, backward, optimizer step) on
    ``device``, data loading in one process (the rate of one loader worker) and inference."""

    device: str
    images_per_step: int
    step_rate: float
    worker_rate: float
    eval_rate: float


@dataclass(frozen=True)
class Schedule:
    """What the config asks of one device: ``steps`` training batches, ``batches_per_epoch`` of them an epoch
    (``capped``: ``trainer.max_steps`` ends training before ``trainer.max_epochs``); ``validations`` passes over
    ``val_images`` and one over ``test_images``; ``workers`` loader processes sharing ``cpus`` CPUs; ``devices``
    training processes in all, each with its share of every split."""

    steps: int
    batches_per_epoch: int
    capped: bool
    validations: int
    val_images: int
    test_images: int
    workers: int
    cpus: int
    devices: int

    @property
    def epochs(self) -> int:
        return math.ceil(self.steps / self.batches_per_epoch) if self.batches_per_epoch else 0


@dataclass(frozen=True)
class WallTime:
    """The expected wall time of a run: ``schedule`` at the rates of ``throughput``."""

    throughput: Throughput
    schedule: Schedule

    @property
    def loader_rate(self) -> float:
        """Images/s of the training loader: its workers in parallel, at most one per CPU (none: the main process)."""
        return self.throughput.worker_rate * max(min(self.schedule.workers, self.schedule.cpus), 1)

    @property
    def data_bound(self) -> bool:
        return self.loader_rate < self.throughput.step_rate

    @property
    def train_rate(self) -> float:
        """Training images/s: workers load while the step runs, so the slower sets the pace; without workers the
        main process loads a batch, then steps."""
        step, data = self.throughput.step_rate, self.loader_rate
        return 1 / (1 / step + 1 / data) if self.schedule.workers == 0 else min(step, data)

    @property
    def train_seconds(self) -> float:
        return self.schedule.steps * self.throughput.images_per_step / self.train_rate

    @property
    def eval_images(self) -> int:
        return self.schedule.validations * self.schedule.val_images + self.schedule.test_images

    @property
    def eval_seconds(self) -> float:
        return self.eval_images / self.throughput.eval_rate

    @property
    def total_seconds(self) -> float:
        return self.train_seconds + self.eval_seconds

    def describe(self) -> str:
        """The ``✓`` line: the total, then the counts and rates it is made of (per device)."""
        timed, plan = self.throughput, self.schedule
        batch = timed.images_per_step
        if plan.capped:
            training = f"{plan.steps:,} batches (trainer.max_steps) x {batch:,} images"
        else:
            training = f"{_count(plan.epochs, 'epoch')} x {plan.batches_per_epoch * batch:,} images"
        test = f" + test {plan.test_images:,} images" if plan.test_images else ""
        devices = (
            f"; per device: each of the {plan.devices} devices trains and evaluates its share, timed as this one"
            if plan.devices > 1
            else ""
        )
        return (
            f"expected wall time: about {format_duration(self.total_seconds)} on this machine ({timed.device}): "
            f"{training} at {self.train_rate:,.1f} img/s (training step {timed.step_rate:,.1f} img/s, batch {batch}; "
            f"{self._describe_data()}), {_count(plan.validations, 'validation')} x {plan.val_images:,} images{test} at "
            f"{timed.eval_rate:,.1f} img/s (inference; metrics not timed){devices}"
        )

    def _describe_data(self) -> str:
        plan = self.schedule
        if plan.workers == 0:
            return f"data {self.loader_rate:,.1f} img/s in the main process, before each step"
        cpus = f" on {_count(plan.cpus, 'CPU')}" if plan.workers > plan.cpus else ""
        bound = "data loading" if self.data_bound else "the training step"
        return f"data {self.loader_rate:,.1f} img/s with {_count(plan.workers, 'worker')}{cpus}; bound by {bound}"


def _count(number: int, noun: str) -> str:
    """``1 epoch``, ``1,200 epochs``."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def format_duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.4 h`` or ``5.2 days``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def training_schedule(
    trainer: dict[str, Any], datamodule: Any, *, workers: int, test_after_training: bool
) -> Schedule | None:
    """What ``trainer`` (the resolved ``cfg.trainer``) asks of one device on ``datamodule``'s splits, as Lightning
    counts it; ``workers``: the config's loader workers (all sources'). None: training has no set end."""
    local = _local_devices(trainer)
    devices = local * int(trainer.get("num_nodes") or 1)
    modules = list(source_modules(datamodule).values())
    # A multi-task model's epoch is its longest source's (the shorter ones start over); drop_last: full batches.
    full = max(_shard(len(m.datasets["train"]), devices) // m.batch_size for m in modules)
    batches_per_epoch = _limited(full, trainer.get("limit_train_batches"))
    training = _training_batches(trainer, batches_per_epoch)
    if training is None:
        return None
    steps, capped = training
    tested = test_after_training and bool(datamodule.splits.get("test"))
    return Schedule(
        steps=steps,
        batches_per_epoch=batches_per_epoch,
        capped=capped,
        validations=_validation_count(trainer, steps, batches_per_epoch),
        val_images=_eval_images(modules, "val", devices, trainer.get("limit_val_batches")),
        test_images=_eval_images(modules, "test", devices, trainer.get("limit_test_batches")) if tested else 0,
        workers=workers,
        cpus=max(_cpu_count() // local, 1),
        devices=devices,
    )


def _local_devices(trainer: dict[str, Any]) -> int:
    """Training processes on one node: ``trainer.devices`` (a count, or a list of device ids; ``auto`` or -1: every
    GPU here when training would use one, else 1)."""
    devices = trainer.get("devices", 1)
    if isinstance(devices, list | tuple):
        return len(devices)
    if isinstance(devices, int) and devices > 0:
        return devices
    return max(torch.cuda.device_count(), 1) if _training_device(trainer).type == "cuda" else 1


def _cpu_count() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _shard(images: int, devices: int) -> int:
    """Images of a split one device sees (DistributedSampler: an equal share, padded)."""
    return math.ceil(images / devices)


def _limited(batches: int, limit: int | float | None) -> int:
    """Lightning's ``limit_*_batches``: an int caps the count, a float keeps that fraction."""
    if limit is None:
        return batches
    return int(batches * limit) if isinstance(limit, float) else min(batches, limit)


def _training_batches(trainer: dict[str, Any], batches_per_epoch: int) -> tuple[int, bool] | None:
    """Training batches of one device, and whether ``trainer.max_steps`` (optimizer steps, of
    ``accumulate_grad_batches`` batches each) ends training before ``trainer.max_epochs``; None: neither ends it."""
    max_steps = trainer.get("max_steps")
    max_steps = -1 if max_steps is None else max_steps
    max_epochs = trainer.get("max_epochs")
    if max_epochs is None:  # Lightning's default: 1000 epochs, unless max_steps is set
        max_epochs = 1000 if max_steps < 0 else -1
    by_epochs = max_epochs * batches_per_epoch if max_epochs >= 0 else None
    if max_steps >= 0:
        by_steps = max_steps * int(trainer.get("accumulate_grad_batches") or 1)
        if by_epochs is None or by_steps < by_epochs:
            return by_steps, True
    return None if by_epochs is None else (by_epochs, False)


def _validation_count(trainer: dict[str, Any], steps: int, batches_per_epoch: int) -> int:
    """Validation passes in ``steps`` training batches, as Lightning schedules them: every
    ``check_val_every_n_epoch`` epochs (None: counted over all batches), at every ``val_check_interval`` batches (an
    int) or fraction of an epoch (a float)."""
    if batches_per_epoch == 0:
        return 0
    interval = trainer.get("val_check_interval")
    if isinstance(interval, int):
        every_batches = interval
    elif isinstance(interval, float):
        every_batches = max(int(batches_per_epoch * interval), 1)
    else:  # None (Lightning's default) or a duration, which counts cannot predict: at the end of each epoch
        every_batches = batches_per_epoch
    every_epochs = trainer.get("check_val_every_n_epoch", 1)
    if every_epochs is None:
        return steps // every_batches
    epochs, rest = divmod(steps, batches_per_epoch)
    in_last = rest // every_batches if (epochs + 1) % every_epochs == 0 else 0  # an epoch max_steps cuts short
    return epochs // every_epochs * (batches_per_epoch // every_batches) + in_last


def _eval_images(modules: list[Any], split: str, devices: int, limit: int | float | None) -> int:
    """Images one device evaluates in a pass over ``split`` (every source's; none without the split)."""
    total = 0
    for module in modules:
        if split in module.datasets:
            images = _shard(len(module.datasets[split]), devices)
            batches = _limited(math.ceil(images / module.eval_batch_size), limit)
            total += min(batches * module.eval_batch_size, images)
    return total


def _training_device(trainer: dict[str, Any]) -> torch.device:
    """CUDA when the trainer asks for a GPU (or ``auto``) and this machine has one, else the CPU."""
    wants_gpu = str(trainer.get("accelerator")) in ("gpu", "cuda", "auto")
    return torch.device("cuda" if wants_gpu and torch.cuda.is_available() else "cpu")


def _timing_setup(trainer: dict[str, Any]) -> tuple[torch.device, str, str]:
    """The device and precision to time on, and their description: the trainer's where this machine has them. A
    GPU recipe on a machine without one is timed on the CPU at full precision, as a CPU run would train."""
    accelerator, precision = str(trainer.get("accelerator")), str(trainer.get("precision"))
    device = _training_device(trainer)
    if accelerator in ("gpu", "cuda") and device.type == "cpu":
        return device, "32-true", f"cpu, full precision: no GPU here for trainer.accelerator={accelerator}"
    name = f"cuda: {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "cpu"
    return device, precision, f"{name}, {precision}" if precision.endswith("-mixed") else name


def timed_throughput(task: Any, batch: Any, datamodule: Any, trainer: dict[str, Any]) -> Throughput:
    """The training step and inference of ``task`` on ``batch`` (on the training device, at the trainer's
    precision), and the loading of training batches in this process. ``task`` is trained: pass a copy.

    Raises:
        StepError: The training step or inference failed (backward, the optimizer, a full device).
    """
    device, precision, description = _timing_setup(trainer)
    try:
        task.to(device)
        step_seconds = _median_seconds(_training_step(task, datamodule, batch, precision), device, warmup=1)
        images = [part["image"] for part in source_batches(on_device(task, datamodule, batch))]
        eval_seconds = _median_seconds(_inference(task, images, precision), device, warmup=1)
    except Exception as exc:
        raise StepError(f"task: a training step on {device.type}: {type(exc).__name__}: {exc}") from exc
    loaders = [module.train_dataloader() for module in source_modules(datamodule).values()]
    cpu = torch.device("cpu")
    load_seconds = sum(_median_seconds(_endless(loader).__next__, cpu, warmup=0) for loader in loaders)
    count = sum(len(x) for x in images)
    return Throughput(
        device=description,
        images_per_step=count,
        step_rate=count / step_seconds,
        worker_rate=count / load_seconds,
        eval_rate=count / eval_seconds,
    )


def on_device(task: Any, datamodule: Any, batch: Any) -> Any:
    """``batch`` as a training step receives it: copied to the task's device, then through the data module's
    ``on_after_batch_transfer`` (which normalises uint8 images: ``data.normalize_on_device``)."""
    return datamodule.on_after_batch_transfer(task.transfer_batch_to_device(batch, task.device, 0), 0)


def source_batches(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """The batch of each source of a multi-task model's batch; a plain batch is its only one."""
    return [batch] if "image" in batch else list(batch.values())


def _autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision as the trainer runs it (``bf16-mixed``, ``16-mixed``; the loss scaling of ``16-mixed`` costs
    little and is left out); otherwise nothing changes."""
    if not precision.endswith("-mixed"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision.startswith("bf16") else torch.float16)


def _training_step(task: Any, datamodule: Any, batch: Any, precision: str) -> Callable[[], None]:
    """One optimisation step of ``task`` on ``batch``, as training runs it (from the copy to the device on).

    The optimizer is the task's (same parameter groups and algorithm, so the same per-step work), built as
    ``configure_optimizers`` builds it: that method itself needs a Trainer (for the schedule's length), and the
    learning-rate schedule costs nothing per step. The ``setup`` hook is not run (an attribute task's needs a
    Trainer): a multi-task model's frozen heads are trained too, and a distillation teacher's forward pass is left
    out.
    """
    options = task.optimizer_cfg
    groups = parameter_groups(task.optimizer_parts(), lr=options["lr"], weight_decay=options.get("weight_decay", 0.0))
    optimizer = build_optimizer(groups, **options)
    device = task.device
    task.train()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        moved = on_device(task, datamodule, batch)
        with _autocast(precision, device):
            loss = task.training_step(moved, 0)
        (loss["loss"] if isinstance(loss, dict) else loss).backward()
        optimizer.step()

    return step


def _inference(task: Any, images: list[torch.Tensor], precision: str) -> Callable[[], None]:
    """The network on every source's ``images`` in evaluation mode, as validation runs it (metrics aside)."""
    device = task.device
    task.eval()

    def infer() -> None:
        with torch.no_grad(), _autocast(precision, device):
            for x in images:
                task(x)

    return infer


def _endless(loader: Any):
    """``loader``'s batches, starting over at its end (a small split may hold a single batch)."""
    while True:
        yield from loader


def _median_seconds(run: Callable[[], object], device: torch.device, *, warmup: int) -> float:
    """Median seconds of ``run()`` on ``device`` after ``warmup`` untimed calls (one-time costs: allocation, kernel
    choice), timed until ``MEASURE_SECONDS`` or ``MAX_TIMED`` calls."""
    return median_seconds(run, warmup=warmup, repeats=MAX_TIMED, budget=MEASURE_SECONDS, device=device)
