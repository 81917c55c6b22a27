"""Checkpoint writes are atomic and loud (tasks/checkpoint_io.py).

The failures are simulated so CI can run them: a writer that fails halfway (full disk), a real file-size limit in
a child process (``RLIMIT_FSIZE``), a read-only folder (and, because root ignores permissions, a patched
``os.replace``), and a training run whose third checkpoint write fails.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import torch

from mobivision.data.synthetic import write_shapes_classification
from mobivision.tasks import runner
from mobivision.tasks.checkpoint_io import AtomicCheckpointIO, CheckpointWriteError
from mobivision.tasks.runner import run_cli, train

TINY = ["experiment=demo_classification", "data.synthetic.images_per_class=10"]
CHECKPOINT = {"state_dict": {"weight": torch.arange(4096, dtype=torch.float32)}, "epoch": 3}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``paths.data_dir`` holding the demo shapes as ``TINY`` configures them (10 images per class)."""
    folder = tmp_path_factory.mktemp("data")
    write_shapes_classification(folder / "demo_shapes_cls", images_per_class=10, size=64, seed=0)
    return folder


@pytest.fixture
def previous(tmp_path: Path) -> tuple[Path, bytes]:
    """A good ``best.ckpt`` already in ``checkpoints/``, and its bytes."""
    path = tmp_path / "checkpoints" / "best.ckpt"
    path.parent.mkdir()
    torch.save({"state_dict": {"weight": torch.zeros(8)}, "epoch": 1}, path)
    return path, path.read_bytes()


def _leftovers(folder: Path, keep: str = "best.ckpt") -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != keep)


