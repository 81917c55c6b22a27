"""Hydra callback for multirun sweeps (registered in ``configs/hydra/default.yaml``).

- In a joblib (loky) worker, multiprocessing's default start method is loky's own, whose processes cannot
  start DataLoader workers ("'Process' object has no attribute 'env'"). Each job therefore restores the
  platform's default start method before it runs, so ``data.num_workers > 0`` works in parallel sweeps.
- When a sweep ends, one line names its folder and the command that tabulates it (``tools/collect.py``).

The module imports nothing heavy: Hydra loads it for every run.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SweepSupport(Callback):
    """Restores the platform's multiprocessing start method in loky workers; prints how to collect a sweep."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if multiprocessing.get_start_method(allow_none=True) == "loky":
            multiprocessing.set_start_method(multiprocessing.get_all_start_methods()[0], force=True)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = config.hydra.sweep.dir
        print(f"sweep finished; results table and chart: python tools/collect.py {sweep_dir}", flush=True)
