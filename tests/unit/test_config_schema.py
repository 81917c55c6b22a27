"""Every config value is checked before any work (tasks/config_schema.py), and Hydra's composition errors
become one line with a did-you-mean (mobivision/commands/config_errors.py)."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import mobivision.tasks.runner  # noqa: F401  (registers the mv.* resolvers the configs use)
from mobivision.commands.config_errors import composition_message
from mobivision.commands.train import data_overrides_on_checkpoint_data
from mobivision.configs import CONFIG_DIR
from mobivision.data.transforms import classification_train_transform
from mobivision.errors import ConfigError
from mobivision.tasks.config_schema import check_config, check_options, describe, fits
from mobivision.tasks.monitor import resolve_monitor
from mobivision.tasks.runner import evaluation_data


def _compose(config: str, overrides: list[str]):
    """The config as train and check see it: composed, the monitor filled from the task's primary metric."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config, overrides=[*overrides, "paths.output_dir=/tmp/mobivision-schema-test"])
    if config == "train":
        resolve_monitor(cfg)
    return cfg


def _problem(overrides: list[str], config: str = "train") -> str:
    with pytest.raises(ConfigError) as caught:
        check_config(_compose(config, overrides), config)
    return str(caught.value)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


SHIPPED = (
    [[f"experiment={name}"] for name in _options("experiment") if name != "celeba_distill"]
    + [["experiment=celeba_distill", "+teacher_checkpoint=teacher.ckpt"], ["experiment=demo", "debug=fast"]]
    + [[f"{group}={name}"] for group in ("trainer", "optimizer", "scheduler", "backbone") for name in _options(group)]
    + [[f"data={name}"] for name in _options("data")]
)


@pytest.mark.parametrize("overrides", SHIPPED, ids=lambda o: " ".join(o))
def test_every_shipped_config_passes_the_check(overrides: list[str]) -> None:
    check_config(_compose("train", overrides), "train")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.max_epochs=abc"], "trainer.max_epochs: 'abc' is not valid (expected an integer or null)"),
        (["data.batch_size=-4"], "data.batch_size: -4 is out of range (expected >= 1)"),
        (["data.batch_size=2.5"], "data.batch_size: 2.5 is not valid (expected an integer)"),
        (["data.num_workers=-1"], "data.num_workers: -1 is out of range (expected >= 0)"),
        (["data.resolution=16"], "data.resolution: 16 is out of range (expected >= 32)"),
        (["data.pin_memory=off"], "data.pin_memory: 'off' is not valid (expected true or false)"),
        (["data.mean=[0.5,x,0.5]"], "data.mean: [0.5, 'x', 0.5] is not valid (expected a list of numbers or null)"),
        (["data.on_error=ignore"], "data.on_error: 'ignore' is not valid (expected one of raise, skip)"),
        (["backbone.width_mult=0"], "backbone.width_mult: 0 is out of range (expected > 0)"),
        (["backbone.name=mobilenet_v4"], "backbone.name: 'mobilenet_v4' is not valid (expected one of"),
        (["optimizer.name=sgdd"], "optimizer.name: 'sgdd' is not valid (expected one of sgd, rmsprop, adamw, did "),
        (["optimizer.lr=0"], "optimizer.lr: 0 is out of range (expected > 0)"),
        (["optimizer.momentum=1.5"], "optimizer.momentum: 1.5 is out of range (expected >= 0 and < 1)"),
        (["+optimizer.betas=[0.9]"], "optimizer.betas: [0.9] is not valid (expected a list of numbers)"),
        (["scheduler.warmup_epochs=-1"], "scheduler.warmup_epochs: -1 is out of range (expected >= 0)"),
        (["task.label_smoothing=1.0"], "task.label_smoothing: 1.0 is out of range (expected >= 0 and < 1)"),
        (["+task.label_smoothin=0.1"], "task.label_smoothin: no such key (did you mean task.label_smoothing?)"),
        (["monitor.mode=maximum"], "monitor.mode: 'maximum' is not valid (expected one of 'min', 'max', did you m"),
        (["+monitor.metrics=val/top1"], "monitor.metrics: no such key (did you mean monitor.metric?)"),
        (["progress=fancy"], "progress: 'fancy' is not valid (expected one of 'auto', 'rich', 'plain')"),
        (["compile=fast"], "compile: 'fast' is not valid (expected one of 'default', 'reduce-overhead', 'max-"),
        (["seed=-1"], "seed: -1 is out of range (expected >= 0 and <= 4.29497e+09)"),
        (["test_after_training=1"], "test_after_training: 1 is not valid (expected true or false)"),
        (["+seeed=1"], "seeed: no such key (did you mean seed?)"),
        (["trainer.precision=bf15"], "trainer.precision: 'bf15' is not valid (expected one of 64, 32, 16, 'transf"),
        (["+trainer.max_epoch=1"], "trainer.max_epoch: no such key (did you mean trainer.max_epochs?)"),
        (["+trainer.limit_val_batches=1.5"], "trainer.limit_val_batches: 1.5 is out of range (expected >= 0 (a "),
        (["+trainer.limit_val_batches=-2"], "trainer.limit_val_batches: -2 is out of range (expected >= 0 (a "),
        (["trainer.devices=[a]"], "trainer.devices: ['a'] is not valid (expected a list of integers or a string or"),
        (["callbacks.model_checkpoint.filename=3"], "callbacks.model_checkpoint.filename: 3 is not valid (expec"),
        (["+callbacks.last_checkpoint.every_n_train_step=5"], "callbacks.last_checkpoint.every_n_train_step: no such"),
        (["callbacks.last_checkpoint.every_n_train_steps=-5"], "callbacks.last_checkpoint.every_n_train_steps: -5 i"),
        (["callbacks.lr_monitor._target_=no.such.Callback"], "callbacks.lr_monitor._target_: cannot import 'no.suc"),
        (["experiment=demo_multitask", "data.batch_size=0"], "data.sources.faces.batch_size: 0 is out of range (exp"),
        (["experiment=demo_multitask", "+data.sources.faces.batch_sise=4"], "data.sources.faces.batch_sise: no su"),
    ],
)
def test_a_bad_value_is_named_with_what_was_expected(overrides: list[str], message: str) -> None:
    assert _problem(overrides).startswith(message)


