"""Hydra entry points of training and evaluation: ``tools/train.py`` / ``mobivision train`` and ``tools/eval.py`` /
``mobivision eval``.

Both compose from the configs shipped with the package (``mobivision.configs.CONFIG_DIR``), so they work the same
from a checkout and from an installed wheel; the work itself is ``mobivision.tasks.runner.train`` / ``evaluate``.
The run folder is claimed for this run alone (``mobivision.tasks.run_dirs``); a run that stops at a config error (exit
code 2) removes it again when it holds nothing but Hydra's own files. An override Hydra cannot compose is one
``error:`` line before any folder exists (``mobivision.commands.config_errors``).
"""

import sys
from collections.abc import Callable
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from mobivision.commands.config_errors import run_hydra
from mobivision.configs import CONFIG_DIR
from mobivision.tasks.run_dirs import release_if_unused
from mobivision.tasks.runner import evaluate, run_cli, train


def _run(fn: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """``run_cli(fn, cfg)``; on a config error, no empty run folder is left behind."""
    try:
        return run_cli(fn, cfg)
    except SystemExit as exit_:
        if exit_.code == 2:
            release_if_unused(HydraConfig.get().runtime.output_dir)
        raise


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def _train(cfg: DictConfig) -> None:
    _run(train, cfg)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def _eval(cfg: DictConfig) -> None:
    _run(evaluate, cfg)


def train_main() -> None:
    """``train experiment=demo trainer.max_epochs=5``: fit, test the best checkpoint, write ``summary.json``."""
    run_hydra(_train)


def eval_main() -> None:
    """``eval ckpt_path=runs/<task>/<time>/checkpoints/best.ckpt [split=val] [data=...] [data.num_workers=0]``."""
    sys.argv[1:] = data_overrides_on_checkpoint_data(sys.argv[1:])
    run_hydra(_eval)


def data_overrides_on_checkpoint_data(arguments: list[str]) -> list[str]:
    """Without ``data=<config>``, eval reads the data config the checkpoint was trained with, and ``data.<key>=v``
    changes a key of it: Hydra is told to add the key (``++data.<key>=v``), ``evaluate`` merges it on top."""
    if any(a.split("=", 1)[0].lstrip("+") == "data" for a in arguments):
        return arguments
    return [f"++{a}" if a.startswith("data.") else a for a in arguments]
