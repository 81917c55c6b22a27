"""Operability: ``tools/check.py`` (compose, check paths, one batch, one forward pass, expected wall time),
``--cfg job``, and ``seed=`` reproducibility on CPU. (Unknown keys: tests/test_tools.py; plain progress lines:
tests/test_ddp.py; the wall-time schedule and arithmetic: tests/unit/test_check_wall_time.py.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

from mobivision.commands import check as check_module
from mobivision.commands.check import check
from mobivision.commands.wall_time import format_duration
from mobivision.data.synthetic import write_shapes_classification
from mobivision.tasks.runner import run_cli, train

TINY = ["experiment=demo_classification", "data.synthetic.images_per_class=10"]
MULTITASK = [
    "experiment=demo_multitask",
    "backbone.width_mult=0.25",
    "data.batch_size=8",  # keys beside data.sources apply to every source
    "data.sources.faces.synthetic.num_images=80",
    "data.sources.birds.synthetic.images_per_class=10",
    "data.sources.geo.synthetic.num_images=160",
    "data.sources.geo.partitions.t_min=2",
    "data.sources.geo.partitions.t_max=[40,10]",
]
WALL_TIME = re.compile(
    r"✓ expected wall time: about (?P<about>.+) on this machine \(cpu\): (?P<epochs>\d+) epochs? x (?P<images>[\d,]+) "
    r"images at (?P<rate>[\d,.]+) img/s \(training step (?P<step>[\d,.]+) img/s, batch (?P<batch>\d+); "
    r"(?P<data>.+)\), (?P<validations>\d+) validations? x (?P<val_images>[\d,]+) images(?: \+ test "
    r"(?P<test_images>[\d,]+) images)? at (?P<eval_rate>[\d,.]+) img/s \(inference; metrics not timed\)"
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``paths.data_dir`` holding the demo shapes as ``TINY`` configures them (10 images per class)."""
    folder = tmp_path_factory.mktemp("data")
    write_shapes_classification(folder / "demo_shapes_cls", images_per_class=10, size=64, seed=0)
    return folder


def test_check_tool_on_a_good_config_reports_the_batch_and_writes_nothing(
    tmp_path: Path, data_dir: Path, run_tool
) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    result = run_tool("check", *TINY, f"paths.data_dir={data_dir}", cwd=tmp_path, env={"TMPDIR": str(scratch)})
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "✓ config: demo_classification" in out
    assert f"✓ data.root: {data_dir / 'demo_shapes_cls'}" in out
    assert "✓ train split: 36 images, 6 classes" in out and "✓ val split: 12 images, 6 classes" in out
    assert "✓ train batch: image float32 [32, 3, 64, 64] in [-1.00, 1.00]; target int64 [32]" in out
    assert "✓ task: ClassificationTask, 0.215 M parameters" in out
    assert "✓ forward pass: output float32 [32, 6]" in out and "training loss" in out
    assert f"✓ paths.output_dir: {tmp_path / 'runs' / 'demo_classification'}/" in out
    assert "✗" not in out and "error:" not in result.stderr
    # No run folder, no Hydra log, no temporary folder left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"] and not list(scratch.iterdir())


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ([*TINY, "data.synthetic=null", "data.root=/no/such/root"], "data.root: /no/such/root does not exist"),
        ([*TINY, "data.synthetic=null", "data.root={data}/demo_shapes_cls", "data.val_split=valid"],
         "data.val_split: {data}/demo_shapes_cls/valid does not exist"),
        ([*TINY, "backbone.width_mult=0"], "backbone.width_mult: 0 is out of range (expected > 0)"),
        ([*TINY, "backbone.pretrained=/no/weights.pth"], "backbone.pretrained: /no/weights.pth does not exist"),
        (["experiment=cub_finetune"], "data.root: {data}/CUB_200_2011 does not exist"),  # real data, not there
        (["experiment=cub_finetune", "trainer=ddp"],  # its frozen first epochs would stop DDP at the 2nd step
         "trainer.strategy: DDP without find_unused_parameters, but callbacks.backbone_freeze.unfreeze_at_epoch=2 "
         "freezes the backbone (its parameters get no gradient); add trainer.strategy.find_unused_parameters=true"),
    ],
)  # fmt: skip
def test_check_stops_at_the_first_problem_with_one_error_line(
    tmp_path: Path, data_dir: Path, compose_train, capsys: pytest.CaptureFixture[str], overrides: list[str], error: str
) -> None:
    cfg = compose_train(tmp_path, [o.format(data=data_dir) for o in overrides])
    cfg.paths.data_dir = str(data_dir)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(check, cfg)
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    expected = error.format(data=data_dir)
    assert [line for line in err.splitlines() if line.startswith("error:")] == [f"error: {expected}"]
    assert f"✗ {expected}" in out.splitlines()
    assert not (tmp_path / "run").exists()  # the output folder is only tested, never created


