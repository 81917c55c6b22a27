"""Build adaptive S2 cell partitions (geolocation classes) from a geotagged training list.

Usage::

    python tools/geo_cells.py TRAIN_CSV --out DIR --t-min 50 --t-max 5000 2000 1000
        [--min-level 2] [--max-level 30] [--image-column IMG_ID] [--lat-column LAT] [--lon-column LON]

TRAIN_CSV is any list ``read_geo_csv`` reads (GeoEstimation's ``mp16_places365.csv``: ``IMG_ID,LAT,LON,...``);
only the coordinates are used, the images are not looked at. For each ``--t-max`` this writes
``DIR/cells_<t_min>_<t_max>.csv`` (``class,token,count,lat,lon``, see ``mobivision.geo.cells``) and prints one
line: cells kept and dropped, photos dropped, photos per cell and the S2 levels used. GeoEstimation's coarse,
middle and fine partitions of MP-16 are ``--t-min 50 --t-max 5000 2000 1000``. A bad input ends with one
``error: ...`` line and exit code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mobivision.commands.cli import exit_code, positive_int
from mobivision.data.geo_csv import read_geo_csv
from mobivision.geo.cells import MAX_LEVEL, PartitionStats, leaf_cell_ids, partition_cells, write_cells_csv


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train_csv", type=Path, help="geotagged training list (CSV with a header row)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write cells_<t_min>_<t_max>.csv to")
    parser.add_argument("--t-min", type=positive_int, required=True, help="fewest photos a kept cell holds")
    parser.add_argument(
        "--t-max", type=positive_int, nargs="+", required=True, help="split cells with more photos (one partition each)"
    )
    parser.add_argument("--min-level", type=int, default=2, help="S2 level the splitting starts from (default: 2)")
    parser.add_argument("--max-level", type=int, default=MAX_LEVEL, help=f"deepest S2 level (default: {MAX_LEVEL})")
    parser.add_argument("--image-column", help="image column name (default: found by name, e.g. IMG_ID)")
    parser.add_argument("--lat-column", help="latitude column name (default: LAT or LATITUDE, any case)")
    parser.add_argument("--lon-column", help="longitude column name (default: LON, LNG, LONG or LONGITUDE)")
    return parser.parse_args(argv)


def stats_line(name: str, stats: PartitionStats) -> str:
    """One line about a partition."""
    share = 100.0 * stats.dropped_points / stats.num_points
    levels = " ".join(f"{level}:{cells}" for level, cells in stats.levels.items())
    return (
        f"{name}: {stats.kept_cells} cells kept, {stats.dropped_cells} dropped; {stats.dropped_points} of "
        f"{stats.num_points} photos dropped ({share:.2f}%); photos per cell min {stats.min_count} / median "
        f"{stats.median_count:g} / max {stats.max_count}; cells per level {levels}"
    )


def run(args: argparse.Namespace) -> None:
    records = read_geo_csv(
        args.train_csv,
        image_column=args.image_column,
        lat_column=args.lat_column,
        lon_column=args.lon_column,
        check_images=False,
    )
    lats = [record.label[0] for record in records]
    lons = [record.label[1] for record in records]
    leaves = leaf_cell_ids(lats, lons)  # once for all partitions
    for t_max in args.t_max:
        cells, stats = partition_cells(
            lats,
            lons,
            t_min=args.t_min,
            t_max=t_max,
            min_level=args.min_level,
            max_level=args.max_level,
            leaf_ids=leaves,
        )
        path = write_cells_csv(cells, args.out / f"cells_{args.t_min}_{t_max}.csv")
        print(stats_line(str(path), stats), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return exit_code(lambda: run(args))
