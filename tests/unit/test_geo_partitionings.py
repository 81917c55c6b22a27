"""``mobivision.geo.partitionings``: a training set's partitionings, built and written to their cells files (or read
from them), coarse first, with each photo's class in each."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mobivision.geo.cells import assign_cells, cells_to_columns, partition_cells, read_cells_csv
from mobivision.geo.partitionings import training_partitionings


def _photos() -> tuple[np.ndarray, np.ndarray]:
    """300 photos around Paris and one alone in the Southern Ocean (its cell holds fewer than ``t_min``)."""
    rng = np.random.default_rng(0)
    return np.append(rng.normal(48.9, 2.0, 300), -60.0), np.append(rng.normal(2.3, 2.0, 300), -120.0)


def test_partitionings_are_built_coarse_first_written_and_named_for_their_files(tmp_path: Path) -> None:
    lats, lons = _photos()
    partitions, classes = training_partitionings(tmp_path / "cells", lats, lons, t_min=5, t_max=[20, 100])
    assert [p["name"] for p in partitions] == ["cells_5_100", "cells_5_20"]
    for t_max, partition, points in zip((100, 20), partitions, classes, strict=True):
        cells, _ = partition_cells(lats, lons, t_min=5, t_max=t_max)
        assert partition == {"name": f"cells_5_{t_max}", **cells_to_columns(cells)}
        assert points == assign_cells(cells, lats, lons).tolist() and points[-1] == -1
        assert [c.token for c in read_cells_csv(tmp_path / "cells" / f"cells_5_{t_max}.csv")] == partition["tokens"]


def test_existing_cells_files_are_read_not_rebuilt(tmp_path: Path) -> None:
    lats, lons = _photos()
    built, _ = training_partitionings(tmp_path, lats, lons, t_min=5, t_max=[100])
    read, classes = training_partitionings(tmp_path, [0.0], [0.0], t_min=5, t_max=[100])
    assert read[0]["tokens"] == built[0]["tokens"] and classes == [[-1]]
