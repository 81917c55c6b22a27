"""``tools/benchmark.py latency`` run as a user would, on a fresh MobileNetV1 1.0 at 32 px (every row: timm has a
peer at this width), on 0.25 @ 64 px (no peer, ``--no-openvino``) and on a checkpoint trained for two batches
(``debug=fast``, as in ``test_tools.py``), all on 1 thread.

Only what does not depend on timing is checked: every row is there in order, MACs and parameters are
``mobivision.profiling``'s counts (timm's peer: the same counts), sizes are those of the files written, ratios and
GFLOP/s follow from the medians, the summary names the right rows, the INT8 metric block of a checkpoint is
consistent. A shared 2-core machine makes the timings themselves noise at these few repeats.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import timm

from mobivision import create_model, profile
from mobivision.export import openvino_ir
from mobivision.runtime_latency import (
    BF16_ROW,
    SETTLE_SECONDS,
    LatencyConfig,
    default_settle,
    latency_summary,
    measure_latency,
    onnx_files,
    timm_mobilenet_v1_widths,
    timm_peer_name,
)

ROOT = Path(__file__).resolve().parents[1]
WIDE = {"COLUMNS": "250"}  # the table wraps to the terminal width
WIDTH, RESOLUTION = 1.0, 32  # timm has MobileNetV1 1.0: every row
PEER = "timm mobilenetv1_100"
TINY_WIDTH, TINY_RESOLUTION = 0.25, 64  # timm has no MobileNetV1 0.25
FP32_ROWS = ("mobivision eager", "mobivision ORT fp32", "mobivision OpenVINO fp32")
INT8_ROWS = ("mobivision ORT INT8", "mobivision OpenVINO INT8", "mobivision OpenVINO on ORT's INT8 file")
PEER_ROWS = (f"{PEER} eager", f"{PEER} ORT fp32", f"{PEER} OpenVINO fp32")


def our_rows() -> tuple[str, ...]:
    """Our rows in table order; the bf16 row only where OpenVINO's CPU plugin has native bf16."""
    from mobivision.runtime_latency import openvino_has_bf16

    return (*FP32_ROWS, *((BF16_ROW,) if openvino_has_bf16() else ()), *INT8_ROWS)


