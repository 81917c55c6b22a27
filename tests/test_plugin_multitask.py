"""A plug-in head kind inside a multi-task model: ``tests/plugin/shape_cover.py`` (the share of the image the shapes
cover), registered as an entry point like ``tests/test_plugin.py``'s, beside a built-in detector on one source, runs
train -> eval -> export (ONNX) -> predict from the checkpoint and from the ONNX file (``mobivision.load``, equal
results) -> check, with no file of the package changed. Its own module, so that the test workers share the two
plug-in runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from plugin_site import PLUGIN, SEARCHPATH, register_plugin

pytestmark = pytest.mark.slow

MULTITASK_DATA = [
    "data.sources.shapes.synthetic.num_train=64",
    "data.sources.shapes.synthetic.num_val=16",
    "data.sources.shapes.synthetic.num_test=16",
    "data.sources.shapes.batch_size=16",
    "data.sources.shapes.num_workers=0",
    "progress=plain",
]


def test_a_plugin_head_kind_runs_inside_a_multitask_model_through_every_command(tmp_path: Path, run_tool) -> None:
    site = register_plugin(tmp_path / "site")
    env = {"PYTHONPATH": f"{PLUGIN}:{site}"}
    args = ["experiment=plugin_multitask_demo", SEARCHPATH, *MULTITASK_DATA, f"paths.data_dir={tmp_path / 'data'}"]
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
