"""Every experiment and config group composes, and resolves to values the code accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class

from mobivision import list_models
from mobivision.errors import ConfigError
from mobivision.tasks.monitor import resolve_monitor

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))


def _compose(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=["paths.output_dir=/tmp/unused", *overrides])


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_resolves(experiment: str) -> None:
    cfg = _compose([f"experiment={experiment}"])
    assert cfg.task_name == experiment
    assert cfg.backbone.name in list_models()
    resolve_monitor(cfg)
    assert cfg.callbacks.model_checkpoint.monitor == cfg.monitor.metric
    assert (cfg.callbacks.model_checkpoint.mode, cfg.monitor.mode) == (cfg.monitor.mode, cfg.monitor.mode)


# The experiments that rank checkpoints by another metric than their task's primary one, each saying why in its file.
OWN_MONITOR = {"demo_geo": ("val/median_km", "min"), "geo_planet": ("val/acc_750km", "max")}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_the_best_checkpoint_is_chosen_by_the_tasks_primary_metric_unless_the_experiment_says_otherwise(
    experiment: str,
) -> None:
    cfg = _compose([f"experiment={experiment}"])
    primary = get_class(cfg.task._target_).primary_metric
    resolve_monitor(cfg)
    expected = OWN_MONITOR.get(experiment, (f"val/{primary.name}", primary.mode))
    assert (cfg.monitor.metric, cfg.monitor.mode) == expected


def test_a_monitored_metric_without_its_mode_is_refused_unless_it_is_the_primary_one() -> None:
    cfg = _compose(["experiment=demo_classification", "monitor.metric=val/top1"])
    resolve_monitor(cfg)
    assert cfg.monitor.mode == "max"
    cfg = _compose(["experiment=demo_classification", "monitor.metric=val/loss"])
    expected = r"monitor\.mode: missing for monitor\.metric=val/loss \(expected min or max\)"
    with pytest.raises(ConfigError, match=expected):
        resolve_monitor(cfg)


@pytest.mark.parametrize("group", ["backbone", "optimizer", "scheduler", "trainer", "data"])
def test_every_option_of_a_group_composes(group: str) -> None:
    for option in sorted(p.stem for p in (CONFIGS / group).glob("*.yaml")):
        cfg = _compose([f"{group}={option}"])
        assert cfg[group] is not None


@pytest.mark.parametrize(("old", "new"), [("face_attributes", "attributes"), ("geolocation", "geo")])
def test_the_task_names_of_0_1_0_compose_the_task_named_for_its_kind(old: str, new: str) -> None:
    task = _compose([f"task={new}"]).task
    assert _compose([f"task={old}"]).task == task
    assert get_class(task._target_).kind == new


def test_backbone_configs_name_real_models() -> None:
    names = {_compose([f"backbone={p.stem}"]).backbone.name for p in (CONFIGS / "backbone").glob("*.yaml")}
    assert names == set(list_models())


def test_unknown_key_is_refused_with_its_name() -> None:
    with pytest.raises(ConfigCompositionException, match="no_such_key"):
        _compose(["trainer.no_such_key=1"])


def test_unknown_group_option_is_refused() -> None:
    with pytest.raises(ConfigCompositionException, match="mobilenet_v9"):
        _compose(["backbone=mobilenet_v9"])


def test_distillation_recipe_requires_the_teacher_checkpoint() -> None:
    """A '???' under task.teacher would merge into the task's null default; the recipe asks at the top level."""
    from omegaconf import OmegaConf
    from omegaconf.errors import InterpolationToMissingValueError

    with pytest.raises(InterpolationToMissingValueError, match="Missing mandatory value: teacher_checkpoint"):
        OmegaConf.to_container(_compose(["experiment=celeba_distill"]).task, resolve=True)
    cfg = _compose(["experiment=celeba_distill", "teacher_checkpoint=/ckpt/teacher.ckpt"])
    assert cfg.task.teacher.checkpoint == "/ckpt/teacher.ckpt"
