"""The expected wall time ``check`` prints: the schedule Lightning would run (epochs, ``max_steps``, ``limit_*``,
validations, test pass, devices) and its arithmetic at fixed rates. Nothing is timed here (tests/test_check.py runs
the timing on a real config)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from mobivision.commands.wall_time import Throughput, WallTime, format_duration, training_schedule

RATES = Throughput(device="cpu", images_per_step=32, step_rate=64.0, worker_rate=40.0, eval_rate=200.0)


def _data(train: int = 1000, val: int = 200, test: int | None = 100, batch: int = 32, eval_batch: int = 50):
    """A data module as ``check`` reads it: split sizes, batch sizes, configured splits."""
    sizes = {"train": train, "val": val} | ({"test": test} if test is not None else {})
    return SimpleNamespace(
        datasets={split: range(n) for split, n in sizes.items()},
        batch_size=batch,
        eval_batch_size=eval_batch,
        splits={split: f"{split}.csv" for split in sizes},
    )


def _schedule(workers: int = 4, test_after_training: bool = True, data=None, **trainer):
    return training_schedule(
        {"max_epochs": 10, **trainer}, data or _data(), workers=workers, test_after_training=test_after_training
    )


def test_epochs_scale_the_training_part_and_the_validations() -> None:
    ten, twenty = WallTime(RATES, _schedule(max_epochs=10)), WallTime(RATES, _schedule(max_epochs=20))
    assert ten.schedule.batches_per_epoch == 31  # 1000 // 32: the last partial batch is dropped
    assert ten.schedule.steps == 310 and not ten.schedule.capped
    assert twenty.train_seconds == pytest.approx(2 * ten.train_seconds)
    assert (ten.schedule.validations, twenty.schedule.validations) == (10, 20)
    # every validation covers the whole split (4 batches of 50), the test pass runs once
    assert ten.eval_images == 10 * 200 + 100 and twenty.eval_images == 20 * 200 + 100
    assert ten.total_seconds == pytest.approx(310 * 32 / ten.train_rate + 2100 / 200)


def test_max_steps_ends_training_first_or_not_at_all() -> None:
    capped = _schedule(max_steps=50)
    assert (capped.steps, capped.capped, capped.epochs) == (50, True, 2)
    assert capped.validations == 1  # the second epoch is cut short before its end
    assert WallTime(RATES, capped).train_seconds == pytest.approx(50 * 32 / WallTime(RATES, capped).train_rate)
    assert _schedule(max_steps=50, accumulate_grad_batches=4).steps == 200  # optimizer steps of 4 batches each
    longer = _schedule(max_steps=10_000)
    assert (longer.steps, longer.capped) == (310, False)
    only_steps = _schedule(max_epochs=None, max_steps=100)  # Lightning: no epoch limit once max_steps is set
    assert (only_steps.steps, only_steps.capped) == (100, True)
    assert _schedule(max_epochs=None).steps == 1000 * 31  # Lightning's default: 1000 epochs
    assert _schedule(max_epochs=-1) is None  # no set end: nothing to estimate


def test_limits_cut_batches_as_lightning_does() -> None:
    fast = _schedule(max_epochs=1, limit_train_batches=2, limit_val_batches=2, limit_test_batches=2)  # debug=fast
    assert (fast.steps, fast.validations, fast.val_images, fast.test_images) == (2, 1, 100, 100)
    fraction = _schedule(limit_train_batches=0.5, limit_val_batches=0.5)
    assert fraction.batches_per_epoch == 15 and fraction.val_images == 100  # int(31 * 0.5), int(4 * 0.5) x 50
    assert _schedule(limit_val_batches=10).val_images == 200  # at most the split


@pytest.mark.parametrize(
    ("trainer", "validations"),
    [
        ({"check_val_every_n_epoch": 3}, 3),  # after epochs 3, 6, 9
        ({"val_check_interval": 0.25}, 10 * 4),  # every int(31 * 0.25) = 7 batches: 4 times an epoch
        ({"val_check_interval": 100, "check_val_every_n_epoch": None}, 3),  # every 100 batches of 310
        ({"val_check_interval": 10}, 10 * 3),  # every 10 batches of each epoch
    ],
)
def test_validations_follow_the_trainer_schedule(trainer: dict, validations: int) -> None:
    assert _schedule(**trainer).validations == validations


def test_the_test_pass_counts_only_when_training_runs_it() -> None:
    assert _schedule().test_images == 100
    assert _schedule(test_after_training=False).test_images == 0
    assert _schedule(data=_data(test=None)).test_images == 0


def test_the_slower_of_step_and_loader_sets_the_pace() -> None:
    schedule = dataclasses.replace(_schedule(), cpus=16)
    step_bound = WallTime(RATES, dataclasses.replace(schedule, workers=4))  # 4 x 40 img/s load, 64 img/s step
    assert step_bound.loader_rate == 160 and step_bound.train_rate == 64 and not step_bound.data_bound
    assert "bound by the training step" in step_bound.describe()
    data_bound = WallTime(RATES, dataclasses.replace(schedule, workers=1))
    assert data_bound.train_rate == 40 and data_bound.data_bound
    assert "data 40.0 img/s with 1 worker; bound by data loading" in data_bound.describe()
    few_cpus = WallTime(RATES, dataclasses.replace(schedule, workers=8, cpus=1))  # workers share one CPU
    assert few_cpus.loader_rate == 40 and "with 8 workers on 1 CPU" in few_cpus.describe()
    # without workers the main process loads each batch, then steps: the times add up
    serial = WallTime(RATES, dataclasses.replace(schedule, workers=0))
    assert 32 / serial.train_rate == pytest.approx(32 / 64 + 32 / 40)
    assert "in the main process, before each step" in serial.describe()


def test_ddp_gives_each_device_its_share() -> None:
    one, two = _schedule(), _schedule(devices=2)
    assert (two.devices, two.batches_per_epoch, two.val_images, two.test_images) == (2, 15, 100, 50)
    assert two.cpus == max(one.cpus // 2, 1)  # the two processes' workers share the CPUs
    one, two = (WallTime(RATES, dataclasses.replace(s, cpus=16)) for s in (one, two))
    assert two.train_seconds == pytest.approx(one.train_seconds * 15 / 31)
    assert "each of the 2 devices trains and evaluates its share" in two.describe()
    assert _schedule(devices=2, num_nodes=2).devices == 4


def test_the_line_states_the_total_and_its_parts() -> None:
    wall = WallTime(RATES, dataclasses.replace(_schedule(), cpus=16))
    assert wall.describe() == (
        f"expected wall time: about {format_duration(wall.total_seconds)} on this machine (cpu): 10 epochs x 992 "
        "images at 64.0 img/s (training step 64.0 img/s, batch 32; data 160.0 img/s with 4 workers; bound by the "
        "training step), 10 validations x 200 images + test 100 images at 200.0 img/s (inference; metrics not timed)"
    )
    assert format_duration(wall.total_seconds) == "3 min"  # 9920 / 64 + 2100 / 200 = 165.5 s


@pytest.mark.parametrize(
    ("seconds", "text"), [(42.4, "42 s"), (600, "10 min"), (5400, "1.5 h"), (3 * 86400, "3.0 days")]
)
def test_durations_read_in_the_unit_that_fits(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
