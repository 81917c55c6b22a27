"""The S2 partitionings a geo model classifies over, for one training set, and each training photo's classes.

Each partitioning is the file ``<folder>/cells_<t_min>_<t_max>.csv`` (what ``tools/geo_cells.py`` writes from the
full training list), used as it is; a missing one is built from the given coordinates and written there
(``load_or_build_cells``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mobivision.geo.cells import MAX_LEVEL, assign_cells, cells_to_columns, load_or_build_cells


def training_partitionings(
    folder: str | Path,
    lats: Any,
    lons: Any,
    *,
    t_min: int,
    t_max: Sequence[int],
    min_level: int = 2,
    max_level: int = MAX_LEVEL,
) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """The partitionings of the photos at ``lats``/``lons``, one per ``t_max``, coarse (large ``t_max``) first.

    Returns:
        Each partitioning as ``{"name": its file's stem, **cells_to_columns(cells)}`` (what ``GeoTask`` takes as
        ``partitions``), and for each partitioning every photo's class in it (-1 where its cell was dropped,
        under ``t_min``).

    Raises:
        ConfigError, DataError: As ``load_or_build_cells``.
    """
    partitions, classes = [], []
    for limit in sorted(t_max, reverse=True):
        file = Path(folder) / f"cells_{t_min}_{limit}.csv"
        cells = load_or_build_cells(
            file, lats, lons, t_min=t_min, t_max=limit, min_level=min_level, max_level=max_level
        )
        partitions.append({"name": file.stem, **cells_to_columns(cells)})
        classes.append(assign_cells(cells, lats, lons).tolist())
    return partitions, classes