def test_scan_images_option_is_taken_out_of_the_arguments_hydra_reads() -> None:
    option = check_module._scan_images_option
    assert option(["check.py", "experiment=x", "--scan-images"]) == (True, ["check.py", "experiment=x"])
    assert option(["check.py", "--scan-images=train,val", "seed=1"]) == (("train", "val"), ["check.py", "seed=1"])
    assert option(["check.py", "seed=1"]) == (False, ["check.py", "seed=1"])


def test_scan_images_names_the_unreadable_file_of_a_split(
    tmp_path: Path, compose_train, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_shapes_classification(tmp_path / "shapes", images_per_class=4, size=32, seed=0)
    images = sorted((root / "val").rglob("*.png"))
    images[1].write_bytes(images[1].read_bytes()[:20])  # the header cut short
    cfg = compose_train(tmp_path, [*TINY, "data.synthetic=null", f"data.root={root}"])
    with pytest.raises(SystemExit) as exit_info:
        run_cli(lambda c: check(c, scan_images=True), cfg)
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    train_images = len(list((root / "train").rglob("*.png")))
    assert re.search(rf"^✓ train split: {train_images} images readable \(header check, [\d.]+ s\)$", out, re.M)
    (error,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert error.startswith(f"error: data: 1 of {len(images)} val images cannot be read: {images[1]} (")
    assert out.count("images readable") == 1 and "train batch" not in out  # stopped at the first problem
    with pytest.raises(SystemExit):
        run_cli(lambda c: check(c, scan_images=("tset",)), cfg)
    assert "error: --scan-images: unknown split 'tset' (expected train, val, test)" in capsys.readouterr().err


def test_a_list_that_is_not_utf_8_is_one_error_line(
    tmp_path: Path, compose_train, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_shapes_classification(tmp_path / "shapes", images_per_class=3, size=32, seed=0)
    for split in ("train", "val"):
        rows = [f"{p.relative_to(root)},{p.parent.name}" for p in sorted((root / split).rglob("*.png"))]
        (root / f"{split}.csv").write_text("\n".join(["path,label", *rows]) + "\n")
    rows[1] = "val/café.png,circle"  # saved by an editor set to Latin-1
    (root / "val.csv").write_bytes("\n".join(["path,label", *rows]).encode("latin-1"))
    cfg = compose_train(
        tmp_path,
        [*TINY, "data.synthetic=null", f"data.root={root}", "data.format=csv", "data.train_split=train.csv",
         "data.val_split=val.csv", "data.test_split=null"],
    )  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        run_cli(check, cfg)
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    expected = f"data: {root / 'val.csv'}:3: not UTF-8 text (byte 0xe9 at column 8); save the file as UTF-8"
    assert [line for line in err.splitlines() if line.startswith("error:")] == [f"error: {expected}"]
    assert f"✗ {expected}" in out.splitlines()


def _number(text: str | None) -> float:
    """A printed count or rate (``1,184``, ``52.1``); a part the line leaves out: 0."""
    return float(text.replace(",", "")) if text else 0.0


def _wall_time_line(found: dict[str, Any]) -> re.Match[str]:
    (line,) = [line for line in found["lines"] if "expected wall time" in line]
    match = WALL_TIME.fullmatch(line)
    assert match, line
    return match


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory, data_dir: Path, compose_train) -> tuple[dict[str, Any], dict]:
    """``check`` on ``TINY`` with 2 loader workers: what it found, and the task's state right after it was built."""
    built = {}
    build_task = check_module._build_task

    def build_and_keep(*args: Any, **kwargs: Any) -> Any:
        task = build_task(*args, **kwargs)
        built["state"] = {key: value.clone() for key, value in task.state_dict().items()}
        return task

    cfg = compose_train(tmp_path_factory.mktemp("wall_time"), TINY)
    cfg.paths.data_dir = str(data_dir)
    cfg.data.num_workers = 2
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(check_module, "_build_task", build_and_keep)
        found = check(cfg, echo=False)
    return found, built["state"]


def test_check_prints_the_expected_wall_time_that_its_printed_parts_add_up_to(checked) -> None:
    found, _ = checked
    line = _wall_time_line(found)
    printed = {key: _number(value) for key, value in line.groupdict().items() if key not in ("about", "data")}
    # 36 training images in batches of 32 (the last partial batch dropped), 15 epochs; 12 validation and test images
    assert (printed["epochs"], printed["images"], printed["batch"]) == (15, 32, 32)
    assert (printed["validations"], printed["val_images"], printed["test_images"]) == (15, 12, 12)
    total = (
        printed["epochs"] * printed["images"] / printed["rate"]
        + (printed["validations"] * printed["val_images"] + printed["test_images"]) / printed["eval_rate"]
    )
    assert total == pytest.approx(found["expected_seconds"], rel=0.01)
    assert line["about"] == format_duration(found["expected_seconds"])
    wall = found["wall_time"]
    assert wall.total_seconds == found["expected_seconds"]
    assert wall.loader_rate == pytest.approx(wall.throughput.worker_rate * min(2, wall.schedule.cpus))
    assert wall.train_rate == min(wall.throughput.step_rate, wall.loader_rate)  # workers load while the step runs
    bound = "data loading" if wall.data_bound else "the training step"
    assert line["data"].endswith(f"with 2 workers; bound by {bound}")


def test_check_leaves_the_task_it_built_bit_identical(checked) -> None:
    """The forward pass and the timed training steps run on a copy: weights and BatchNorm statistics stay."""
    found, before = checked
    after = found["task"].state_dict()
    assert after.keys() == before.keys() and any(key.endswith("running_mean") for key in before)
    assert all(torch.equal(after[key], before[key]) for key in before)
    assert all(param.grad is None for param in found["task"].parameters())


def test_check_times_one_step_over_every_source_of_a_multitask_model(tmp_path: Path, compose_train) -> None:
    found = check(compose_train(tmp_path, MULTITASK), echo=False)
    wall = found["wall_time"]
    assert wall.throughput.images_per_step == 3 * 8  # one batch of each source
    assert wall.schedule.batches_per_epoch == 15  # the longest source: 126 geo training images in batches of 8
    printed = _wall_time_line(found)
    assert (printed["epochs"], printed["images"], printed["batch"]) == ("12", "360", "24")
    assert printed["data"].endswith("in the main process, before each step")  # compose_train: no workers


def test_cfg_job_prints_the_composed_config_without_a_run_folder(tmp_path: Path, run_tool) -> None:
    result = run_tool("train", "--cfg", "job", "experiment=demo_classification", "seed=7", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    expected = [
        "task_name: demo_classification",
        "seed: 7",
        "  width_mult: 0.25",
        "  max_epochs: 15",
        "  _target_: mobivision.tasks.classification.ClassificationTask",
        "  root: ${paths.data_dir}/demo_shapes_cls",
    ]
    for line in expected:
        assert line in out.splitlines(), line
    assert "hydra:" not in out.splitlines()  # the job's config only
    assert not list(tmp_path.iterdir())  # Hydra made no run folder


def _final_weights(tmp: Path, data_dir: Path, compose_train, seed: int) -> dict[str, torch.Tensor]:
    cfg = compose_train(
        tmp,
        [
            *TINY,
            f"seed={seed}",
            "debug=fast",  # 1 epoch, 2 training batches
            "data.batch_size=8",
            "test_after_training=false",
        ],
    )
    cfg.paths.data_dir = str(data_dir)
    summary = train(cfg)
    return torch.load(summary["last_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]


def test_seed_makes_cpu_training_reproducible(tmp_path: Path, data_dir: Path, compose_train) -> None:
    """Same seed: bit-identical weights (init, augmentation, shuffling); another seed: different weights."""
    first = _final_weights(tmp_path / "a", data_dir, compose_train, seed=3)
    again = _final_weights(tmp_path / "b", data_dir, compose_train, seed=3)
    other = _final_weights(tmp_path / "c", data_dir, compose_train, seed=4)
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
