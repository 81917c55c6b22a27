"""The export folder after an export: exactly this export's files (listed by its report) beside the user's own,
never an earlier export's left over; ``--out`` naming a file, or a folder the export may not write, as one error
line that leaves the folder as it was; a write failing halfway leaves no partial file."""

from __future__ import annotations

import builtins
import errno
import json
import os
from pathlib import Path

import lightning as L
import pytest
import torch

from mobivision.commands import export_formats
from mobivision.commands.export import export_task, main
from mobivision.errors import ConfigError, ExportError
from mobivision.tasks.classification import ClassificationTask
from mobivision.tasks.runner import load_task

META = {"resolution": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "crop_pct": 1.0}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny classifier checkpoint (random weights), as training writes it."""
    torch.manual_seed(0)
    task = ClassificationTask(
        class_names=list("abc"),
        backbone={"name": "mobilenet_v1", "width_mult": 0.25},
        data_meta=META,
        optimizer={"name": "adamw", "lr": 1e-3},
        scheduler={"name": "cosine"},
    )
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, accelerator="cpu")
    trainer.strategy.connect(task)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return path


def folder_names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_an_export_replaces_the_previous_exports_files_and_keeps_the_users(checkpoint: Path, tmp_path: Path) -> None:
    task = load_task(checkpoint).eval()
    out = tmp_path / "export"
    export_task(task, out, formats="onnx,torchscript", name="old", parity_images=0)
    assert folder_names(out) == {"old.onnx", "old.ts", "export_report.json"}
    (out / "README.txt").write_text("the user's own notes\n")

    result = export_task(task, out, formats="onnx", name="model", parity_images=0)
    assert folder_names(out) == {"model.onnx", "export_report.json", "README.txt"}
    report = json.loads((out / "export_report.json").read_text())
    assert report["files"] == ["model.onnx"] and [r.path.name for r in result.rows] == ["model.onnx"]

    with pytest.raises(ConfigError, match="for detectors"):  # refused before writing: the export stays whole
        export_task(task, out, formats="onnx-nms", parity_images=0)
    assert folder_names(out) == {"model.onnx", "export_report.json", "README.txt"}


def test_out_naming_a_file_is_one_error_line(checkpoint: Path, tmp_path: Path, capsys) -> None:
    a_file = tmp_path / "model.onnx"
    a_file.write_bytes(b"not a folder")
    assert main([str(checkpoint), "--out", str(a_file), "--formats", "onnx", "--parity-images", "0"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"error: --out: {a_file} is a file, expected a folder"]
    assert a_file.read_bytes() == b"not a folder"
    with pytest.raises(ConfigError, match="is a file, expected a folder"):
        export_task(load_task(checkpoint), a_file, formats="onnx", parity_images=0)


def _export_then_user_file(checkpoint: Path, out: Path) -> dict[str, bytes]:
    """``out`` holding a previous export (``old.*`` and its report) and the user's own notes: its files' bytes."""
    export_task(load_task(checkpoint).eval(), out, formats="onnx", name="old", parity_images=0)
    (out / "notes.txt").write_text("the user's own\n")
    return {p.name: p.read_bytes() for p in out.iterdir()}


def _refuse_writes_in(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every creation, write, removal or rename of a file in ``folder`` fails with ``EACCES``, as in a folder the
    user may read but not write (the tests run as root, which permission bits do not stop)."""

    def inside(path: object) -> bool:
        return isinstance(path, str | bytes | os.PathLike) and Path(os.fsdecode(path)).parent == folder

    def refused(path: object) -> PermissionError:
        return PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))

    def guard(original, writes):
        def guarded(path, *args, **kwargs):
            if inside(path) and writes(*args, **kwargs):
                raise refused(path)
            return original(path, *args, **kwargs)

        return guarded

    def opens_to_write(mode="r", *args, **kwargs):
        return any(c in mode for c in "wax+")

    def flags_write(flags, *args, **kwargs):
        return bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))

    monkeypatch.setattr(builtins, "open", guard(builtins.open, opens_to_write))
    monkeypatch.setattr(os, "open", guard(os.open, flags_write))
    for name in ("unlink", "remove", "mkdir", "rmdir"):
        monkeypatch.setattr(os, name, guard(getattr(os, name), lambda *args, **kwargs: True))

    def guard_move(original):
        def move(src, dst, *args, **kwargs):
            if inside(dst) or inside(src):
                raise refused(dst)
            return original(src, dst, *args, **kwargs)

        return move

    for name in ("replace", "rename"):
        monkeypatch.setattr(os, name, guard_move(getattr(os, name)))


