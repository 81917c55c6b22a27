"""Check a training config before training: ``python tools/check.py experiment=demo_classification [overrides]``.

Takes exactly the arguments of ``tools/train.py`` and composes the same config, then checks the data paths,
weight paths and output folder, loads one training batch and runs one forward pass (``tasks/check.py``).
Prints ``✓`` lines; the first problem ends in one ``error: <key>: <problem>`` line on stderr and exit code 2.

Nothing is written (Hydra's run folder goes to a temporary folder, removed at exit), except what training
writes on first use anyway: a synthetic dataset and the geo task's cell partitionings.
"""

import _toolpath  # noqa: F401 (must come first, see tools/_toolpath.py)

import shutil
import sys
import tempfile
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from tasks.check import check
from tasks.runner import run_cli

RUN_DIR = "hydra.run.dir="


def _intended_output_dir(cfg: DictConfig, user_run_dir: str | None) -> Path:
    """Where ``tools/train.py`` with these arguments would write: ``paths.output_dir`` if set explicitly,
    else Hydra's configured run folder (this tool's own run folder is a temporary one)."""
    hydra_cfg = HydraConfig.get()
    output_dir = Path(cfg.paths.output_dir).expanduser().resolve()
    if output_dir != Path(hydra_cfg.runtime.output_dir).resolve():
        return output_dir
    if user_run_dir is not None:
        return Path(user_run_dir).expanduser().resolve()
    composed = hydra.compose(
        config_name=hydra_cfg.job.config_name, overrides=list(hydra_cfg.overrides.task), return_hydra_config=True
    )
    return Path(OmegaConf.select(composed, "hydra.run.dir")).expanduser().resolve()


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    run_cli(lambda c: check(c, output_dir=_intended_output_dir(c, _USER_RUN_DIR)), cfg)


_USER_RUN_DIR: str | None = None

if __name__ == "__main__":
    scratch = tempfile.mkdtemp(prefix="mobivision-check-")
    user = [a for a in sys.argv[1:] if a.startswith(RUN_DIR)]
    _USER_RUN_DIR = user[-1][len(RUN_DIR) :] if user else None
    sys.argv = [a for a in sys.argv if not a.startswith(RUN_DIR)] + [RUN_DIR + scratch]
    try:
        main()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
