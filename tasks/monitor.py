"""Which metric picks the best checkpoint: ``monitor.metric`` / ``monitor.mode``, by default the task's primary
metric (``configs/train.yaml``)."""

from __future__ import annotations

from hydra.utils import get_class
from omegaconf import DictConfig, open_dict

from mobivision.errors import ConfigError


def resolve_monitor(cfg: DictConfig) -> None:
    """Fill ``monitor.metric`` / ``monitor.mode`` left null with the task's primary metric (``val/<name>``, its mode),
    in ``cfg`` itself, so the checkpoint callback, the saved ``config.yaml`` and collect all see the choice. A metric
    named without a mode takes the primary metric's mode only if it is the primary metric; else ``ConfigError``."""
    metric, mode = cfg.monitor.metric, cfg.monitor.mode
    try:
        task_class = get_class(cfg.task._target_)
    except Exception:  # an unknown _target_: check_config names it, with a did-you-mean
        return
    primary = getattr(task_class, "primary_metric", None)
    if primary is None and (metric is None or mode is None):
        raise ConfigError(
            f"monitor.metric: {cfg.task._target_} declares no primary_metric (expected monitor.metric and "
            "monitor.mode set)"
        )
    if mode is None and metric not in (None, f"val/{primary.name}"):
        raise ConfigError(f"monitor.mode: missing for monitor.metric={metric} (expected min or max)")
    with open_dict(cfg):
        cfg.monitor.metric = metric or f"val/{primary.name}"
        cfg.monitor.mode = mode or primary.mode