def test_every_problem_is_listed_in_one_line() -> None:
    problem = _problem(["trainer.max_epochs=abc", "data.batch_size=0", "progress=fancy"])
    assert "\n" not in problem
    assert [p.split(":")[0] for p in problem.split("; ")] == ["progress", "data.batch_size", "trainer.max_epochs"]


def test_a_missing_value_and_an_interpolation_to_it_are_named() -> None:
    assert _problem([], "eval") == "ckpt_path: no value given (expected a path: ckpt_path=...)"
    assert _problem(["experiment=celeba_distill"]) == (
        "teacher_checkpoint: no value given (expected a value: teacher_checkpoint=...)"
    )


def test_the_eval_schema_checks_its_own_keys() -> None:
    check_config(_compose("eval", ["ckpt_path=best.ckpt", "split=val"]), "eval")
    assert _problem(["ckpt_path=best.ckpt", "split=train"], "eval").startswith("split: 'train' is not valid")
    assert _problem(["ckpt_path=best.ckpt", "data=coco", "data.batch_size=0"], "eval").startswith("data.batch_size")


def test_eval_data_overrides_change_the_checkpoints_data_config() -> None:
    assert data_overrides_on_checkpoint_data(["ckpt_path=a", "data.num_workers=0", "split=val"]) == [
        "ckpt_path=a",
        "++data.num_workers=0",
        "split=val",
    ]
    with_group = ["data=coco", "data.num_workers=0"]
    assert data_overrides_on_checkpoint_data(with_group) == with_group
    trained_on = OmegaConf.to_container(_compose("train", ["experiment=demo"]).data, resolve=True)
    merged = evaluation_data(OmegaConf.create({"num_workers": 0, "batch_size": 3}), trained_on)
    assert (merged["num_workers"], merged["batch_size"]) == (0, 3)
    assert {k: v for k, v in merged.items() if k not in ("num_workers", "batch_size")} == {
        k: v for k, v in trained_on.items() if k not in ("num_workers", "batch_size")
    }
    with pytest.raises(ConfigError, match=r"^data.num_worker: no such key \(did you mean data.num_workers\?\)$"):
        evaluation_data(OmegaConf.create({"num_worker": 0}), trained_on)
    with pytest.raises(ConfigError, match=r"^data.batch_size: 0 is out of range"):
        evaluation_data(OmegaConf.create({"batch_size": 0}), trained_on)


