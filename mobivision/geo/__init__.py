"""Photo geolocation helpers: great-circle distances and adaptive S2 cell partitions (PlaNet, GeoEstimation)."""

from mobivision.geo.cells import (
    CELLS_HEADER,
    GeoCell,
    PartitionStats,
    assign_cells,
    cells_from_columns,
    cells_to_columns,
    leaf_cell_ids,
    load_or_build_cells,
    parent_ids,
    parent_indices,
    partition_cells,
    read_cells_csv,
    write_cells_csv,
)
from mobivision.geo.distance import EARTH_RADIUS_KM, great_circle_km
from mobivision.geo.partitionings import training_partitionings

__all__ = [
    "CELLS_HEADER",
    "EARTH_RADIUS_KM",
    "GeoCell",
    "PartitionStats",
    "assign_cells",
    "cells_from_columns",
    "cells_to_columns",
    "great_circle_km",
    "leaf_cell_ids",
    "load_or_build_cells",
    "parent_ids",
    "parent_indices",
    "partition_cells",
    "read_cells_csv",
    "training_partitionings",
    "write_cells_csv",
]
