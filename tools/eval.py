"""Evaluate a checkpoint: ``python tools/eval.py ckpt_path=runs/demo/<time>/checkpoints/best.ckpt``."""

import _toolpath  # noqa: F401 (must come first, see tools/_toolpath.py)

import hydra
from omegaconf import DictConfig

from tasks.runner import evaluate, run_cli


@hydra.main(version_base="1.3", config_path="../configs", config_name="eval")
def main(cfg: DictConfig) -> None:
    run_cli(evaluate, cfg)


if __name__ == "__main__":
    main()
