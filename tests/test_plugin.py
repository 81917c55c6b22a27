"""A head plugs in: tasks defined only in the test tree are registered the documented way (an entry point in the
group ``mobivision.tasks``, their configs on Hydra's search path) and run train -> eval -> predict -> export (ONNX,
parity-checked) -> check through the tools, with no file of the package changed: ``tests/plugin/shape_count.py``
(counting shapes by regression); ``tests/test_plugin_multitask.py`` puts a second plug-in kind inside a multi-task
model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plugin_site import PLUGIN, SEARCHPATH, register_plugin

pytestmark = pytest.mark.slow

SMALL_DATA = [
    "data.synthetic.num_train=64",
    "data.synthetic.num_val=16",
    "data.synthetic.num_test=16",
    "data.batch_size=16",
    "data.num_workers=0",
    "progress=plain",
]


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory: pytest.TempPathFactory, run_tool) -> dict:
    tmp = tmp_path_factory.mktemp("plugin")
    site = register_plugin(tmp / "site")
    env = {"PYTHONPATH": f"{PLUGIN}:{site}"}
    args = ["experiment=shape_count_demo", SEARCHPATH, *SMALL_DATA, f"paths.data_dir={tmp / 'data'}"]
    trained = run_tool("train", *args, f"hydra.run.dir={tmp / 'run'}", cwd=tmp, env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    return {"tmp": tmp, "env": env, "args": args, "trained": trained, "run": tmp / "run"}


def test_the_plugin_task_trains_and_is_tested_with_its_own_metrics(plugin_run: dict) -> None:
    summary = json.loads((plugin_run["run"] / "summary.json").read_text())
    assert {"test/mae", "test/exact"} <= set(summary["test"]) and summary["test"]["test/mae"] >= 0
    assert "val/mae" in summary["val"]
    rows = (plugin_run["run"] / "counts_test.csv").read_text().splitlines()
    assert rows[0] == "image,circle,circle_true,square,square_true,triangle,triangle_true" and len(rows) == 17


def test_eval_predict_export_and_check_run_the_plugin_through_the_protocol(plugin_run: dict, run_tool) -> None:
    tmp, env, run = plugin_run["tmp"], plugin_run["env"], plugin_run["run"]
    best = run / "checkpoints" / "best.ckpt"

    evaluated = run_tool(
        "eval", f"ckpt_path={best}", "split=val", "progress=plain", f"hydra.run.dir={tmp / 'eval'}", cwd=tmp, env=env
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "test/mae" in json.loads((tmp / "eval" / "summary.json").read_text())["test"]  # eval's stage is test

    images = tmp / "data" / "demo_shapes_det" / "test"
    predicted = run_tool("predict", str(best), str(images), "--out", str(tmp / "pred"), cwd=tmp, env=env)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    entries = json.loads((tmp / "pred" / "predictions.json").read_text())
    assert len(entries) == 16 and set(entries[0]["counts"]) == {"circle", "square", "triangle"}
    assert (tmp / "pred" / Path(entries[0]["image"]).with_suffix(".jpg")).is_file()

    exported = run_tool("export", str(best), "--out", str(tmp / "export"), "--formats", "onnx", cwd=tmp, env=env)
    assert exported.returncode == 0, exported.stderr[-3000:]
    report = json.loads((tmp / "export" / "export_report.json").read_text())
    (row,) = report["rows"]
    assert row["format"] == "onnx" and row["ok"] and row["parity"]["outputs"][0]["name"] == "counts"

    checked = run_tool("check", *plugin_run["args"], cwd=tmp, env=env)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "task: ShapeCountTask" in checked.stdout and "all checks passed" in checked.stdout


def test_a_checkpoint_of_an_unregistered_task_is_refused_with_one_line(plugin_run: dict, run_tool) -> None:
    best = plugin_run["run"] / "checkpoints" / "best.ckpt"
    env = {"PYTHONPATH": str(PLUGIN)}  # the module is importable, but no entry point registers it
    result = run_tool("predict", str(best), str(plugin_run["tmp"]), cwd=plugin_run["tmp"], env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "'shape_count.ShapeCountTask' is neither a built-in mobivision task nor a plug-in" in result.stderr
