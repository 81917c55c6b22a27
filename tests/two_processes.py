"""The one-vs-two-process evaluation every task's tests share: ``tools/eval.py`` on a checkpoint in one process and,
at the same time, under DDP in two (gloo, CPU), where ``DistributedSampler`` pads the last shard with repeated images
that gathering must remove."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def evaluate_in_one_and_two_processes(
    start_tool: Callable[..., Any], checkpoint: str | Path, folder: Path, *args: str
) -> tuple[dict[str, float], dict[str, float], str]:
    """The test metrics of both runs (``folder/one``, ``folder/two``; ``args``: more overrides, e.g. ``split=val``)
    and the single run's stdout; fails with the failing run's stderr."""
    common = [f"ckpt_path={checkpoint}", "progress=plain", "trainer.accelerator=cpu", *args]
    single = start_tool("eval", *common, f"paths.output_dir={folder / 'one'}", cwd=folder)
    ddp = ("trainer=ddp", "trainer.devices=2")
    double = start_tool("eval", *common, f"paths.output_dir={folder / 'two'}", *ddp, cwd=folder)
    printed = []
    for process in (single, double):
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        printed.append(out)
    one, two = (json.loads((folder / name / "summary.json").read_text())["test"] for name in ("one", "two"))
    return one, two, printed[0]
