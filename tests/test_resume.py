"""Resume (``resume=auto|<path>``) and fine-tuning (``init_from=<path>``).

The main test kills a training process with SIGKILL in the middle of an epoch, resumes it with ``resume=auto``
and requires the final weights and optimizer state to equal those of an uninterrupted run, tensor for tensor
(CPU, ``trainer.deterministic=true``). The kill point is made reliable with a ``sitecustomize`` hook in the
killed process only: after a given training step it writes a marker file and sleeps until killed.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import pause_training_at, wait_and_kill

from mobivision.data.synthetic import write_shapes_classification
from mobivision.errors import ConfigError, WeightFileError
from mobivision.tasks.classification import ClassificationTask
from mobivision.tasks.resume import init_weights, prepare_resume
from mobivision.tasks.runner import run_cli, train

# Every test uses ``runs``: two real training processes side by side, one killed mid-epoch and resumed.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
EPOCHS, STEPS_PER_EPOCH = 3, 4  # 36 training images (6 classes x 6), batches of 8, drop_last
PAUSE_AT_STEP = 7  # the killed run trains this step, after the mid-epoch checkpoint of step 6
TRAIN_ARGS = [
    "experiment=demo_classification",
    "data.synthetic.images_per_class=10",
    "data.batch_size=8",
    "data.resolution=32",
    "data.num_workers=0",
    f"trainer.max_epochs={EPOCHS}",
    "trainer.deterministic=true",
    "test_after_training=false",
    "log_every_n_steps=1",
]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def _train_cmd(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, str(REPO / "tools" / "train.py"), *TRAIN_ARGS, f"paths.data_dir={data_dir}",
            "progress=plain", *args]  # fmt: skip


def _losses(stdout: str) -> dict[int, str]:
    """``{step: loss}`` from the plain progress lines (``epoch 1/3 step 2/12 loss 1.7602 ...``)."""
    return {int(line.split()[3].split("/")[0]): line.split()[5] for line in stdout.splitlines() if " loss " in line}


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run A uninterrupted; run B killed mid-epoch and resumed with ``resume=auto`` (A and B run side by side)."""
    tmp = tmp_path_factory.mktemp("resume")
    data = tmp / "data"
    write_shapes_classification(data / "demo_shapes_cls", images_per_class=10, size=64, seed=0)
    a, b = tmp / "a", tmp / "b"
    a.mkdir()
    b.mkdir()
    pause, marker = pause_training_at(PAUSE_AT_STEP, tmp)
    killed = subprocess.Popen(
        _train_cmd(data, "callbacks.last_checkpoint.every_n_train_steps=3"),
        cwd=b,
        env=_env(**pause),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        uninterrupted = subprocess.run(_train_cmd(data), cwd=a, env=_env(), capture_output=True, text=True, timeout=300)
        assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    finally:
        killed_out = wait_and_kill(killed, marker)
    run_dirs = list((b / "runs" / "demo_classification").iterdir())
    assert len(run_dirs) == 1
    last = run_dirs[0] / "checkpoints" / "last.ckpt"
    at_kill = _load(last)
    shutil.copy(last, tmp / "at_kill.ckpt")
    resumed = subprocess.run(
        _train_cmd(data, "callbacks.last_checkpoint.every_n_train_steps=3", "resume=auto"),
        cwd=b,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return {
        "tmp": tmp,
        "data": data,
        "a": next((a / "runs" / "demo_classification").glob("*/checkpoints")),
        "b": run_dirs[0],
        "returncode": killed.returncode,
        "at_kill": at_kill,
        "out": {"a": uninterrupted.stdout, "killed": killed_out, "resumed": resumed.stdout},
        "resumed_log": resumed.stdout + resumed.stderr,
    }


def test_a_run_killed_mid_epoch_and_resumed_ends_with_the_same_weights(runs: dict) -> None:
    # The kill: SIGKILL, after step 7, with the newest checkpoint at step 6, in the middle of epoch 2.
    assert runs["returncode"] == -signal.SIGKILL
    step = runs["at_kill"]["global_step"]
    assert step == 6 and step % STEPS_PER_EPOCH != 0 and runs["at_kill"]["epoch"] == 1
    assert f"step {PAUSE_AT_STEP}/{EPOCHS * STEPS_PER_EPOCH}" in runs["out"]["killed"]
    # resume=auto found the run and continued in its folder (the new session's folder is gone).
    assert f"resuming from {runs['b'] / 'checkpoints' / 'last.ckpt'}" in runs["resumed_log"]
    assert [p.name for p in runs["b"].parent.iterdir()] == [runs["b"].name]
    assert (runs["b"] / "summary.json").is_file()
    assert (runs["b"] / "csv" / "metrics.csv").is_file() and (runs["b"] / "csv" / "metrics_1.csv").is_file()
    assert "resuming from" in (runs["b"] / "train.log").read_text()  # the session's log went to the run's
    assert (runs["b"] / ".hydra").is_dir() and list((runs["b"] / ".hydra").glob("resume_*/overrides.yaml"))
    # The resumed run trained steps 7..12 on the same batches as the uninterrupted one.
    uninterrupted, resumed = _losses(runs["out"]["a"]), _losses(runs["out"]["resumed"])
    assert sorted(resumed) == list(range(step + 1, EPOCHS * STEPS_PER_EPOCH + 1))
    assert resumed == {k: v for k, v in uninterrupted.items() if k > step}
    # Final weights, BatchNorm statistics and optimizer state: equal, tensor for tensor.
    final_a, final_b = _load(runs["a"] / "last.ckpt"), _load(runs["b"] / "checkpoints" / "last.ckpt")
    assert final_a["global_step"] == final_b["global_step"] == EPOCHS * STEPS_PER_EPOCH
    assert final_a["state_dict"].keys() == final_b["state_dict"].keys()
    different = [k for k, v in final_a["state_dict"].items() if not torch.equal(v, final_b["state_dict"][k])]
    assert not different
    opt_a, opt_b = final_a["optimizer_states"][0], final_b["optimizer_states"][0]
    assert opt_a["param_groups"] == opt_b["param_groups"]
    assert opt_a["state"].keys() == opt_b["state"].keys()
    for index, state in opt_a["state"].items():
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(opt_b["state"][index][name])), (index, name)
    assert final_a["lr_schedulers"] == final_b["lr_schedulers"]


@pytest.fixture
def deterministic_mode():
    """In-process runs with ``trainer.deterministic=true`` leave torch in deterministic mode; undo it."""
    yield
    torch.use_deterministic_algorithms(False)


def _compose(compose_train, tmp: Path, data: Path, *overrides: str):
    cfg = compose_train(tmp, [*TRAIN_ARGS, *overrides])
    cfg.paths.data_dir = str(data)
    return cfg


def test_resume_refuses_a_changed_config_and_names_the_keys_unless_forced(
    runs: dict, compose_train, tmp_path: Path, caplog: pytest.LogCaptureFixture, deterministic_mode
) -> None:
    run = tmp_path / "old_run"
    shutil.copytree(runs["a"].parent, run)
    last = run / "checkpoints" / "last.ckpt"
    changed = ["optimizer.lr=0.02", f"resume={last}"]
    with pytest.raises(ConfigError) as refused:
        train(_compose(compose_train, tmp_path, runs["data"], *changed, "data.batch_size=4"))
    message = str(refused.value)
    assert "optimizer.lr: 0.01 -> 0.02" in message and "data.batch_size: 8 -> 4" in message
    assert "resume_force=true" in message and str(last) in message
    assert "trainer.max_epochs" not in message
    # Forced, and one epoch longer (allowed without forcing): trains epoch 4 with lr 0.02, in the old run's folder.
    caplog.set_level(logging.INFO, logger="mobivision")
    cfg = _compose(
        compose_train, tmp_path, runs["data"], *changed, "resume_force=true", f"trainer.max_epochs={EPOCHS + 1}"
    )
    summary = train(cfg)
    assert summary["output_dir"] == str(run)
    assert not (tmp_path / "run").exists()  # this session's own (empty) folder was removed
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "optimizer.lr: 0.01 -> 0.02" in warnings and f"trainer.max_epochs: {EPOCHS} -> {EPOCHS + 1}" in warnings
    extended = _load(last)
    assert extended["epoch"] == EPOCHS and extended["global_step"] == (EPOCHS + 1) * STEPS_PER_EPOCH
    assert extended["hyper_parameters"]["optimizer"]["lr"] == 0.02


def test_resume_auto_picks_the_newest_run_or_starts_fresh(
    runs: dict, compose_train, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mobivision")
    session = tmp_path / "runs" / "demo_classification" / "session"
    session.mkdir(parents=True)
    cfg = _compose(compose_train, tmp_path, runs["data"], "resume=auto")
    cfg.paths.output_dir = str(session)
    assert prepare_resume(cfg) is None
    assert "resume=auto: no run with checkpoints/last.ckpt" in caplog.text and "starting a fresh run" in caplog.text
    assert cfg.paths.output_dir == str(session) and session.is_dir()
    for name, age in (("older", 100), ("newer", 10), ("no_checkpoint", 0)):
        (session.parent / name / "checkpoints").mkdir(parents=True)
        if name != "no_checkpoint":
            last = session.parent / name / "checkpoints" / "last.ckpt"
            shutil.copy(runs["a"] / "last.ckpt", last)
            os.utime(last, (time.time() - age, time.time() - age))
    assert prepare_resume(cfg) == session.parent / "newer" / "checkpoints" / "last.ckpt"
    assert cfg.paths.output_dir == str(session.parent / "newer")
    assert not session.exists()
    own = session.parent / "older"  # a run folder with its own last.ckpt (a requeued job) resumes itself
    cfg.paths.output_dir = str(own)
    assert prepare_resume(cfg) == own / "checkpoints" / "last.ckpt"


def test_resume_argument_errors(runs: dict, compose_train, tmp_path: Path) -> None:
    missing = tmp_path / "nothing" / "last.ckpt"
    with pytest.raises(ConfigError, match=f"checkpoint not found: {missing}"):
        prepare_resume(_compose(compose_train, tmp_path, runs["data"], f"resume={missing}"))
    both = _compose(compose_train, tmp_path, runs["data"], "resume=auto", f"init_from={runs['a'] / 'best.ckpt'}")
    with pytest.raises(ConfigError, match="resume and init_from exclude each other"):
        prepare_resume(both)
    # resume=<path>: resume from that checkpoint, in its run folder (train has no other spelling of it).
    given = _compose(compose_train, tmp_path, runs["data"], f"resume={runs['a'] / 'last.ckpt'}")
    assert prepare_resume(given) == runs["a"] / "last.ckpt" and given.paths.output_dir == str(runs["a"].parent)
    assert "ckpt_path" not in given
    # a run already past the new trainer.max_epochs (3 epochs done, 1 asked): one error, not Lightning's traceback
    short = _compose(compose_train, tmp_path, runs["data"], f"resume={runs['a'] / 'last.ckpt'}", "resume_force=true")
    short.trainer.max_epochs = 1
    with pytest.raises(
        ConfigError, match=r"is at epoch 2, past trainer.max_epochs=1; set trainer.max_epochs=3 or more"
    ):
        prepare_resume(short)


def _fresh_task(source: dict, class_names: list[str]) -> ClassificationTask:
    hparams = {k: v for k, v in source["hyper_parameters"].items() if not k.startswith("_")}
    return ClassificationTask(**{**hparams, "class_names": class_names})


def test_init_from_loads_matching_weights_and_reports_the_rest(
    runs: dict, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    source_path = runs["a"] / "best.ckpt"
    source = _load(source_path)
    names = source["hyper_parameters"]["class_names"]
    task = _fresh_task(source, names)
    report = init_weights(task, source_path)
    assert not report["shape_mismatch"] and not report["missing"] and not report["unexpected"]
    state = task.state_dict()
    assert all(torch.equal(state[k], v) for k, v in source["state_dict"].items())
    # Four classes instead of six: the classifier is skipped, and said so in one warning.
    caplog.set_level(logging.INFO, logger="mobivision")
    task = _fresh_task(source, names[:4])
    report = init_weights(task, source_path)
    head = [k for k, v in task.state_dict().items() if v.shape != source["state_dict"][k].shape]
    assert head == ["model.head.fc.weight", "model.head.fc.bias"]
    assert report["shape_mismatch"] == ["model.head.fc.bias (6,) -> (4,)", "model.head.fc.weight (6, 256) -> (4, 256)"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and all(k in warnings[0] for k in head)
    state = task.state_dict()
    assert all(torch.equal(state[k], source["state_dict"][k]) for k in report["loaded"])
    assert len(report["loaded"]) == len(state) - len(head)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"other.weight": torch.zeros(3)}}, foreign)
    with pytest.raises(WeightFileError, match=f"{foreign} shares no weight"):
        init_weights(task, foreign)


def test_train_init_from_a_file_that_is_not_a_checkpoint_is_one_error(
    runs: dict, compose_train, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Through ``run_cli``, which is all ``tools/train.py`` does (tests/test_tools.py runs the script itself)."""
    bogus = tmp_path / "notes.ckpt"
    bogus.write_text("not a checkpoint\n")
    with pytest.raises(SystemExit) as exited:
        run_cli(train, _compose(compose_train, tmp_path, runs["data"], f"init_from={bogus}"))
    assert exited.value.code == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: ") and str(bogus) in errors[0], errors
