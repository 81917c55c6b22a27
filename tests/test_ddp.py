"""``trainer=ddp`` with 2 CPU processes (gloo): one run folder, and the same validation metrics as one process.

DistributedSampler pads a split whose size is not a multiple of the process count by repeating images; the
val split here has 17 images (odd, and not a multiple of 2 x the batch of 4), so a metric that counted the
repeats would differ from the single-process one.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
from two_processes import evaluate_in_one_and_two_processes

from mobivision.data.synthetic import write_shapes_classification

# Every test uses ``ddp_run``, a real 2-process training (and the last one two more evaluations).
pytestmark = pytest.mark.slow

VAL_IMAGES = 17
METRICS = ("loss", "top1", "top5", "mean_class_acc")


def _finish(process: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory, start_tool) -> dict:
    """A 1-epoch DDP training (2 CPU processes) of MobileNetV1-0.25 at 32 px on 6 x 14 training images."""
    cwd = tmp_path_factory.mktemp("ddp")
    root = write_shapes_classification(cwd / "shapes", images_per_class=20, size=32, seed=0)
    next((root / "val" / "circle").glob("*.png")).unlink()  # 17 val images: DistributedSampler pads to 18
    assert len(list((root / "val").rglob("*.png"))) == VAL_IMAGES
    result = _finish(
        start_tool(
            "train",
            "experiment=demo_classification",
            "trainer=ddp",
            "trainer.devices=2",
            "trainer.accelerator=cpu",
            "trainer.max_epochs=1",
            "trainer.deterministic=true",
            f"data.root={root}",
            "data.synthetic=null",
            "data.resolution=32",
            "data.batch_size=8",
            "data.eval_batch_size=4",
            "data.num_workers=0",
            "scheduler.warmup_epochs=0",
            "test_after_training=false",
            "progress=plain",
            "log_every_n_steps=2",
            cwd=cwd,
        )
    )
    runs = sorted((cwd / "runs" / "demo_classification").iterdir())
    return {"cwd": cwd, "result": result, "runs": runs, "run_dir": runs[0]}


def test_ddp_training_writes_one_run_folder(ddp_run: dict) -> None:
    run_dir: Path = ddp_run["run_dir"]
    assert ddp_run["runs"] == [run_dir], "a second (timestamp) folder: rank 1 composed its own run dir"
    # Rank 1 ran in the same folder (Lightning passes it hydra.run.dir) and logged there.
    rank1_log = run_dir / "train_ddp_process_1.log"
    assert rank1_log.is_file() and (run_dir / ".hydra" / "config.yaml").is_file()
    config = (run_dir / "config.yaml").read_text()
    assert f"output_dir: {run_dir}" in config  # ${now:} resolved once: rank 0's folder everywhere
    # config.yaml is written once, by rank 0, before rank 1 even started.
    first = re.match(r"\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]", rank1_log.read_text())
    assert first is not None, rank1_log.read_text()[:500]
    rank1_start = datetime.strptime(first.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    assert (run_dir / "config.yaml").stat().st_mtime < rank1_start
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["output_dir"] == str(run_dir) and Path(summary["best_checkpoint"]).is_file()
    assert "gloo" in ddp_run["result"].stderr and "Starting with 2 processes" in ddp_run["result"].stderr


def test_ddp_progress_is_plain_lines_with_eta_from_rank_zero_only(ddp_run: dict) -> None:
    """Output to a pipe (a log file): periodic plain lines with ETA, printed once (rank 0), not per process."""
    lines = ddp_run["result"].stdout.splitlines()
    number, duration = r"\d+\.\d{4}", r"\d+m\d{2}s"
    steps = [line for line in lines if line.startswith("epoch 1/1 step")]
    # 84 training images, 42 per process, 5 batches of 8 (drop_last): a line at steps 2 and 4.
    assert [line.split()[3] for line in steps] == ["2/5", "4/5"], lines
    for line in steps:
        assert re.fullmatch(rf"epoch 1/1 step \d/5 loss {number} lr \S+ elapsed {duration} eta {duration}", line)
    ends = [line for line in lines if line.startswith("epoch 1/1 val/")]
    assert len(ends) == 1 and re.search(rf"val/top1 {number}", ends[0]), lines


def test_ddp_validation_metrics_equal_one_process_evaluation(ddp_run: dict, tmp_path: Path, start_tool) -> None:
    """The DDP run's val metrics = tools/eval.py split=val on its best checkpoint in 1 and in 2 processes."""
    best = json.loads((ddp_run["run_dir"] / "summary.json").read_text())["best_checkpoint"]
    single, double, _ = evaluate_in_one_and_two_processes(start_tool, best, tmp_path, "split=val")
    trained = json.loads((ddp_run["run_dir"] / "summary.json").read_text())["val"]
    print({"ddp training val": trained, "eval 1 process": single, "eval 2 processes": double})
    for name in METRICS:
        assert double[f"test/{name}"] == pytest.approx(single[f"test/{name}"], abs=1e-6), name
        assert trained[f"val/{name}"] == pytest.approx(single[f"test/{name}"], abs=1e-6), name
    for folder in ("one", "two"):  # every val image exactly once, the padded repeat dropped
        with open(tmp_path / folder / "predictions_val.csv") as f:
            images = [row["image"] for row in csv.DictReader(f)]
        assert len(images) == len(set(images)) == VAL_IMAGES


FILE_SIZE_LIMIT = """
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # logs fit, a checkpoint (~1 MB) does not
"""


def test_a_checkpoint_rank_zero_cannot_write_ends_every_rank_with_one_error_line(tmp_path: Path, start_tool) -> None:
    """Rank 0 stops at the failed write; the rank it launched is stopped with it (tasks/callbacks.py
    ``StopOtherRanks``) instead of failing in its next collective with a gloo traceback after the error line."""
    root = write_shapes_classification(tmp_path / "shapes", images_per_class=4, size=32, seed=0)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FILE_SIZE_LIMIT)
    process = start_tool(
        "train",
        "experiment=demo_classification",
        "trainer=ddp",
        "trainer.devices=2",
        "trainer.accelerator=cpu",
        "trainer.max_epochs=3",
        f"data.root={root}",
        "data.synthetic=null",
        "data.resolution=32",
        "data.batch_size=4",
        "data.num_workers=0",
        "progress=plain",
        cwd=tmp_path,
        env={"PYTHONPATH": str(hook)},
    )
    _, err = process.communicate(timeout=300)
    assert process.returncode == 2, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.fullmatch(
        r"error: cannot write checkpoint .*/checkpoints/best\.ckpt: \[Errno 27\] File too large "
        r"\(no file was written\)",
        errors[0],
    ), err[-3000:]
    assert "Traceback" not in err and "[rank1]" not in err, err[-3000:]
    checkpoints = next((tmp_path / "runs" / "demo_classification").glob("*/checkpoints"))
    assert not any(checkpoints.iterdir())  # no truncated checkpoint, no temp file
