"""Data that cannot train is refused before any step, by ``train`` and ``check`` alike (one class, a training split
smaller than one batch), and a checkpoint is refused on data of another task (tasks/data_checks.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from mobivision.commands.check import CheckError, check
from mobivision.errors import DataError
from mobivision.tasks import runner
from mobivision.tasks.runner import evaluate, run_cli, train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = ["experiment=demo_classification", "data.synthetic.images_per_class=10"]  # 6 classes, 36 training images
UNTRAINABLE = {
    "one class": (
        ["+data.synthetic.classes=[circle]", "data.batch_size=4"],  # 6 training images
        "data: the train split has 1 class ('circle'): a classifier needs at least 2",
    ),
    "fewer images than a batch": (
        ["data.batch_size=1000"],
        "data.batch_size: 1000 is larger than the train split (36 images): no training step (expected at most 36)",
    ),
}


@pytest.fixture
def no_fit(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records the task building and the fits that start (the refusal must come before both)."""
    started: list[str] = []
    monkeypatch.setattr(runner, "build_task", lambda *a, **k: started.append("build_task"))
    monkeypatch.setattr(runner, "_trainer", lambda *a, **k: started.append("trainer"))
    return started


@pytest.mark.parametrize("case", list(UNTRAINABLE))
def test_train_refuses_untrainable_data_before_any_step(case: str, tmp_path: Path, compose_train, no_fit) -> None:
    overrides, message = UNTRAINABLE[case]
    cfg = compose_train(tmp_path, [*TINY, *overrides])
    with pytest.raises(DataError, match="^" + _escaped(message)):
        train(cfg)
    assert no_fit == [] and not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("case", list(UNTRAINABLE))
def test_run_cli_prints_one_error_line_and_exits_2(case: str, tmp_path: Path, compose_train, no_fit, capsys) -> None:
    overrides, message = UNTRAINABLE[case]
    cfg = compose_train(tmp_path, [*TINY, *overrides])
    with pytest.raises(SystemExit) as exit_info:
        run_cli(train, cfg)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: {message}"), err


@pytest.mark.parametrize("case", list(UNTRAINABLE))
def test_check_reports_the_same_problem(case: str, tmp_path: Path, compose_train) -> None:
    overrides, message = UNTRAINABLE[case]
    cfg = compose_train(tmp_path, [*TINY, *overrides])
    with pytest.raises(CheckError, match="^" + _escaped(message)):
        check(cfg, echo=False)


def test_a_multi_source_problem_names_its_source(tmp_path: Path, compose_train) -> None:
    cfg = compose_train(
        tmp_path,
        [
            "experiment=demo_multitask",
            "backbone.width_mult=0.25",
            "data.batch_size=100",  # keys beside data.sources apply to every source
            "data.sources.faces.synthetic.num_images=80",
            "data.sources.birds.synthetic.images_per_class=10",
            "data.sources.geo.synthetic.num_images=160",
            "data.sources.geo.partitions.t_min=2",
            "data.sources.geo.partitions.t_max=[40,10]",
        ],
    )
    with pytest.raises(CheckError, match=r"^data\.sources\.faces\.batch_size: 100 is larger than the train split"):
        check(cfg, echo=False)


@pytest.fixture(scope="module")
def detection_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A detector trained for two steps on the demo shapes (classes circle, square, triangle)."""
    tmp = tmp_path_factory.mktemp("detector")
    cfg = _compose(
        "train",
        "experiment=demo",
        "debug=fast",
        "backbone.width_mult=0.25",
        "data.resolution=64",
        "data.batch_size=4",
        "data.synthetic.num_train=8",
        "data.synthetic.num_val=4",
        "data.synthetic.num_test=4",
        "data.synthetic.size=64",
        "test_after_training=false",
        f"paths.output_dir={tmp / 'run'}",
        f"paths.data_dir={tmp / 'data'}",
        "data.num_workers=0",
        "data.persistent_workers=false",
        "progress=plain",
    )
    return Path(train(cfg)["last_checkpoint"])


def test_a_checkpoint_is_refused_on_data_of_another_task(tmp_path: Path, detection_checkpoint: Path, capsys) -> None:
    cfg = _compose(
        "eval",
        f"ckpt_path={detection_checkpoint}",
        "data=demo_shapes",  # classification data with the detector's class names
        "+data.synthetic.classes=[circle,square,triangle]",
        "data.synthetic.images_per_class=5",
        "data.num_workers=0",
        f"paths.output_dir={tmp_path / 'eval'}",
        f"paths.data_dir={tmp_path / 'data'}",
    )
    with pytest.raises(SystemExit) as exit_info:
        run_cli(evaluate, cfg)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith(
        "error: data: a detection checkpoint cannot be evaluated on classification data (data._target_ "
        "ClassificationDataModule"
    ), err
    assert not (tmp_path / "eval" / "summary.json").exists()


def _compose(config: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config, overrides=list(overrides))


def _escaped(text: str) -> str:
    return re.escape(text)
