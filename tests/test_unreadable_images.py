"""Unreadable training images: ``data.on_error=skip`` names them (one warning per epoch, the list in the run
folder) and trains on; ``raise`` stops with one line naming the file, also when the image is read in a DataLoader
worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mobivision.data.synthetic import write_shapes_classification
from mobivision.tasks.runner import train

TINY = ["experiment=demo_classification", "data.synthetic.images_per_class=10"]


@pytest.fixture
def data_dir(tmp_path: Path) -> tuple[Path, Path]:
    """The demo shapes (10 per class) with one training image broken: the data folder and the broken file."""
    folder = tmp_path / "data"
    write_shapes_classification(folder / "demo_shapes_cls", images_per_class=10, size=64, seed=0)
    broken = sorted((folder / "demo_shapes_cls" / "train").rglob("*.png"))[3]
    broken.write_bytes(b"\x89PNG\r\n\x1a\n cut off")
    return folder, broken


def test_skip_names_the_unreadable_image_and_trains_on(
    tmp_path: Path, data_dir: tuple[Path, Path], compose_train, caplog: pytest.LogCaptureFixture
) -> None:
    folder, broken = data_dir
    cfg = compose_train(
        tmp_path, [*TINY, "debug=fast", "data.batch_size=8", "data.on_error=skip", "test_after_training=false"]
    )
    cfg.paths.data_dir = str(folder)
    cfg.trainer.limit_train_batches = None  # every training image once: the broken one is reached
    with caplog.at_level("WARNING", logger="mobivision"):
        summary = train(cfg)
    listed = Path(summary["output_dir"]) / "skipped_images.txt"
    named = [r.getMessage() for r in caplog.records if broken.name in r.getMessage()]
    assert named == [  # one warning at the end of the epoch, nothing per file
        f"epoch 1: data.on_error=skip replaced 1 unreadable image: {broken} (all listed in {listed})"
    ]
    ((path, reason),) = [line.split("\t") for line in listed.read_text().splitlines()]
    assert path == str(broken) and reason
    assert Path(summary["last_checkpoint"]).is_file()
    assert "MOBIVISION_SKIP_LOG" not in os.environ  # the skip log ends with the run


def test_raise_is_one_line_naming_the_file_also_from_a_worker(
    tmp_path: Path, data_dir: tuple[Path, Path], run_tool
) -> None:
    folder, broken = data_dir
    result = run_tool(
        "train", *TINY, "debug=fast", "data.batch_size=8", "data.num_workers=1", "trainer.limit_train_batches=null",
        f"paths.data_dir={folder}", "progress=plain", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"cannot read image {broken}" in errors[0]
    assert "Traceback" not in result.stderr and "Original" not in result.stderr
