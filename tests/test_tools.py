"""The command-line tools run as a user runs them, bad input included (one clear line, exit code 2)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from mobivision.commands.predict import picture_names


def quick_train_args(data_dir: Path) -> list[str]:
    return [
        "experiment=demo_classification",
        "debug=fast",
        f"paths.data_dir={data_dir}",
        "data.synthetic.images_per_class=10",
        "progress=plain",
    ]


# A real training run (two batches) paid by the first test using it: those tests are marked slow.
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, run_tool) -> dict:
    """``tools/train.py`` on a tiny synthetic set; returns its folder and output."""
    cwd = tmp_path_factory.mktemp("cli")
    # a new interpreter: its output includes what importing prints (test_a_run_prints_our_lines_first...)
    result = run_tool("train", *quick_train_args(cwd / "data"), cwd=cwd, fresh=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return {
        "cwd": cwd,
        "result": result,
        "best": next((cwd / "runs" / "demo_classification").glob("*/checkpoints/best.ckpt")),
    }


@pytest.mark.slow
def test_train_cli_prints_metrics_and_writes_a_run_folder(trained: dict) -> None:
    out = trained["result"].stdout
    assert "[test] test/loss" in out and "test/top1" in out
    assert "chance level: 0.1667" in out
    run_dir = trained["best"].parents[1]
    assert (run_dir / "summary.json").is_file() and (run_dir / "config.yaml").is_file()


@pytest.mark.slow
def test_a_run_prints_our_lines_first_without_dependency_noise(trained: dict) -> None:
    """No dependency deprecation or Lightning tip (``mobivision.commands.quiet``); the first line is ours."""
    output = trained["result"].stderr + trained["result"].stdout
    for noise in ("set_vital", "LeafSpec", "Tip:", "litlogger", "DeprecationWarning"):
        assert noise not in output, noise
    assert "[mobivision][INFO] - paths:" in trained["result"].stdout.splitlines()[0]


@pytest.mark.slow
def test_eval_cli_on_a_checkpoint_prints_the_metrics(trained: dict, run_tool) -> None:
    result = run_tool("eval", f"ckpt_path={trained['best']}", "split=val", cwd=trained["cwd"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[test] test/loss" in result.stdout and "test/top1" in result.stdout


@pytest.mark.slow
def test_eval_cli_takes_data_overrides_on_the_checkpoints_data(trained: dict, run_tool) -> None:
    ckpt = f"ckpt_path={trained['best']}"
    result = run_tool("eval", ckpt, "split=val", "data.num_workers=0", "data.batch_size=3", cwd=trained["cwd"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/top1" in result.stdout
    typo = run_tool("eval", ckpt, "data.num_worker=0", cwd=trained["cwd"])
    assert (typo.returncode, typo.stderr.splitlines()[-1]) == (
        2,
        "error: data.num_worker: no such key (did you mean data.num_workers?)",
    )


@pytest.mark.parametrize(
    ("tool", "overrides", "error"),
    [
        ("train", ["trainer.max_epoch=1"], "error: trainer.max_epoch: no such key (did you mean trainer.max_epochs?)"),
        (
            "train",
            ["trainer.max_epochs=abc"],
            "error: trainer.max_epochs: 'abc' is not valid (expected an integer or null)",
        ),
        ("check", ["data.batch_size=-4"], "error: data.batch_size: -4 is out of range (expected >= 1)"),
        (
            "check",
            ["experiment=demoo"],
            "error: experiment: no config named 'demoo' (expected one of celeba_attributes",
        ),
    ],
)
def test_a_config_mistake_is_one_line_before_any_work(tmp_path: Path, tool: str, overrides, error, run_tool) -> None:
    result = run_tool(tool, *quick_train_args(tmp_path / "data"), *overrides, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.startswith(error) and result.stderr.count("\n") == 1, result.stderr
    assert "all checks passed" not in result.stdout
    assert not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()  # no run folder, no data made


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["backbone.width_mult=0"], "backbone.width_mult: 0 is out of range (expected > 0)"),
        (["backbone.name=mobilenet_v9"], "backbone.name: 'mobilenet_v9' is not valid (expected one of"),
        (["backbone.pretrained=/no/such/weights.pth"], "pretrained weights not found: /no/such/weights.pth"),
        (["data.synthetic=null", "data.root=/no/such/folder"], "image folder not found: /no/such/folder/train"),
    ],
)
def test_train_cli_bad_input_is_one_clear_error(tmp_path: Path, overrides: list[str], message: str, run_tool) -> None:
    result = run_tool("train", *quick_train_args(tmp_path / "data"), *overrides, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_train_cli_unknown_key_names_the_key(tmp_path: Path, run_tool) -> None:
    result = run_tool("train", *quick_train_args(tmp_path / "data"), "trainer.max_epoch=3", cwd=tmp_path)
    assert result.returncode != 0
    assert "max_epoch" in result.stderr and "Traceback" not in result.stderr


def test_train_cli_empty_data_folder_is_an_error(tmp_path: Path, run_tool) -> None:
    (tmp_path / "empty" / "train" / "a").mkdir(parents=True)
    result = run_tool("train", *quick_train_args(tmp_path / "data"), "data.synthetic=null",
                      f"data.root={tmp_path / 'empty'}", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert f"no images found under {tmp_path / 'empty' / 'train'}" in result.stderr


@pytest.mark.slow
def test_eval_cli_on_a_truncated_checkpoint_is_an_error(tmp_path: Path, trained: dict, run_tool) -> None:
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(trained["best"].read_bytes()[:2000])
    result = run_tool("eval", f"ckpt_path={broken}", cwd=tmp_path)
    assert result.returncode == 2
    assert "broken.ckpt" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_predict_cli_lists_the_top_k_classes_of_a_classifier(tmp_path: Path, trained: dict, run_tool) -> None:
    images = next((trained["cwd"] / "data").glob("demo_shapes_cls/test"))
    result = run_tool(
        "predict", str(trained["best"]), str(images), "--top-k", "3", "--out", str(tmp_path), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert len(predictions) == len(list(images.rglob("*.png")))
    for item in predictions:
        probabilities = [t["probability"] for t in item["top_k"]]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) <= 1.0 + 1e-4
        assert item["image"] in result.stdout
    bad = run_tool("predict", str(trained["best"]), str(images), "--top-k", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "--top-k" in bad.stderr


@pytest.mark.slow
def test_predict_cli_names_and_skips_unreadable_files_and_predicts_the_rest(
    tmp_path: Path, trained: dict, run_tool
) -> None:
    source = next((trained["cwd"] / "data").glob("demo_shapes_cls/test"))
    images = tmp_path / "in"
    images.mkdir()
    first = next(source.rglob("*.png"))
    shutil.copy(first, images / "shape.png")
    Image.open(first).convert("RGB").save(images / "shape.jpg")  # same stem, another extension
    (images / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    result = run_tool("predict", str(trained["best"]), str(images), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("skipped:")] == [
        line for line in result.stderr.splitlines() if "broken.jpg" in line
    ] and "broken.jpg" in result.stderr
    predictions = json.loads((tmp_path / "out" / "predictions.json").read_text())
    assert sorted(item["image"] for item in predictions) == ["shape.jpg", "shape.png"]
    only_broken = tmp_path / "broken_only"
    only_broken.mkdir()
    shutil.copy(images / "broken.jpg", only_broken)
    failed = run_tool("predict", str(trained["best"]), str(only_broken), cwd=tmp_path)
    assert failed.returncode == 2 and "none of the 1 image files" in failed.stderr and "Traceback" not in failed.stderr


def test_pictures_of_inputs_that_differ_only_in_extension_do_not_overwrite_each_other() -> None:
    names = ["cat.png", "cat.jpg", "dog.png", "sub/cat.png"]
    pictures = picture_names(names)
    assert pictures == {"cat.png": "cat.png.jpg", "cat.jpg": "cat.jpg.jpg", "dog.png": "dog.jpg",
                        "sub/cat.png": "sub/cat.jpg"}  # fmt: skip
    assert len(set(pictures.values())) == len(names)
