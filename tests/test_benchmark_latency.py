"""``tools/benchmark.py latency`` run as a user would, on a tiny fresh MobileNetV1 (0.25 @ 64 px, 1 thread) and on
a checkpoint trained for two batches (``debug=fast``, as in ``test_tools.py``).

Only what does not depend on timing is checked: every row is there, MACs and parameters are
``mobivision.profiling``'s counts, sizes are those of the files written, ratios are the medians' ratios, the INT8
metric block of a checkpoint is consistent. A shared 2-core machine makes the timings themselves noise at these
few repeats.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import timm

from mobivision import create_model, profile
from mobivision.benchmark import SETTLE_SECONDS, default_settle, interleaved_times, onnx_files

ROOT = Path(__file__).resolve().parents[1]
WIDE = {"COLUMNS": "250"}  # the table wraps to the terminal width
WIDTH, RESOLUTION = 0.25, 64
ROWS = (
    "mobivision eager",
    "mobivision ORT fp32",
    "mobivision ORT INT8",
    "timm mobilenetv1_100 eager",
    "timm mobilenetv1_100 ORT fp32",
)


# Exports to ONNX and INT8 and times five runtimes: the tests that use it are marked slow.
@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, run_tool) -> dict[str, Any]:
    """One run of the tool: its table on stdout, its JSON report and the files it kept."""
    out = tmp_path_factory.mktemp("latency")
    result = run_tool(
        "benchmark", "latency", "--model", "mobilenet_v1", "--width", WIDTH, "--resolution", RESOLUTION, "--threads", 1,
        "--repeats", 3, "--warmup", 1, "--calibration-images", 4, "--out", out / "files", "--json", out / "r.json",
        cwd=ROOT, env=WIDE,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return {"stdout": result.stdout, "report": json.loads((out / "r.json").read_text()), "out": out / "files"}


@pytest.mark.slow
def test_all_rows_in_order_in_json_and_table(run: dict[str, Any]) -> None:
    rows = run["report"]["rows"]
    assert [row["runtime"] for row in rows] == list(ROWS)
    for name in ROWS:
        assert name in run["stdout"]
    for column in ("median ms", "p90 ms", "time / eager", "size MB", "MACs (M)", "params (M)"):
        assert column in run["stdout"]
    assert all(0 < row["median_ms"] <= row["p90_ms"] for row in rows)  # p90 of the same samples


@pytest.mark.slow
def test_macs_and_params_are_the_profile_counts(run: dict[str, Any]) -> None:
    rows = {row["runtime"]: row for row in run["report"]["rows"]}
    ours = profile(create_model("mobilenet_v1", width_mult=WIDTH), RESOLUTION)
    peer = profile(timm.create_model("mobilenetv1_100", pretrained=False), RESOLUTION)
    for name in ROWS:
        expected = ours if name.startswith("mobivision") else peer
        assert (rows[name]["macs"], rows[name]["params"]) == (expected.macs, expected.params), name
    table_line = next(line for line in run["stdout"].splitlines() if "mobivision ORT INT8" in line)
    assert f"{ours.macs / 1e6:.1f}" in table_line and f"{ours.params / 1e6:.3f}" in table_line


@pytest.mark.slow
def test_sizes_are_those_of_the_files_written(run: dict[str, Any]) -> None:
    rows = {row["runtime"]: row for row in run["report"]["rows"]}
    out = run["out"]
    expected_files = {
        "mobivision eager": out / "mobivision.pt",
        "mobivision ORT fp32": out / "mobivision_fp32.onnx",
        "mobivision ORT INT8": out / "mobivision_int8.onnx",
        "timm mobilenetv1_100 eager": out / "mobilenetv1_100.pt",
        "timm mobilenetv1_100 ORT fp32": out / "mobilenetv1_100_fp32.onnx",
    }
    for name, path in expected_files.items():
        files = onnx_files(path) if path.suffix == ".onnx" else [path]
        assert rows[name]["files"] == [str(f) for f in files]
        assert rows[name]["size_bytes"] == sum(f.stat().st_size for f in files)
    int8, fp32 = rows["mobivision ORT INT8"]["size_bytes"], rows["mobivision ORT fp32"]["size_bytes"]
    assert int8 < fp32 / 2  # int8 weights: about a quarter, plus scales and the graph


@pytest.mark.slow
def test_ratios_are_the_medians_ratios(run: dict[str, Any]) -> None:
    rows = run["report"]["rows"]
    eager = rows[0]["median_ms"]
    for row in rows:
        assert row["time_ratio"] == pytest.approx(row["median_ms"] / eager, rel=1e-9)
    assert run["report"]["int8_metric"] is None  # no checkpoint, no validation split


@pytest.mark.slow
def test_config_and_calibration_are_reported(run: dict[str, Any]) -> None:
    report = run["report"]
    config = report["config"]
    assert config["threads"] == config["torch_threads"] == 1
    assert config["input_size"] == [RESOLUTION, RESOLUTION] and config["repeats"] == 3
    assert config["settle_s"] == 0.0  # one thread: no spinning workers to wait for
    assert report["int8_metric"] is None
    assert "random pixels" in report["calibration"] and "random pixels" in run["stdout"]
    for row in report["rows"][1:]:
        if "ORT" in row["runtime"]:
            assert row["intra_op_threads"] == 1 and row["inter_op_threads"] == 1
            assert row["graph_optimization_level"] == "ORT_ENABLE_ALL"


def test_interleaved_times_rotate_the_order() -> None:
    calls: list[str] = []
    steps = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = interleaved_times(steps, warmup=1, repeats=4)
    assert "".join(calls) == "abc" + "abc" + "bca" + "cab" + "abc"  # warm-up round, then timed rounds
    assert {name: len(values) for name, values in times.items()} == {"a": 4, "b": 4, "c": 4}
    calls.clear()
    interleaved_times({name: steps[name] for name in "ab"}, warmup=0, repeats=3)
    assert "".join(calls) == "ab" + "ba" + "ab"  # two steps: the order flips
    assert (default_settle(1), default_settle(2)) == (0.0, SETTLE_SECONDS)


def test_missing_checkpoint_is_one_error_line(tmp_path: Path, run_tool) -> None:
    result = run_tool("benchmark", "latency", tmp_path / "nope.ckpt", "--threads", "1", cwd=ROOT, env=WIDE)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: checkpoint not found: {tmp_path / 'nope.ckpt'}"]
    assert result.stdout == ""


def test_checkpoint_with_model_options_is_a_usage_error(tmp_path: Path, run_tool) -> None:
    result = run_tool("benchmark", "latency", tmp_path / "x.ckpt", "--width", "0.5", cwd=ROOT, env=WIDE)
    assert result.returncode == 2
    assert "--width describe a fresh model" in result.stderr


# A real training run (two batches): the test that uses it is marked slow.
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, run_tool) -> Path:
    """A classifier checkpoint (MobileNetV1-0.25, 64 px) with its synthetic data still on disk."""
    cwd = tmp_path_factory.mktemp("ckpt")
    args = ["experiment=demo_classification", "debug=fast", f"paths.data_dir={cwd / 'data'}"]
    args += ["data.synthetic.images_per_class=10", "progress=plain", "test_after_training=false"]
    result = run_tool("train", *args, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return next((cwd / "runs" / "demo_classification").glob("*/checkpoints/best.ckpt"))


@pytest.mark.slow
def test_checkpoint_reports_the_int8_metric_on_its_val_split(checkpoint: Path, tmp_path: Path, run_tool) -> None:
    args = ["--threads", "1", "--repeats", "2", "--warmup", "0", "--calibration-images", "6", "--no-timm"]
    result = run_tool("benchmark", "latency", checkpoint, *args, "--json", tmp_path / "r.json", cwd=tmp_path, env=WIDE)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert [row["runtime"] for row in report["rows"]] == list(ROWS[:3])
    assert "ClassificationTask, mobilenet_v1 0.25 @ 64" in report["subject"]
    assert report["calibration"].startswith("6 training images of the checkpoint's data")
    metric = report["int8_metric"]
    val_images = sum(1 for _ in (checkpoint.parents[4] / "data").glob("demo_shapes_cls/val/*/*.png"))
    assert (metric["metric"], metric["split"], metric["images"]) == ("top1", "val", val_images)
    assert 0 <= metric["fp32"] <= 1 and 0 <= metric["int8"] <= 1
    assert metric["change_points"] == pytest.approx(100 * (metric["int8"] - metric["fp32"]))
    assert f"INT8 top1 on val ({val_images} images)" in result.stdout
    cost = profile(create_model("mobilenet_v1", width_mult=WIDTH, num_classes=6), RESOLUTION)
    assert (report["rows"][0]["macs"], report["rows"][0]["params"]) == (cost.macs, cost.params)