# Exports to ONNX, ORT INT8 and an NNCF IR and times ten runtimes: the tests that use it are marked slow.
@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, run_tool) -> dict[str, Any]:
    """One run of the tool with every row: its table on stdout, its JSON report and the files it kept."""
    pytest.importorskip("openvino", reason="the OpenVINO rows need openvino: pip install 'mobivision[openvino]'")
    pytest.importorskip("nncf", reason="the OpenVINO INT8 row needs nncf: pip install 'mobivision[openvino]'")
    out = tmp_path_factory.mktemp("latency")
    result = run_tool(
        "benchmark", "latency", "--model", "mobilenet_v1", "--width", WIDTH, "--resolution", RESOLUTION, "--threads", 1,
        "--repeats", 3, "--warmup", 1, "--calibration-images", 4, "--out", out / "files", "--json", out / "r.json",
        cwd=ROOT, env=WIDE,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((out / "r.json").read_text())
    return {"stdout": result.stdout, "report": report, "out": out / "files", "rows": (*our_rows(), *PEER_ROWS)}


@pytest.mark.slow
def test_all_rows_in_order_in_json_and_table(run: dict[str, Any]) -> None:
    rows = run["report"]["rows"]
    assert [row["runtime"] for row in rows] == list(run["rows"])
    for name in run["rows"]:
        assert name in run["stdout"]
    columns = ("median ms", "p90 ms", "time / eager", "time / fastest", "GFLOP/s", "size MB", "MACs (M)", "params (M)")
    for column in columns:
        assert column in run["stdout"]
    assert all(0 < row["median_ms"] <= row["p90_ms"] for row in rows)  # p90 of the same samples
    assert run["report"]["notes"] == []  # OpenVINO, NNCF and the peer are all there; --out keeps the files


@pytest.mark.slow
def test_macs_and_params_are_the_profile_counts(run: dict[str, Any]) -> None:
    rows = {row["runtime"]: row for row in run["report"]["rows"]}
    ours = profile(create_model("mobilenet_v1", width_mult=WIDTH), RESOLUTION)
    for name in run["rows"]:  # timm's peer is the same network: the same counts
        assert (rows[name]["macs"], rows[name]["params"]) == (ours.macs, ours.params), name
    assert run["report"]["config"]["timm_model"] == "mobilenetv1_100"
    table_line = next(line for line in run["stdout"].splitlines() if "mobivision OpenVINO INT8" in line)
    assert f"{ours.macs / 1e6:.1f}" in table_line and f"{ours.params / 1e6:.3f}" in table_line


@pytest.mark.slow
def test_sizes_are_those_of_the_files_written(run: dict[str, Any]) -> None:
    rows = {row["runtime"]: row for row in run["report"]["rows"]}
    out = run["out"]
    expected_files = {
        "mobivision eager": [out / "mobivision.pt"],
        "mobivision ORT fp32": onnx_files(out / "mobivision_fp32.onnx"),
        "mobivision OpenVINO fp32": onnx_files(out / "mobivision_fp32.onnx"),
        "mobivision ORT INT8": onnx_files(out / "mobivision_int8.onnx"),
        "mobivision OpenVINO INT8": [out / "mobivision_int8.xml", out / "mobivision_int8.bin"],
        "mobivision OpenVINO on ORT's INT8 file": onnx_files(out / "mobivision_int8.onnx"),
        f"{PEER} eager": [out / "mobilenetv1_100.pt"],
        f"{PEER} ORT fp32": onnx_files(out / "mobilenetv1_100_fp32.onnx"),
        f"{PEER} OpenVINO fp32": onnx_files(out / "mobilenetv1_100_fp32.onnx"),
    }
    for name, files in expected_files.items():
        assert rows[name]["files"] == [str(f) for f in files], name
        assert rows[name]["size_bytes"] == sum(f.stat().st_size for f in files), name
    fp32 = rows["mobivision ORT fp32"]["size_bytes"]
    for name in INT8_ROWS:
        assert rows[name]["size_bytes"] < fp32 / 2, name  # int8 weights: about a quarter, plus scales and the graph


@pytest.mark.slow
def test_ratios_and_gflops_follow_from_the_medians(run: dict[str, Any]) -> None:
    rows = run["report"]["rows"]
    eager, fastest = rows[0]["median_ms"], min(row["median_ms"] for row in rows)
    for row in rows:
        assert row["time_ratio"] == pytest.approx(row["median_ms"] / eager, rel=1e-9)
        assert row["time_vs_fastest"] == pytest.approx(row["median_ms"] / fastest, rel=1e-9)
        assert row["time_vs_fastest"] >= 1.0
        assert row["gflop_per_s"] == pytest.approx(2 * row["macs"] / (row["median_ms"] / 1e3) / 1e9, rel=1e-9)
    assert sum(row["time_vs_fastest"] == 1.0 for row in rows) >= 1
    assert run["report"]["int8_metric"] is None  # no checkpoint, no validation split


@pytest.mark.slow
def test_summary_names_the_fastest_rows_and_int8_speedups(run: dict[str, Any]) -> None:
    rows = {row["runtime"]: row for row in run["report"]["rows"]}
    summary = run["report"]["summary"]
    fastest = min(rows.values(), key=lambda row: row["median_ms"])
    ours = min((row for name, row in rows.items() if name.startswith("mobivision")), key=lambda row: row["median_ms"])
    assert summary["fastest"] == {"runtime": fastest["runtime"], "median_ms": fastest["median_ms"]}
    recommended = summary["recommended_cpu_path"]
    assert (recommended["runtime"], recommended["time_vs_fastest"]) == (ours["runtime"], ours["time_vs_fastest"])
    median = {name: row["median_ms"] for name, row in rows.items()}
    assert summary["int8_speedup"] == {
        "ONNX Runtime": pytest.approx(median["mobivision ORT fp32"] / median["mobivision ORT INT8"], rel=1e-9),
        "OpenVINO": pytest.approx(median["mobivision OpenVINO fp32"] / median["mobivision OpenVINO INT8"], rel=1e-9),
    }
    assert f"fastest: {fastest['runtime']} ({fastest['median_ms']:.2f} ms)" in run["stdout"]
    assert f"recommended CPU path: {ours['runtime']} ({ours['median_ms']:.2f} ms" in run["stdout"]
    speedup = summary["int8_speedup"]["OpenVINO"]
    assert "INT8 speed-up over the same runtime's fp32 (fp32 ms / INT8 ms):" in run["stdout"]
    assert f"OpenVINO {speedup:.2f}x" in run["stdout"]


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
        if row["engine"].startswith("onnxruntime"):
            assert row["intra_op_threads"] == 1 and row["inter_op_threads"] == 1
            assert row["graph_optimization_level"] == "ORT_ENABLE_ALL"
        if row["engine"].startswith("openvino"):
            assert row["inference_threads"] == 1
            assert row["inference_precision"] == ("bf16" if row["runtime"] == BF16_ROW else "f32")
    assert config["openvino_bf16"] == (BF16_ROW in run["rows"])
    assert (BF16_ROW in run["stdout"].split("params (M)")[1]) == config["openvino_bf16"]


def test_no_openvino_and_no_peer_at_a_width_timm_lacks(tmp_path: Path, run_tool) -> None:
    result = run_tool(
        "benchmark", "latency", "--model", "mobilenet_v1", "--width", TINY_WIDTH, "--resolution", TINY_RESOLUTION,
        "--threads", 1, "--repeats", 1, "--warmup", 0, "--no-int8", "--no-openvino", "--json", tmp_path / "r.json",
        cwd=ROOT, env=WIDE,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert [row["runtime"] for row in report["rows"]] == ["mobivision eager", "mobivision ORT fp32"]
    note = "timm has no MobileNetV1 at width 0.25 (it has widths 1.0, 1.25): no peer rows"
    assert note in report["notes"] and note in result.stdout
    assert report["config"]["timm_model"] is None and report["config"]["openvino"] is None
    assert "OpenVINO" not in result.stdout.split("params (M)")[1].split("fastest:")[0]
    assert report["summary"]["int8_speedup"] == {}
    assert report["summary"]["recommended_cpu_path"]["runtime"] == report["summary"]["fastest"]["runtime"]


def test_timm_peers_are_the_same_network() -> None:
    """Every timm MobileNetV1 used as a peer has our multiply-adds and parameters at that width."""
    widths = timm_mobilenet_v1_widths()
    assert widths == {1.0: "mobilenetv1_100", 1.25: "mobilenetv1_125"}  # not mobilenetv1_100h: a head conv more
    for width, name in widths.items():
        assert timm_peer_name("mobilenet_v1", width) == (name, "")
        ours = profile(create_model("mobilenet_v1", width_mult=width), RESOLUTION)
        peer = profile(timm.create_model(name, pretrained=False), RESOLUTION)
        assert (peer.macs, peer.params) == (ours.macs, ours.params), name
    assert timm_peer_name("mobilenet_v1", 0.5) == (
        None,
        "timm has no MobileNetV1 at width 0.5 (it has widths 1.0, 1.25): no peer rows",
    )
    assert timm_peer_name("mobilenet_v2", 1.0)[0] is None


def test_missing_openvino_is_one_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openvino_ir, "available", lambda quantization=False: False)
    model = create_model("mobilenet_v1", width_mult=TINY_WIDTH)
    config = LatencyConfig(threads=1, repeats=1, warmup=0, int8=False, timm=False)
    report = measure_latency(model, input_size=(32, 32), calibration=[], out_dir=tmp_path, config=config)
    assert [row["runtime"] for row in report["rows"]] == ["mobivision eager", "mobivision ORT fp32"]
    assert report["notes"] == [f"OpenVINO is not installed: no OpenVINO rows ({openvino_ir.INSTALL})"]
    assert "pip install 'mobivision[openvino]'" in report["notes"][0]


def _row(runtime: str, median_ms: float) -> dict[str, Any]:
    return {"runtime": runtime, "median_ms": median_ms, "time_vs_fastest": median_ms / 1.0}


def test_summary_recommends_our_fastest_row_even_when_a_peer_is_faster() -> None:
    rows = [
        _row("mobivision eager", 9.0),
        _row("mobivision ORT fp32", 4.0),
        _row("mobivision OpenVINO fp32", 3.0),
        _row("mobivision ORT INT8", 2.0),
        _row("mobivision OpenVINO INT8", 1.5),
        _row(f"{PEER} OpenVINO fp32", 1.0),
    ]
    summary = latency_summary(rows)
    assert summary["fastest"] == {"runtime": f"{PEER} OpenVINO fp32", "median_ms": 1.0}
    assert summary["recommended_cpu_path"] == {
        "runtime": "mobivision OpenVINO INT8",
        "median_ms": 1.5,
        "time_vs_fastest": 1.5,
    }
    assert summary["int8_speedup"] == {"ONNX Runtime": 2.0, "OpenVINO": 2.0}


def test_settling_is_for_worker_threads_only() -> None:
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
    pytest.importorskip(
        "nncf", reason="the OpenVINO INT8 IR needs openvino and nncf: pip install 'mobivision[openvino]'"
    )
    args = ["--threads", "1", "--repeats", "2", "--warmup", "0", "--calibration-images", "6", "--no-timm"]
    result = run_tool("benchmark", "latency", checkpoint, *args, "--json", tmp_path / "r.json", cwd=tmp_path, env=WIDE)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert [row["runtime"] for row in report["rows"]] == list(our_rows())
    assert "ClassificationTask, mobilenet_v1 0.25 @ 64" in report["subject"]
    assert report["calibration"].startswith("6 training images of the checkpoint's data")
    metric = report["int8_metric"]
    val_images = sum(1 for _ in (checkpoint.parents[4] / "data").glob("demo_shapes_cls/val/*/*.png"))
    assert (metric["metric"], metric["split"], metric["images"]) == ("top1", "val", val_images)
    assert 0 <= metric["fp32"] <= 1 and 0 <= metric["int8"] <= 1
    assert metric["change_points"] == pytest.approx(100 * (metric["int8"] - metric["fp32"]))
    assert 0 <= metric["openvino_int8"] <= 1
    assert metric["openvino_int8_change_points"] == pytest.approx(100 * (metric["openvino_int8"] - metric["fp32"]))
    assert set(metric["all_metrics"]) == {"fp32", "int8", "openvino_int8"}
    assert f"INT8 top1 on val ({val_images} images)" in result.stdout
    assert f"OpenVINO INT8 {metric['openvino_int8']:.4f}" in result.stdout
    cost = profile(create_model("mobilenet_v1", width_mult=TINY_WIDTH, num_classes=6), TINY_RESOLUTION)
    assert (report["rows"][0]["macs"], report["rows"][0]["params"]) == (cost.macs, cost.params)
