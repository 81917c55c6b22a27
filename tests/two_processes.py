"""The one-vs-two-process evaluation the task tests share: ``tools/eval.py`` on a checkpoint in one process and
under DDP in two (gloo, CPU), where ``DistributedSampler`` pads the last shard with repeated images that gathering
must remove."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def evaluate_in_one_and_two_processes(
    run_tool: Callable[..., Any], checkpoint: str | Path, folder: Path
) -> tuple[dict[str, float], dict[str, float], str]:
    """The test metrics of both runs (``folder/one``, ``folder/two``) and the single run's stdout; fails with the
    failing run's stderr."""
    args = [f"ckpt_path={checkpoint}", "progress=plain", "trainer.accelerator=cpu"]
    single = run_tool("eval", *args, f"paths.output_dir={folder / 'one'}", cwd=folder)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = ("trainer.devices=2", "trainer.strategy=ddp")
    double = run_tool("eval", *args, f"paths.output_dir={folder / 'two'}", *ddp, cwd=folder)
    assert double.returncode == 0, double.stderr[-3000:]
    one, two = (json.loads((folder / name / "summary.json").read_text())["test"] for name in ("one", "two"))
    return one, two, single.stdout
