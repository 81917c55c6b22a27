"""A head plugs in: tasks defined only in the test tree are registered the documented way (an entry point in the
group ``mobivision.tasks``, their configs on Hydra's search path) and run train -> eval -> predict -> export (ONNX,
parity-checked) -> check through the tools, with no file of the package changed: ``tests/plugin/shape_count.py``
(counting shapes by regression) alone, and ``tests/plugin/shape_cover.py`` (the share of the image the shapes
cover) as a head of a multi-head model beside a built-in detector, predicted alike from its checkpoint and its ONNX
file through ``mobivision.load``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PLUGIN = Path(__file__).resolve().parent / "plugin"
SEARCHPATH = f"hydra.searchpath=[file://{PLUGIN / 'configs'}]"
SMALL_DATA = [
    "data.synthetic.num_train=64",
    "data.synthetic.num_val=16",
    "data.synthetic.num_test=16",
    "data.batch_size=16",
    "data.num_workers=0",
    "progress=plain",
]


def register_plugin(site: Path) -> Path:
    """What ``pip install`` of a plug-in package leaves: a dist-info folder whose entry point names the task."""
    dist = site / "mobivision_shape_count-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mobivision-shape-count\nVersion: 0.1\n")
    entries = "shape_count = shape_count:ShapeCountTask\nshape_cover = shape_cover:ShapeCoverTask\n"
    (dist / "entry_points.txt").write_text(f"[mobivision.tasks]\n{entries}")
    return site


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


MULTI_HEAD_DATA = [
    "data.sources.shapes.synthetic.num_train=64",
    "data.sources.shapes.synthetic.num_val=16",
    "data.sources.shapes.synthetic.num_test=16",
    "data.sources.shapes.batch_size=16",
    "data.sources.shapes.num_workers=0",
    "progress=plain",
]


def test_a_plugin_head_kind_runs_inside_a_multi_head_model_through_every_command(tmp_path: Path, run_tool) -> None:
    site = register_plugin(tmp_path / "site")
    env = {"PYTHONPATH": f"{PLUGIN}:{site}"}
    args = ["experiment=plugin_multitask_demo", SEARCHPATH, *MULTI_HEAD_DATA, f"paths.data_dir={tmp_path / 'data'}"]
    run = tmp_path / "run"
    trained = run_tool("train", *args, f"hydra.run.dir={run}", cwd=tmp_path, env=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert {"test/cover/mae", "test/boxes/mAP", "test/score"} <= set(summary["test"])
    best = run / "checkpoints" / "best.ckpt"

    evaluated = run_tool(
        "eval", f"ckpt_path={best}", "split=val", f"hydra.run.dir={tmp_path / 'eval'}", cwd=tmp_path, env=env
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "test/cover/mae" in json.loads((tmp_path / "eval" / "summary.json").read_text())["test"]

    exported = run_tool(
        "export", str(best), "--out", str(tmp_path / "export"), "--formats", "onnx", cwd=tmp_path, env=env
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    (row,) = json.loads((tmp_path / "export" / "export_report.json").read_text())["rows"]
    assert row["ok"] and "cover.cover" in [output["name"] for output in row["parity"]["outputs"]]

    images = tmp_path / "data" / "demo_shapes_det" / "test"
    covers = {}
    for model, out in ((best, "pred_ckpt"), (tmp_path / "export" / "model.onnx", "pred_onnx")):  # mobivision.load
        predicted = run_tool("predict", str(model), str(images), "--out", str(tmp_path / out), cwd=tmp_path, env=env)
        assert predicted.returncode == 0, predicted.stderr[-3000:]
        entries = json.loads((tmp_path / out / "predictions.json").read_text())
        assert len(entries) == 16 and set(entries[0]["heads"]) == {"boxes", "cover"}
        assert "cover: covered " in predicted.stdout
        covers[out] = [entry["heads"]["cover"][0]["cover"] for entry in entries]
    # The same fp32 network on ONNX Runtime and PyTorch, printed to 4 decimals: one rounding step apart at most.
    assert all(abs(a - b) <= 1.5e-4 for a, b in zip(covers["pred_ckpt"], covers["pred_onnx"], strict=True))
    assert min(covers["pred_onnx"]) >= 0 and max(covers["pred_onnx"]) <= 1

    checked = run_tool("check", *args, cwd=tmp_path, env=env)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "all checks passed" in checked.stdout