def test_a_folder_the_export_may_not_write_is_one_error_line_and_stays_as_it_was(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``PermissionError`` tracebacks (removing the previous export's files, then writing the report)."""
    out = tmp_path / "export"
    before = _export_then_user_file(checkpoint, out)
    _refuse_writes_in(out, monkeypatch)
    assert main([str(checkpoint), "--out", str(out), "--formats", "onnx", "--parity-images", "0"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: cannot write {out / 'model.onnx'}: Permission denied (nothing was written or removed)"
    ]
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the previous export too: nothing removed


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions; see the simulated refusal above")
def test_a_read_only_folder_is_one_error_line_and_stays_as_it_was(
    checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export"
    before = _export_then_user_file(checkpoint, out)
    out.chmod(0o555)
    try:
        assert main([str(checkpoint), "--out", str(out), "--formats", "onnx", "--parity-images", "0"]) == 2
    finally:
        out.chmod(0o755)
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: cannot write {out / 'model.onnx'}: Permission denied (nothing was written or removed)"
    ]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="no sysfs here")
def test_a_folder_no_one_may_write_is_refused_for_real(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """sysfs refuses a new file to every user, root included: the refusal of a real file system, unpatched."""
    assert main([str(checkpoint), "--out", "/sys", "--formats", "onnx", "--parity-images", "0"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: cannot write /sys/model.onnx: Permission denied (nothing was written or removed)"
    ]


def test_a_write_failing_halfway_leaves_no_partial_file_and_the_report_lists_the_rest(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills while the TorchScript file is written, after the ONNX file was written and checked.
    Before: the ``OSError`` as a traceback, and half a ``model.ts`` in the folder."""

    def fill_the_disk(module, path: Path, **_) -> Path:
        path.write_bytes(b"half a model")
        raise OSError(errno.ENOSPC, "No space left on device")  # write() names no file

    monkeypatch.setattr(export_formats, "export_torchscript", fill_the_disk)
    out = tmp_path / "export"
    with pytest.raises(ExportError) as error:
        export_task(load_task(checkpoint).eval(), out, formats="onnx,torchscript", parity_images=0)
    assert str(error.value) == (
        f"cannot write {out / 'model.ts'}: No space left on device (no partial file is left; export_report.json "
        "lists the files written before it)"
    )
    assert folder_names(out) == {"model.onnx", "export_report.json"}  # no model.ts, no temp file
    assert json.loads((out / "export_report.json").read_text())["files"] == ["model.onnx"]


def test_a_refused_write_keeps_a_file_it_did_not_touch(
    checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only ``model.ts`` of the user's where the export writes one: refused, and kept as it was."""

    def refused(module, path: Path, **_) -> Path:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(export_formats, "export_torchscript", refused)
    out = tmp_path / "export"
    out.mkdir()
    (out / "model.ts").write_bytes(b"the user's")
    with pytest.raises(ExportError, match=rf"^cannot write {out / 'model.ts'}: Permission denied \(no partial"):
        export_task(load_task(checkpoint).eval(), out, formats="onnx,torchscript", parity_images=0)
    assert (out / "model.ts").read_bytes() == b"the user's"
