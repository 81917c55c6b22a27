"""The export folder after an export: exactly this export's files (listed by its report) beside the user's own,
never an earlier export's left over; and ``--out`` naming a file as one error line."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch

from mobivision.commands.export import export_task, main
from mobivision.errors import ConfigError
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
