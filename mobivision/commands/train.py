"""Hydra entry points of training and evaluation: ``tools/train.py`` / ``mobivision train`` and ``tools/eval.py`` /
``mobivision eval``.

Both compose from the configs shipped with the package (``mobivision.configs.CONFIG_DIR``), so they work the same
from a checkout and from an installed wheel; the work itself is ``mobivision.tasks.runner.train`` / ``evaluate``.
"""

import hydra
from omegaconf import DictConfig

from mobivision.configs import CONFIG_DIR
from mobivision.tasks.runner import evaluate, run_cli, train


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def train_main(cfg: DictConfig) -> None:
    """``train experiment=demo trainer.max_epochs=5``: fit, test the best checkpoint, write ``summary.json``."""
    run_cli(train, cfg)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="eval")
def eval_main(cfg: DictConfig) -> None:
    """``eval ckpt_path=runs/<task>/<time>/checkpoints/best.ckpt [split=val] [data=...]``."""
    run_cli(evaluate, cfg)
