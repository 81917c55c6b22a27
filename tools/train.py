"""Train a task from configs: ``python tools/train.py experiment=demo trainer.max_epochs=5``."""

import _toolpath  # noqa: F401 (must come first, see tools/_toolpath.py)

import hydra
from omegaconf import DictConfig

from tasks.runner import run_cli, train


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    run_cli(train, cfg)


if __name__ == "__main__":
    main()
