"""Sweeps end to end: ``tools/train.py -m`` with the joblib launcher, then ``tools/collect.py`` on the sweep.

One real sweep of two runs (MobileNetV1 width 0.25 and 0.5 on the tiny synthetic shapes set, two batches of
one epoch, one DataLoader worker per job so the loky start-method fix in ``tasks/sweep.py`` is exercised) is
shared by the module. The table is checked against each run's own files and against ``mobivision.profiling``;
the SLURM launcher config is checked by building the sbatch script submitit would submit.
"""

from __future__ import annotations

import csv
import importlib
import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from PIL import Image

from mobivision import create_model
from mobivision.commands.collect import CollectError, best_validation, collect, find_runs, read_run
from mobivision.data.synthetic import write_shapes_classification
from mobivision.profiling import profile

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
WIDTHS = (0.25, 0.5)
RESOLUTION = 64
NUM_CLASSES = 6  # demo shapes
CHECKPOINTS = ("checkpoints/best.ckpt", "checkpoints/last.ckpt")


# Two trainings through the joblib launcher: every test that uses the sweep is marked slow.
@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory, run_tool) -> Path:
    """A two-run sweep through the joblib launcher (``hydra/launcher=parallel``, two jobs at once)."""
    tmp = tmp_path_factory.mktemp("sweep")
    # Written once up front: parallel jobs that each write the synthetic set on first use would race.
    write_shapes_classification(tmp / "data" / "demo_shapes_cls", images_per_class=10, size=RESOLUTION, seed=0)
    result = run_tool(
        "train",
        "-m",
        "hydra/launcher=parallel",
        "hydra.launcher.n_jobs=2",
        "experiment=demo_classification",
        "debug=fast",
        "data.synthetic.images_per_class=10",
        "data.num_workers=1",
        "progress=plain",
        f"paths.data_dir={tmp / 'data'}",
        f"hydra.sweep.dir={tmp / 'sweep'}",
        f"backbone.width_mult={','.join(map(str, WIDTHS))}",
        cwd=tmp,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"python tools/collect.py {tmp / 'sweep'}" in result.stdout
    return tmp / "sweep"


@pytest.fixture(scope="module")
def collected(sweep: Path, run_tool) -> dict:
    """``tools/collect.py`` on the sweep, into another folder; its output and the table rows."""
    out = sweep.parent / "report"
    result = run_tool("collect", sweep, "--out", out, "--threads", "1", "--latency-repeats", "3", cwd=sweep.parent)
    assert result.returncode == 0, result.stderr[-4000:]
    with (out / "collect.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {"out": out, "result": result, "rows": rows}


@pytest.fixture
def tool() -> ModuleType:
    """The command behind the tool (``mobivision.commands.collect``), called in-process."""
    return importlib.import_module("mobivision.commands.collect")


@pytest.mark.slow
def test_every_run_folder_holds_the_run_record(sweep: Path) -> None:
    for num, width in enumerate(WIDTHS):
        run = sweep / str(num)
        for name in ("config.yaml", "summary.json", "csv/metrics.csv", *CHECKPOINTS):
            assert (run / name).is_file(), f"{run / name} missing"
        assert list((run / "tensorboard").glob("events.out.tfevents.*"))
        assert f"backbone.width_mult={width}" in (run / ".hydra" / "overrides.yaml").read_text()
        cfg = OmegaConf.load(run / "config.yaml")
        assert (cfg.backbone.width_mult, cfg.data.resolution) == (width, RESOLUTION)
        assert (cfg.monitor.metric, cfg.monitor.mode) == ("val/top1", "max")


@pytest.mark.slow
def test_collect_table_matches_each_run_and_the_profiler(collected: dict, sweep: Path) -> None:
    rows, out = collected["rows"], collected["out"]
    assert [float(r["width"]) for r in rows] == list(WIDTHS)  # sorted by MACs
    assert [int(r["macs"]) for r in rows] == sorted(int(r["macs"]) for r in rows)
    for row in rows:
        run = sweep / row["run"]
        summary = json.loads((run / "summary.json").read_text())
        with (run / "csv" / "metrics.csv").open(newline="") as f:
            val_top1 = [float(r["val/top1"]) for r in csv.DictReader(f) if r["val/top1"]]
        assert float(row["val"]) == max(val_top1)
        assert float(row["test"]) == summary["test"]["test/top1"]
        state = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
        checkpoint_callback = next(v for k, v in state["callbacks"].items() if k.startswith("ModelCheckpoint"))
        assert float(row["val"]) == pytest.approx(float(checkpoint_callback["best_model_score"]))
        model = create_model("mobilenet_v1", width_mult=float(row["width"]), num_classes=NUM_CLASSES)
        cost = profile(model, RESOLUTION)
        assert (int(row["macs"]), int(row["params"])) == (cost.macs, cost.params)
        assert (row["metric"], int(row["resolution"]), row["backbone"]) == ("val/top1", RESOLUTION, "mobilenet_v1")
        assert float(row["latency_ms"]) > 0
    markdown = (out / "collect.md").read_text()
    assert markdown in collected["result"].stdout
    assert len([line for line in markdown.splitlines() if line.startswith("| ") and "mobilenet_v1" in line]) == 2
    with Image.open(out / "tradeoff.png") as image:
        image.verify()
    with Image.open(out / "tradeoff.png") as image:
        assert image.format == "PNG" and image.size == (700, 500)
    assert "warning" not in collected["result"].stderr


@pytest.mark.slow
def test_unfinished_run_is_reported_and_a_moved_run_finds_its_checkpoint(
    sweep: Path, tmp_path: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(sweep / "0", copy / "0")
    summary_path = copy / "0" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["best_checkpoint"] = "/elsewhere/checkpoints/best.ckpt"  # e.g. copied from a cluster
    summary_path.write_text(json.dumps(summary))
    failed = copy / "1"
    (failed / ".hydra").mkdir(parents=True)
    shutil.copy(sweep / "1" / "config.yaml", failed / "config.yaml")

    assert tool.main([str(copy), "--no-latency"]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: skipped 1 run folder(s) without summary.json (failed or still running): 1"]
    with (copy / "collect.csv").open(newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["checkpoint"] == str(copy / "0" / "checkpoints" / "best.ckpt")
    assert row["latency_ms"] == ""


@pytest.mark.slow
def test_unknown_metric_names_the_logged_ones(
    sweep: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tool.main([str(sweep), "--metric", "val/top9", "--no-latency", "--out", str(sweep.parent / "x")]) == 2
    err = capsys.readouterr().err
    logged = "val/loss, val/mean_class_acc, val/top1, val/top5"
    assert err == f"error: no run logged val/top9; validation metrics logged: {logged}\n"


@pytest.mark.parametrize("make", ["empty", "missing", "only_unfinished"])
def test_nothing_to_collect_is_one_error_line(
    tmp_path: Path, tool: ModuleType, capsys: pytest.CaptureFixture[str], make: str
) -> None:
    folder = tmp_path / "sweep"
    if make != "missing":
        folder.mkdir()
    if make == "only_unfinished":
        (folder / "0" / ".hydra").mkdir(parents=True)
    assert tool.main([str(folder), "--no-latency"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert ("not found" if make == "missing" else "no finished run") in err


def test_find_runs_ignores_hidden_folders(tmp_path: Path) -> None:
    run = tmp_path / "multirun" / "3"
    (run / ".hydra").mkdir(parents=True)
    for name in ("config.yaml", "summary.json", ".hydra/config.yaml"):
        (run / name).write_text("{}")
    (tmp_path / "multirun" / ".submitit" / "123").mkdir(parents=True)
    assert find_runs(tmp_path) == ([run], [])


@pytest.mark.slow
def test_collect_refuses_runs_with_different_metrics(sweep: Path, tmp_path: Path) -> None:
    for num in (0, 1):
        shutil.copytree(sweep / str(num), tmp_path / str(num))
    config = tmp_path / "1" / "config.yaml"
    config.write_text(config.read_text().replace("metric: val/top1", "metric: val/top5"))
    with pytest.raises(CollectError, match=r"different metrics \(val/top1, val/top5\)"):
        collect(tmp_path)


@pytest.mark.slow
def test_metrics_kept_by_a_resume_count_too(sweep: Path, tmp_path: Path) -> None:
    run = tmp_path / "0"
    shutil.copytree(sweep / "0", run)
    metrics = run / "csv" / "metrics.csv"
    with metrics.open(newline="") as f:
        before = max(float(r["val/top1"]) for r in csv.DictReader(f) if r["val/top1"])
    metrics.rename(run / "csv" / "metrics_1.csv")  # as mobivision.tasks.resume keeps them
    metrics.write_text("epoch,step,val/loss,val/top1\n1,9,9.0,0.01\n")
    assert read_run(run)["val"] == before
    metrics.write_text("epoch,step,val/loss,val/top1\n1,9,0.1,0.99\n")
    assert read_run(run)["val"] == 0.99


def test_best_validation_follows_the_monitor_mode_and_keeps_the_first_best() -> None:
    rows = [
        {"val/km": "900", "val/acc": "0.1"},
        {"val/km": "", "train/loss": "1.0"},
        {"val/km": "300", "val/acc": "0.4"},
        {"val/km": "300", "val/acc": "0.5"},
        {"val/km": "500", "val/acc": "0.9"},
    ]
    assert best_validation(rows, monitor="val/km", mode="min", metric="val/acc") == 0.4
    assert best_validation(rows, monitor="val/km", mode="max", metric="val/km") == 900
    assert best_validation([], monitor="val/km", mode="min", metric="val/km") is None


def _compose_hydra(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("train", overrides=["paths.output_dir=/tmp/unused", *overrides], return_hydra_config=True)


def test_parallel_launcher_is_joblib_with_two_jobs() -> None:
    launcher = _compose_hydra(["hydra/launcher=parallel"]).hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert launcher.n_jobs == 2


def test_slurm_launcher_config_becomes_an_sbatch_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fields of slurm.yaml pass submitit's parameter check; the script carries them (no cluster needed:
    a stand-in ``srun`` satisfies submitit's "are we on SLURM" check; the parameter mapping is the launcher's)."""
    submitit = pytest.importorskip("submitit")
    config = pytest.importorskip("hydra_plugins.hydra_submitit_launcher.config")
    from submitit.slurm.slurm import _make_sbatch_string

    cfg = _compose_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=gpu", f"hydra.sweep.dir={tmp_path}"])
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    assert params.pop("_target_") == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    params.pop("submitit_folder")
    params["name"] = "train"  # ${hydra.job.name}, set by Hydra at launch
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin")
    executor = submitit.AutoExecutor(
        cluster="slurm", folder=tmp_path / "submitit", slurm_max_num_timeout=params.pop("max_num_timeout")
    )
    base = set(OmegaConf.structured(config.BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    script = _make_sbatch_string(command="python tools/train.py", folder=tmp_path, **executor._executor.parameters)
    for line in ("--partition=gpu", "--gpus-per-node=1", "--ntasks-per-node=1", "--cpus-per-task=8", "--mem=32GB"):
        assert f"#SBATCH {line}" in script
    assert "#SBATCH --time=240" in script
    assert executor._executor.parameters["array_parallelism"] == 16