def test_augmentation_options_are_checked_against_the_transform() -> None:
    check = lambda options: check_options(  # noqa: E731
        "data.augment", options, classification_train_transform, passed={"resolution", "mean", "std", "normalize"}
    )
    check({"hflip": 0.5, "scale": [0.2, 1.0]})
    with pytest.raises(ConfigError, match=r"^data.augment.hflipp: no such key \(did you mean data.augment.hflip\?\)"):
        check({"hflipp": 0.5})
    with pytest.raises(ConfigError, match=r"^data.augment.resolution: no such key"):  # set by data.resolution
        check({"resolution": 64})
    with pytest.raises(ConfigError, match=r"^data.augment.hflip: 'yes' is not valid \(expected a number\)"):
        check({"hflip": "yes"})


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        (3, int | None, True),
        (None, int | None, True),
        ("3", int, False),
        (True, int, False),
        (3, float, True),
        (False, float, False),
        ("off", bool, False),
        ("runs/x", Path, True),
        (3, Path, False),
        ([1, 2], tuple[int, int], True),
        ([1, 2, 3], tuple[int, int], False),
        ([1.0, "a"], list[float], False),
        ({"a": [1]}, dict[str, list[int]], True),
        ({"a": "b"}, dict[str, list[int]], False),
        ("max", Literal["min", "max"], True),
        (1, Literal[True], False),
        ({"_target_": "x.Y"}, int, True),
        ("anything", Any, True),
        ("x", typing.Callable, True),
    ],
)
def test_fits(value: Any, annotation: Any, expected: bool) -> None:
    assert fits(value, annotation) is expected


def test_describe() -> None:
    assert describe(int | None) == "an integer or null"
    assert describe(list[float] | None) == "a list of numbers or null"
    assert describe(Literal["a"] | Literal["b"] | int) == "one of 'a', 'b' or an integer"
    assert describe(Path) == "a path"


def _composition_error(overrides: list[str]) -> BaseException:
    with pytest.raises(Exception) as caught:
        _compose("train", overrides)
    return caught.value


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["trainer.max_epoch=1"], "trainer.max_epoch: no such key (did you mean trainer.max_epochs?)"),
        (["data.batch_sise=2"], "data.batch_sise: no such key (did you mean data.batch_size?)"),
        (
            ["trainer.gradient_clip_val=1"],
            "trainer.gradient_clip_val: not set by this config, though lightning.Trainer takes it "
            "(add it with +trainer.gradient_clip_val=...)",
        ),
        (["foo=1"], "foo: no such key (expected one of backbone, callbacks, channels_last, compile, data, "),
        (["backbone=mobilenet_v3_larg"], "backbone: no config named 'mobilenet_v3_larg' (expected one of mobilenet_v1"),
        (["experiment=demoo"], "experiment: no config named 'demoo' (expected one of celeba_attributes, "),
        (["trainer.max_epochs=[1"], "trainer.max_epochs=[1: cannot parse this override (no viable alternative"),
    ],
)
def test_a_config_hydra_cannot_compose_is_one_line(overrides: list[str], message: str) -> None:
    text = composition_message(_composition_error(overrides))
    assert text.startswith(message)
    assert "\n" not in text


def test_a_missing_group_option_suggests_the_closest() -> None:
    assert composition_message(_composition_error(["backbone=mobilenet_v3_larg"])).endswith(
        ", did you mean backbone=mobilenet_v3_large?)"
    )
    assert composition_message(_composition_error(["experiment=demoo"])).endswith(", did you mean experiment=demo?)")
