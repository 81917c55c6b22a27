"""Run folders are never shared (``tasks/run_dirs.py``): runs started in the same second each claim their own
folder, a folder that cannot be created is one ``error:`` line with exit code 2, and a run that stops at a config
error leaves no run folder behind.

The parallel starts run a stand-in for ``tools/train.py``: the same Hydra configs and callbacks, a clock stopped
at one second, and a task that only records its folder, so three runs cost three Python start-ups, not three trainings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Every test starts Python processes that import torch (seconds each): in make test, not make test-fast.
pytestmark = pytest.mark.slow

# Says it is ready, waits for the start signal (all processes start together), then runs Hydra on the train config
# with a clock that always says 2025-01-01 12:00:00. The task records its folder (and the run folder read again).
START_TOGETHER = """
import datetime, json, os, time, uuid
from pathlib import Path

import hydra
import hydra.core.utils
from hydra.core.hydra_config import HydraConfig

from mobivision.configs import CONFIG_DIR


class SameSecond(datetime.datetime):
    @classmethod
    def now(cls, tz=None):
        return cls(2025, 1, 1, 12, 0, 0)


hydra.core.utils.datetime = SameSecond  # Hydra's ${now:...} resolver


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg):
    hydra_cfg = HydraConfig.get()
    record = {"output_dir": hydra_cfg.runtime.output_dir}
    if hydra_cfg.mode.name == "RUN":  # read again, as Lightning's DDP launcher does (in a sweep: not at all)
        record["run_dir"] = hydra_cfg.run.dir
    Path(os.environ["RECORD"], f"{uuid.uuid4().hex}.json").write_text(json.dumps(record))


Path(os.environ["RECORD"], f"ready_{os.getpid()}").touch()
while not Path(os.environ["GO"]).exists():
    time.sleep(0.005)
main()
"""
SECOND = "2025-01-01_12-00-00"
TASK = "demo_classification"


def _start_together(tmp: Path, count: int, *args: str) -> list[dict[str, str]]:
    """Start ``count`` processes of ``START_TOGETHER`` at once in ``tmp``; what each job recorded."""
    script, go, records = tmp / "start_together.py", tmp / "go", tmp / "records"
    script.write_text(START_TOGETHER)
    records.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GO": str(go), "RECORD": str(records)}
    command = [sys.executable, str(script), *args, f"task_name={TASK}"]
    processes = [subprocess.Popen(command, cwd=tmp, env=env, stderr=subprocess.PIPE, text=True) for _ in range(count)]
    deadline = time.monotonic() + 120
    while len(list(records.glob("ready_*"))) < count:  # all imported, waiting at the start line
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes), "a process did not start"
        time.sleep(0.01)
    go.touch()
    for process in processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-3000:]
    return [json.loads(path.read_text()) for path in sorted(records.glob("*.json"))]


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path: Path) -> None:
    records = _start_together(tmp_path, 3)
    runs = tmp_path / "runs" / TASK
    expected = {runs / SECOND, runs / f"{SECOND}_1", runs / f"{SECOND}_2"}
    assert {Path(r["output_dir"]) for r in records} == expected  # one folder each, the later ones with a suffix
    assert set(runs.iterdir()) == expected  # each process claimed exactly one folder
    for record in records:  # hydra.run.dir read again (as Lightning's DDP launcher does) names the same folder
        assert (tmp_path / record["run_dir"]).resolve() == Path(record["output_dir"])
        assert (Path(record["output_dir"]) / ".hydra" / "config.yaml").is_file()


def test_sweeps_started_in_the_same_second_get_their_own_folders(tmp_path: Path) -> None:
    records = _start_together(tmp_path, 2, "-m", "seed=1,2")
    runs = tmp_path / "runs" / TASK
    sweeps = {runs / f"multirun_{SECOND}", runs / f"multirun_{SECOND}_1"}
    assert set(runs.iterdir()) == sweeps
    for sweep in sweeps:  # both jobs of a sweep in its folder, the sweep folder claimed once per sweep
        assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]
    assert {Path(r["output_dir"]) for r in records} == {sweep / job for sweep in sweeps for job in ("0", "1")}


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    return line


# (arguments, the line's key, the path it names, its cause), given the test's folder; "runs" is a file there.
UNCREATABLE = {
    "proc": lambda tmp: (["hydra.run.dir=/proc/x/y"], "hydra.run.dir", "/proc/x/y", "/proc: "),
    "default_under_a_file": lambda tmp: ([], "hydra.run.dir", tmp / "runs" / TASK, f"{tmp / 'runs'} is a file"),
    "sweep_under_a_file": lambda tmp: (
        ["-m", "seed=1,2"], "hydra.sweep.dir", tmp / "runs" / TASK / "multirun_", f"{tmp / 'runs'} is a file"
    ),
}  # fmt: skip


@pytest.mark.parametrize("where", list(UNCREATABLE))
def test_a_run_folder_that_cannot_be_created_is_one_error_line(tmp_path: Path, run_tool, where: str) -> None:
    (tmp_path / "runs").write_text("a file where the run folders would go")
    args, key, path, cause = UNCREATABLE[where](tmp_path)
    result = run_tool("train", *args, "experiment=demo_classification", cwd=tmp_path)
    line = _one_error_line(result)
    assert line.startswith(f"error: {key}: cannot create {path}") and f"({cause}" in line, line
    assert [p.name for p in tmp_path.iterdir()] == ["runs"] and (tmp_path / "runs").is_file()


def test_check_reports_an_output_folder_that_cannot_be_created(tmp_path: Path, run_tool) -> None:
    result = run_tool("check", "experiment=demo_classification", "hydra.run.dir=/proc/x/y", cwd=tmp_path)
    line = _one_error_line(result)
    assert line.startswith("error: paths.output_dir: cannot create /proc/x/y (/proc: "), line
    assert f"✗ {line.removeprefix('error: ')}" in result.stdout.splitlines()
    assert "writable" not in result.stdout
    assert not list(tmp_path.iterdir())  # the probe left nothing behind, no run folder claimed


def test_a_run_stopped_by_a_config_error_leaves_no_run_folder(tmp_path: Path, run_tool) -> None:
    """The folder claimed for the run goes; a folder the user named is kept (it may be a resumed run's)."""
    result = run_tool("train", "experiment=demo_classification", "resume=/no/such.ckpt", cwd=tmp_path)
    assert _one_error_line(result) == "error: resume: checkpoint not found: /no/such.ckpt"
    assert not list(tmp_path.iterdir())  # neither runs/<task>/<time>/ nor the runs/<task>/ made for it
    named = tmp_path / "mine"
    (named / "checkpoints").mkdir(parents=True)
    result = run_tool(
        "train", "experiment=demo_classification", f"hydra.run.dir={named}", "resume=/no/such.ckpt", cwd=tmp_path
    )
    assert _one_error_line(result) == "error: resume: checkpoint not found: /no/such.ckpt"
    assert sorted(p.name for p in named.iterdir()) == [".hydra", "checkpoints", "train.log"]
