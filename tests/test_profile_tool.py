"""``tools/profile_model.py`` run as a user would: JSON rows, the chart, the model picker and bad arguments.

The rows are the TF-Slim MobileNetV1 table (REFERENCE.md, "The 16 TF-Slim checkpoints") profiled by
``mobivision.tfslim_table``; latency is skipped (``--no-latency``) everywhere except where it is faked and in one
real ``--runtime openvino`` run (only that the rows name the runtime is checked, never the times).
Profiling runs on one thread: the counts do not depend on it, and on a busy 2-core machine idle OpenMP
threads spin.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from PIL import Image

from mobivision.tfslim_table import TFSLIM_TABLE, profile_rows

ROOT = Path(__file__).resolve().parents[1]
WIDE = {"COLUMNS": "250"}  # the tools' tables wrap to the terminal width
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PANEL_PX = (650, 500)  # plot_chart: 6.5 x 5 inches per panel at 100 dpi


def run_json(run_tool, *args: str | Path) -> list[dict[str, Any]]:
    result = run_tool("profile_model", "--no-latency", "--json", "--threads", "1", *args, cwd=ROOT, env=WIDE)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def tool() -> ModuleType:
    """The command behind the tool (``mobivision.commands.profile``), called in-process."""
    return importlib.import_module("mobivision.commands.profile")


@pytest.fixture(scope="module")
def chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("profile") / "chart.png"


@pytest.fixture(scope="module")
def json_rows(chart: Path, run_tool) -> list[dict[str, Any]]:
    """One run of the tool gives the JSON rows and the chart."""
    return run_json(run_tool, "--plot", chart)


def test_json_equals_the_library(json_rows: list[dict[str, Any]]) -> None:
    assert len(json_rows) == 16
    assert [row["name"] for row in json_rows] == [row.name for row in TFSLIM_TABLE]
    assert json_rows == profile_rows(latency=False, threads=1)
    assert all(row["latency_ms"] is None and row["latency_runtime"] is None for row in json_rows)


def test_json_flags_the_five_inconsistent_rows(json_rows: list[dict[str, Any]]) -> None:
    noted = {row["name"] for row in json_rows if row["note"]}
    assert noted == {"0.75-224", "0.75-192", "0.75-160", "0.75-128", "0.25-192"}
    assert all(row["macs_ok"] and row["params_ok"] for row in json_rows)


def test_plot_writes_png(json_rows: list[dict[str, Any]], chart: Path) -> None:
    assert chart.read_bytes()[:8] == PNG_MAGIC
    with Image.open(chart) as image:
        assert image.size == PANEL_PX  # no latency: the top-1 panel only


def test_plot_has_latency_panel_when_timed(tool: ModuleType, tmp_path: Path) -> None:
    rows = [{**row, "latency_ms": row["mmacs"] / 20} for row in profile_rows(latency=False, threads=1)]
    chart = tmp_path / "chart.png"
    tool.plot_chart(rows, chart)
    with Image.open(chart) as image:
        assert image.size == (2 * PANEL_PX[0], PANEL_PX[1])


def test_table_output(tool: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    assert tool.main(["--no-latency", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert all(row.name in out for row in TFSLIM_TABLE)
    assert "TF-Slim table inconsistent with paper Table 6 (325)" in out


def test_budget_mparams_lists_only_small_models(tool: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert tool.main(["--no-latency", "--json", "--threads", "1", "--budget-mparams", "1.5"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["name"] for row in rows} == {row.name for row in TFSLIM_TABLE if row.width in (0.5, 0.25)}
    assert all(row["mparams"] <= 1.5 for row in rows)
    assert [row["top1"] for row in rows] == sorted((row["top1"] for row in rows), reverse=True)
    assert rows[0]["name"] == "0.5-224"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "0"], "must be an integer > 0"),
        (["--budget-ms", "10", "--no-latency"], "--budget-ms needs latency"),
        (["--plot", "/nonexistent-folder/chart.png", "--no-latency"], "does not exist"),
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--runtime", "onnxruntime", "--no-latency"], "--runtime onnxruntime times the models; drop --no-latency"),
        (["--runtime", "tensorrt"], "invalid choice: 'tensorrt'"),
    ],
)
def test_bad_arguments_exit_nonzero(args: list[str], message: str, run_tool) -> None:
    result = run_tool("profile_model", *args, cwd=ROOT, env=WIDE)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_openvino_runtime_times_every_pair(run_tool) -> None:
    pytest.importorskip("openvino", reason="--runtime openvino needs openvino: pip install 'mobivision[openvino]'")
    args = ["--runtime", "openvino", "--budget-ms", "1e6", "--json", "--threads", "1"]
    result = run_tool("profile_model", *args, cwd=ROOT, env=WIDE)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(result.stdout)
    assert {row["name"] for row in rows} == {row.name for row in TFSLIM_TABLE}  # a budget every pair fits
    assert all(row["latency_runtime"] == "openvino" and row["latency_ms"] > 0 for row in rows)
    assert [row["top1"] for row in rows] == sorted((row["top1"] for row in rows), reverse=True)


def test_fastest_without_openvino_times_in_onnxruntime(
    tool: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``fastest`` falls back to ONNX Runtime, with ``--threads``; the title names it (latency faked: no export)."""
    from mobivision import tfslim_table
    from mobivision.export import openvino_ir

    calls = []

    def fake_latency(model: Any, *, resolution: int, runtime: str, threads: int | None) -> float:
        calls.append((runtime, threads))
        return resolution / 100

    monkeypatch.setattr(openvino_ir, "available", lambda quantization=False: False)
    monkeypatch.setattr(tfslim_table, "measure_exported_latency_ms", fake_latency)
    monkeypatch.setenv("COLUMNS", "250")
    assert tool.main(["--runtime", "fastest", "--budget-ms", "1.7", "--threads", "1"]) == 0
    assert calls == [("onnxruntime", 1)] * 16
    out = capsys.readouterr().out
    assert "CPU ms: batch 1, onnxruntime f32 on an exported ONNX file, 1 thread" in " ".join(out.split())  # wraps
    assert "0.5-160" in out and "0.5-192" not in out  # 1.6 ms fits 1.7, 1.92 ms does not