def _saver_that_fails_halfway(error: OSError):
    """A ``torch.save`` that writes part of the checkpoint, then fails like a full disk."""

    def save(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        f.write(b"PK\x03\x04 half a checkpoint")
        raise error

    return save


def test_full_disk_raises_one_error_naming_the_path_and_keeps_the_previous_file(
    previous: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, before = previous
    monkeypatch.setattr(torch, "save", _saver_that_fails_halfway(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(CheckpointWriteError) as raised:
        AtomicCheckpointIO().save_checkpoint(CHECKPOINT, path)
    assert str(raised.value) == (
        f"cannot write checkpoint {path}: [Errno 28] No space left on device (the previous file is unchanged)"
    )
    assert path.read_bytes() == before
    assert _leftovers(path.parent) == []  # no temp file


def test_a_good_write_replaces_the_file_with_the_same_mode_and_leaves_no_temp_file(
    previous: tuple[Path, bytes],
) -> None:
    path, _ = previous
    path.chmod(0o640)
    AtomicCheckpointIO().save_checkpoint(CHECKPOINT, path)
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["state_dict"]["weight"], CHECKPOINT["state_dict"]["weight"])
    assert path.stat().st_mode & 0o777 == 0o640
    assert _leftovers(path.parent) == []


FILE_SIZE_LIMIT_CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    import torch
    from mobivision.tasks.checkpoint_io import AtomicCheckpointIO, CheckpointWriteError

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
    try:
        AtomicCheckpointIO().save_checkpoint({"weight": torch.zeros(100_000)}, Path(sys.argv[1]))
    except CheckpointWriteError as exc:
        print(f"error: {exc}")
        sys.exit(2)
    """
)


def test_a_real_file_size_limit_fails_with_efbig_and_keeps_the_previous_file(previous: tuple[Path, bytes]) -> None:
    path, before = previous
    child = subprocess.run(
        [sys.executable, "-c", FILE_SIZE_LIMIT_CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert child.returncode == 2, child.stderr[-2000:]
    assert child.stdout.splitlines() == [
        f"error: cannot write checkpoint {path}: [Errno 27] File too large (the previous file is unchanged)"
    ]
    assert path.read_bytes() == before
    assert _leftovers(path.parent) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions; see the patched os.replace test")
def test_a_read_only_folder_raises_instead_of_skipping_the_save(previous: tuple[Path, bytes]) -> None:
    path, before = previous
    path.parent.chmod(0o555)
    try:
        with pytest.raises(CheckpointWriteError, match=rf"cannot write checkpoint {path}: \[Errno 13\] Permission"):
            AtomicCheckpointIO().save_checkpoint(CHECKPOINT, path)
    finally:
        path.parent.chmod(0o755)
    assert path.read_bytes() == before
    assert _leftovers(path.parent) == []


def test_a_refused_rename_raises_and_removes_the_temp_file(
    previous: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root-proof variant of the read-only folder: the final rename is refused (EACCES)."""
    path, before = previous

    def refuse(src: str, dst: str) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", src)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(CheckpointWriteError) as raised:
        AtomicCheckpointIO().save_checkpoint(CHECKPOINT, path)
    assert str(raised.value) == (
        f"cannot write checkpoint {path}: [Errno 13] Permission denied (the previous file is unchanged)"
    )
    assert path.read_bytes() == before
    assert _leftovers(path.parent) == []


def test_a_refused_temp_file_in_a_new_folder_says_nothing_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root-proof variant of an unwritable folder: creating the temp file is refused (EACCES)."""
    path = tmp_path / "checkpoints" / "last.ckpt"

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    with pytest.raises(CheckpointWriteError, match=r"\[Errno 13\] Permission denied \(no file was written\)$"):
        AtomicCheckpointIO().save_checkpoint(CHECKPOINT, path)
    assert not path.exists()


def test_a_failed_removal_is_an_error(previous: tuple[Path, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = previous

    def refuse(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(CheckpointWriteError, match=rf"cannot remove checkpoint {path}: \[Errno 13\]"):
        AtomicCheckpointIO().remove_checkpoint(path)


def test_a_failed_checkpoint_write_stops_training_with_one_error_line(
    tmp_path: Path, data_dir: Path, compose_train, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """3 epochs of 2 steps: epoch 0 writes best.ckpt and last.ckpt, epoch 1's first save fails: the run ends there.

    Lightning's own IO raised a bare ``OSError`` here (a traceback, no ``error:`` line); a ``PermissionError`` it
    swallowed, and the run went on to the end.
    """
    cfg = compose_train(
        tmp_path, [*TINY, "debug=fast", "trainer.max_epochs=3", "data.batch_size=8", "test_after_training=false"]
    )
    cfg.paths.data_dir = str(data_dir)

    saves: list[int] = []
    real_save = torch.save

    def save_then_fill_the_disk(obj: Any, f: Any, *args: Any, **kwargs: Any) -> None:
        saves.append(obj["global_step"])
        if len(saves) == 3:
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f, *args, **kwargs)

    trainers = []
    real_trainer = runner._trainer

    def keep_trainer(*args: Any, **kwargs: Any):
        trainers.append(real_trainer(*args, **kwargs))
        return trainers[-1]

    monkeypatch.setattr(torch, "save", save_then_fill_the_disk)
    monkeypatch.setattr(runner, "_trainer", keep_trainer)
    with pytest.raises(SystemExit) as exited:
        run_cli(train, cfg)

    assert exited.value.code == 2
    checkpoints = Path(cfg.paths.output_dir) / "checkpoints"
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    failed = re.fullmatch(
        rf"error: cannot write checkpoint {re.escape(str(checkpoints))}/(best|last)\.ckpt: \[Errno 28\] No space "
        r"left on device \(the previous file is unchanged\)",
        errors[0],
    )
    assert failed, errors[0]
    # epoch 0: best.ckpt, last.ckpt; epoch 1: its first save (best.ckpt if it improved, else last.ckpt) fails
    assert saves == [2, 2, 4]
    assert trainers[0].global_step == 4  # training stopped at the failure, not after 3 epochs (6 steps)
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]  # no temp file
    kept = torch.load(checkpoints / f"{failed.group(1)}.ckpt", weights_only=False)
    assert kept["global_step"] == 2  # epoch 0's, intact


def test_train_raises_the_checkpoint_error_itself(
    tmp_path: Path, data_dir: Path, compose_train, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without run_cli, ``train`` raises ``CheckpointWriteError`` (not wrapped) at the first save (best.ckpt, at
    the end of the first validation)."""
    cfg = compose_train(tmp_path, [*TINY, "debug=fast", "data.batch_size=8", "test_after_training=false"])
    cfg.paths.data_dir = str(data_dir)
    monkeypatch.setattr(torch, "save", _saver_that_fails_halfway(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(CheckpointWriteError, match=r"best\.ckpt: \[Errno 28\] No space left on device"):
        train(cfg)
    assert list((Path(cfg.paths.output_dir) / "checkpoints").iterdir()) == []


def test_last_checkpoint_knows_the_best_score_of_its_own_validation(tmp_path: Path, data_dir: Path, compose_train):
    # last.ckpt is written at validation end; the best-checkpoint callback must have taken that validation's score
    # by then, or a resumed run starts one validation behind and may overwrite best.ckpt with a worse model.
    cfg = compose_train(tmp_path, [*TINY, "debug=fast", "data.batch_size=8", "test_after_training=false"])
    cfg.paths.data_dir = str(data_dir)
    summary = train(cfg)
    last = torch.load(summary["last_checkpoint"], map_location="cpu", weights_only=False)
    (state,) = [v for k, v in last["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert state["best_model_score"] is not None
    assert float(state["best_model_score"]) == pytest.approx(summary["val"]["val/top1"])
    assert Path(state["best_model_path"]).name == "best.ckpt"
