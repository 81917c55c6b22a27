"""``tools/geo_cells.py`` run as a user would: partitions written per ``--t-max``, stats printed, bad input.

Two runs go through a subprocess (the real command line and exit code); the other error cases call the
script's ``main`` in-process, which is what the subprocess runs.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from mobivision.geo import partition_cells, read_cells_csv

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tool() -> ModuleType:
    """The command behind the tool (``mobivision.commands.geo_cells``), called in-process."""
    return importlib.import_module("mobivision.commands.geo_cells")


@pytest.fixture(scope="module")
def coordinates() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    centers = [(48.86, 2.35, 300), (40.7, -74.0, 200), (-33.9, 151.2, 120), (35.7, 139.7, 80)]
    lats = np.concatenate([lat + rng.normal(0, 1.5, n) for lat, _, n in centers] + [rng.uniform(-60, 60, 30)])
    lons = np.concatenate([lon + rng.normal(0, 1.5, n) for _, lon, n in centers] + [rng.uniform(-180, 180, 30)])
    return np.round(lats, 5), np.round(lons, 5)


@pytest.fixture
def train_csv(tmp_path: Path, coordinates: tuple[np.ndarray, np.ndarray]) -> Path:
    """A GeoEstimation-style list; the images do not exist (the tool does not look at them)."""
    rows = [f"{i:05d}.jpg,{lat},{lon},0,1" for i, (lat, lon) in enumerate(zip(*coordinates, strict=True))]
    path = tmp_path / "train.csv"
    path.write_text("\n".join(["IMG_ID,LAT,LON,S3_Label,S16_Label", *rows]) + "\n")
    return path


def test_writes_one_partition_per_t_max(
    tmp_path: Path, train_csv: Path, coordinates: tuple[np.ndarray, np.ndarray], run_tool
) -> None:
    out = tmp_path / "cells"
    result = run_tool("geo_cells", train_csv, "--out", out, "--t-min", "10", "--t-max", "200", "50", cwd=ROOT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert sorted(p.name for p in out.iterdir()) == ["cells_10_200.csv", "cells_10_50.csv"]
    for t_max, line in zip((200, 50), lines, strict=True):
        expected, stats = partition_cells(*coordinates, t_min=10, t_max=t_max)
        written = read_cells_csv(out / f"cells_10_{t_max}.csv")
        assert [(c.token, c.count) for c in written] == [(c.token, c.count) for c in expected]
        assert line.startswith(f"{out / f'cells_10_{t_max}.csv'}: {stats.kept_cells} cells kept, ")
        assert f"{stats.dropped_points} of 730 photos dropped" in line
        assert f"min {stats.min_count} / median {stats.median_count:g} / max {stats.max_count}" in line
        assert "cells per level " + " ".join(f"{lv}:{n}" for lv, n in stats.levels.items()) in line
    assert len(read_cells_csv(out / "cells_10_50.csv")) > len(read_cells_csv(out / "cells_10_200.csv"))


def test_bad_csv_is_one_error_line(tmp_path: Path, train_csv: Path, run_tool) -> None:
    lines = train_csv.read_text().splitlines()
    lines[3] = "00002.jpg,48.1,200.5,0,1"
    train_csv.write_text("\n".join(lines) + "\n")
    result = run_tool("geo_cells", train_csv, "--out", tmp_path / "cells", "--t-min", "10", "--t-max", "200", cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: {train_csv}:4: column LON is '200.5'; expected a longitude in degrees in [-180, 180]"
    ]
    assert not (tmp_path / "cells").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--t-min", "100", "--t-max", "200", "50"], "t_max must be >= t_min = 100, got 50"),
        (["--t-min", "10", "--t-max", "200", "--max-level", "31"], "max_level must be <= 30, got 31"),
        (["--t-min", "10000", "--t-max", "20000"], "no cell holds t_min = 10000 of the 730 points"),
        (["--t-min", "10", "--t-max", "200", "--lat-column", "y"], "latitude column 'y': no such column"),
    ],
)
def test_bad_settings_exit_2(
    tool: ModuleType,
    tmp_path: Path,
    train_csv: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    assert tool.main([str(train_csv), "--out", str(tmp_path / "cells"), *args]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_missing_csv_exit_2(tool: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tool.main([str(tmp_path / "nope.csv"), "--out", str(tmp_path), "--t-min", "1", "--t-max", "5"]) == 2
    assert capsys.readouterr().err.startswith("error: geotag CSV not found")