def test_openvino_runtime_without_openvino_is_a_usage_error(
    tool: ModuleType, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mobivision.export import openvino_ir

    monkeypatch.setattr(openvino_ir, "available", lambda quantization=False: False)
    with pytest.raises(SystemExit) as exit_info:
        tool.main(["--runtime", "openvino", "--budget-ms", "10"])
    assert exit_info.value.code == 2
    assert "--runtime openvino needs OpenVINO: pip install 'mobivision[openvino]'" in capsys.readouterr().err


def test_detectors_are_profiled_beside_the_published_figures(run_tool) -> None:
    result = run_tool("profile_model", "--detectors", "--json", cwd=ROOT, env=WIDE)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    ssd = rows["ssd300_mobilenet_v1"]
    assert ssd["resolution"] == 300 and ssd["published_mparams"] == 6.8
    assert abs(ssd["mparams"] - 6.8) / 6.8 < 0.01 and abs(ssd["mmacs"] - 1200) / 1200 < 0.05
    v3 = rows["ssdlite320_mobilenet_v3_large"]
    assert v3["mparams"] == pytest.approx(3.44006, abs=1e-5)  # torchvision's num_params: 3,440,060
    assert v3["mmacs"] == pytest.approx(583, rel=0.01)


@pytest.mark.slow  # times three detectors, inference and training
def test_detector_benchmark_compares_like_with_like(run_tool) -> None:
    args = ["detector", "--repeats", "1", "--train-batch", "2", "--threads", "1", "--json"]
    result = run_tool("benchmark", *args, cwd=ROOT, env=WIDE)
    assert result.returncode == 0, result.stderr
    rows = {row["model"]: row for row in json.loads(result.stdout)["results"]}
    assert set(rows) == {"ours_v1", "ours_v3", "torchvision_v3"}
    assert rows["ours_v3"]["params"] == rows["torchvision_v3"]["params"] == 3_440_060
    assert rows["torchvision_v3"]["latency_vs_torchvision"] == 1.0
    for row in rows.values():  # one repeat on a shared machine: only the signs are stable
        assert row["latency_ms"] > 0 and row["postprocess_share"] > 0 and row["train_images_per_s"] > 0
