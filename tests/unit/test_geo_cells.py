"""Unit tests of ``mobivision.geo.cells``: adaptive S2 partitions, cell assignment and the cells CSV.

The partition is checked against a plain recursive rebuild with ``s2sphere`` (split a cell while it holds more
than ``t_max`` points, keep the final cells with at least ``t_min``) and against containment tests with
``s2sphere.CellId.contains``, independent of the numpy bit arithmetic under test. The points are clusters of
different sizes, one of them straddling the antimeridian, plus sparse noise that ends up in dropped cells.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import s2sphere
import torch

from mobivision.errors import ConfigError, DataError
from mobivision.geo import (
    CELLS_HEADER,
    GeoCell,
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

T_MIN, T_MAX = 20, 300
# (lat, lon, spread in degrees, points): a city, a region, a small town, a cluster on lon 180, one near the pole
CLUSTERS = [(48.86, 2.35, 0.3, 1500), (35.0, -100.0, 6.0, 1500), (-33.9, 18.4, 0.05, 150), (-17.0, 179.9, 0.4, 800)]
CLUSTERS += [(88.0, 40.0, 1.0, 300)]


def s2_leaf(lat: float, lon: float) -> s2sphere.CellId:
    return s2sphere.CellId.from_lat_lng(s2sphere.LatLng.from_degrees(lat, lon))


@pytest.fixture(scope="module")
def points() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    lats, lons = [], []
    for lat, lon, spread, count in CLUSTERS:
        lats.append(np.clip(lat + rng.normal(0, spread, count), -90, 90))
        lons.append((lon + rng.normal(0, spread, count) + 180) % 360 - 180)
    lats.append(np.degrees(np.arcsin(rng.uniform(-1, 1, 400))))  # sparse noise, uniform on the sphere
    lons.append(rng.uniform(-180, 180, 400))
    lats.append([10.0] * 40)  # 40 photos at one spot: a cell that can only stop splitting at max_level
    lons.append([20.0] * 40)
    return np.concatenate(lats), np.concatenate(lons)


@pytest.fixture(scope="module")
def leaves(points: tuple[np.ndarray, np.ndarray]) -> list[s2sphere.CellId]:
    return [s2_leaf(lat, lon) for lat, lon in zip(*points, strict=True)]


def rebuild(leaves: list[s2sphere.CellId], t_min: int, t_max: int, min_level: int, max_level: int) -> dict[str, int]:
    """``{token: count}`` of the kept cells, by plain recursion with s2sphere."""
    final: dict[str, int] = {}

    def split(cell: s2sphere.CellId, members: list[s2sphere.CellId]) -> None:
        if len(members) > t_max and cell.level() < max_level:
            children: dict[int, list[s2sphere.CellId]] = {}
            for leaf in members:
                children.setdefault(leaf.parent(cell.level() + 1).id(), []).append(leaf)
            for child, inside in children.items():
                split(s2sphere.CellId(child), inside)
        else:
            final[cell.to_token()] = len(members)

    start: dict[int, list[s2sphere.CellId]] = {}
    for leaf in leaves:
        start.setdefault(leaf.parent(min_level).id(), []).append(leaf)
    for cell, members in start.items():
        split(s2sphere.CellId(cell), members)
    return {token: count for token, count in final.items() if count >= t_min}


def unit_vector_mean(lats: np.ndarray, lons: np.ndarray) -> tuple[float, float]:
    x = sum(math.cos(math.radians(a)) * math.cos(math.radians(b)) for a, b in zip(lats, lons, strict=True))
    y = sum(math.cos(math.radians(a)) * math.sin(math.radians(b)) for a, b in zip(lats, lons, strict=True))
    z = sum(math.sin(math.radians(a)) for a in lats)
    return math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x))


def test_leaf_ids_match_s2sphere(points: tuple[np.ndarray, np.ndarray], leaves: list[s2sphere.CellId]) -> None:
    assert leaf_cell_ids(*points).tolist() == [leaf.id() for leaf in leaves]
    # poles, the antimeridian, cube-face edges and corners, and a grid that hits many cell boundaries exactly
    corner = math.degrees(math.atan(1 / math.sqrt(2)))
    special = [(90, 0), (-90, 0), (0, 180), (0, -180), (0, 45), (0, -135), (corner, 45), (-corner, -45), (45, 0)]
    grid = [(lat, lon) for lat in np.arange(-90, 90.1, 7.5) for lon in np.arange(-180, 180.1, 7.5)]
    lats, lons = np.array(special + grid).T
    assert leaf_cell_ids(lats, lons).tolist() == [s2_leaf(a, b).id() for a, b in zip(lats, lons, strict=True)]


def test_parent_bit_arithmetic_matches_s2sphere(leaves: list[s2sphere.CellId]) -> None:
    ids = np.array([leaf.id() for leaf in leaves[::50]], dtype=np.uint64)
    for level in range(31):
        assert parent_ids(ids, level).tolist() == [leaf.parent(level).id() for leaf in leaves[::50]]
    level_5 = parent_ids(ids, 5)
    assert parent_ids(level_5, 3).tolist() == [leaf.parent(3).id() for leaf in leaves[::50]]
    assert parent_ids(level_5, 5).tolist() == level_5.tolist()


def test_partition_equals_the_recursive_rebuild(
    points: tuple[np.ndarray, np.ndarray], leaves: list[s2sphere.CellId]
) -> None:
    cells, stats = partition_cells(*points, t_min=T_MIN, t_max=T_MAX)
    expected = rebuild(leaves, T_MIN, T_MAX, min_level=2, max_level=30)
    assert {cell.token: cell.count for cell in cells} == expected
    assert [cell.class_index for cell in cells] == list(range(len(cells)))
    ids = [cell.cell_id.id() for cell in cells]
    assert ids == sorted(ids), "classes follow the S2 cell-id order"
    assert stats.num_points == len(leaves) and stats.kept_cells == len(cells)
    assert stats.dropped_points == len(leaves) - sum(expected.values()) > 0
    counts = sorted(expected.values())
    assert (stats.min_count, stats.max_count, stats.median_count) == (counts[0], counts[-1], float(np.median(counts)))
    assert stats.levels == dict(sorted(Counter(cell.level for cell in cells).items()))
    assert len(stats.levels) > 2, "the clusters should give cells at several levels"


def test_partition_invariants_by_containment(
    points: tuple[np.ndarray, np.ndarray], leaves: list[s2sphere.CellId]
) -> None:
    cells, stats = partition_cells(*points, t_min=T_MIN, t_max=T_MAX)
    ids = [cell.cell_id for cell in cells]
    assert all(cell_id.is_valid() for cell_id in ids)
    for i, a in enumerate(ids):
        assert not any(a.contains(b) for j, b in enumerate(ids) if i != j), f"cell {cells[i].token} overlaps"
    inside = [[k for k, cell_id in enumerate(ids) if cell_id.contains(leaf)] for leaf in leaves]
    assert all(len(hits) <= 1 for hits in inside)
    members = Counter(hits[0] for hits in inside if hits)
    for k, cell in enumerate(cells):
        assert cell.count == members[k] >= T_MIN
        assert cell.count <= T_MAX or cell.level == 30
    # a point outside every kept cell lies in a final cell (its first ancestor from level 2 down holding at most
    # t_max points) that holds fewer than t_min
    per_cell = [Counter(leaf.parent(level).id() for leaf in leaves) for level in range(31)]
    dropped: set[tuple[int, int]] = set()
    for leaf, hits in zip(leaves, inside, strict=True):
        if not hits:
            level = next(lv for lv in range(2, 31) if per_cell[lv][leaf.parent(lv).id()] <= T_MAX or lv == 30)
            assert per_cell[level][leaf.parent(level).id()] < T_MIN
            dropped.add((level, leaf.parent(level).id()))
    assert stats.dropped_cells == len(dropped)
    assert stats.dropped_points == sum(not hits for hits in inside)


def test_cells_over_t_max_only_at_max_level(points: tuple[np.ndarray, np.ndarray]) -> None:
    cells, stats = partition_cells(*points, t_min=5, t_max=30, min_level=2, max_level=6)
    assert max(stats.levels) == 6
    assert any(cell.count > 30 for cell in cells)
    assert all(cell.level == 6 for cell in cells if cell.count > 30)
    # without the cap the 40 photos at one spot still end in one cell: at the leaf level
    cells, _ = partition_cells(*points, t_min=5, t_max=30)
    assert [cell.level for cell in cells if cell.count > 30] == [30]


def test_means_are_on_the_unit_sphere(points: tuple[np.ndarray, np.ndarray]) -> None:
    lats, lons = points
    cells, _ = partition_cells(lats, lons, t_min=T_MIN, t_max=T_MAX)
    classes = assign_cells(cells, lats, lons).numpy()
    for cell in cells:
        lat, lon = unit_vector_mean(lats[classes == cell.class_index], lons[classes == cell.class_index])
        assert cell.lat == pytest.approx(lat, abs=1e-9)
        assert cell.lon == pytest.approx(lon, abs=1e-9)


def test_mean_of_a_cell_across_the_antimeridian() -> None:
    """Starting from the cube faces, lon 179 E and 179 W share face 3: the mean is at lon 180, not lon 0."""
    lats = np.array([-1.0, 1.0, 1.0, -1.0])
    lons = np.array([179.0, 179.0, -179.0, -179.0])
    cells, stats = partition_cells(lats, lons, t_min=1, t_max=10, min_level=0)
    assert len(cells) == 1 and cells[0].level == 0 and cells[0].count == 4
    assert cells[0].lat == pytest.approx(0.0, abs=1e-9)
    assert abs(cells[0].lon) == pytest.approx(180.0, abs=1e-9)
    assert stats.levels == {0: 1} and stats.dropped_cells == 0


def test_partition_is_deterministic(points: tuple[np.ndarray, np.ndarray]) -> None:
    lats, lons = points
    order = np.random.default_rng(3).permutation(lats.size)
    first, _ = partition_cells(lats, lons, t_min=T_MIN, t_max=T_MAX)
    shuffled, _ = partition_cells(torch.from_numpy(lats[order]), lons[order].tolist(), t_min=T_MIN, t_max=T_MAX)
    assert [(c.token, c.count) for c in shuffled] == [(c.token, c.count) for c in first]
    for a, b in zip(first, shuffled, strict=True):
        assert (a.lat, a.lon) == pytest.approx((b.lat, b.lon), abs=1e-9)
    leaves = leaf_cell_ids(lats, lons)
    again, _ = partition_cells(lats, lons, t_min=T_MIN, t_max=T_MAX, leaf_ids=leaves)
    assert again == first


def test_assign_cells_by_containment(points: tuple[np.ndarray, np.ndarray], leaves: list[s2sphere.CellId]) -> None:
    lats, lons = points
    cells, _ = partition_cells(lats, lons, t_min=T_MIN, t_max=T_MAX)
    classes = assign_cells(cells, torch.from_numpy(lats), lons)
    assert classes.dtype == torch.long and classes.shape == (lats.size,)
    for leaf, assigned in zip(leaves, classes.tolist(), strict=True):
        hits = [cell.class_index for cell in cells if cell.cell_id.contains(leaf)]
        assert assigned == (hits[0] if hits else -1)
    assert (classes == -1).sum().item() > 0
    assert assign_cells([], lats, lons).tolist() == [-1] * lats.size
    assert assign_cells(cells, [], []).shape == (0,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"t_min": 0, "t_max": 5}, r"t_min must be >= 1, got 0"),
        ({"t_min": 10, "t_max": 5}, r"t_max must be >= t_min = 10, got 5"),
        ({"t_min": 2.5, "t_max": 5}, r"t_min must be an integer, got 2.5"),
        ({"t_min": 1, "t_max": 5, "min_level": -1}, r"min_level must be >= 0, got -1"),
        ({"t_min": 1, "t_max": 5, "max_level": 31}, r"max_level must be <= 30, got 31"),
        ({"t_min": 1, "t_max": 5, "min_level": 8, "max_level": 6}, r"max_level must be >= min_level = 8, got 6"),
    ],
)
def test_bad_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        partition_cells([0.0], [0.0], **kwargs)


@pytest.mark.parametrize(
    ("lats", "lons", "message"),
    [
        ([0.0, 91.0], [0.0, 0.0], r"latitude 91\.0 at index 1 is outside \[-90, 90\]"),
        ([0.0, math.nan], [0.0, 0.0], r"latitude nan at index 1"),
        ([0.0, 0.0], [-180.5, 0.0], r"longitude -180\.5 at index 0 is outside \[-180, 180\]"),
        ([0.0, 0.0], [0.0, math.inf], r"longitude inf at index 1"),
        ([0.0, 0.0], [0.0], r"2 latitudes but 1 longitudes"),
        ([], [], r"no points"),
    ],
)
def test_bad_coordinates(lats: list[float], lons: list[float], message: str) -> None:
    with pytest.raises(DataError, match=message):
        partition_cells(lats, lons, t_min=1, t_max=5)


def test_no_cell_kept_is_an_error() -> None:
    with pytest.raises(DataError, match=r"no cell holds t_min = 3 of the 2 points"):
        partition_cells([0.0, 50.0], [0.0, 50.0], t_min=3, t_max=5)


def test_csv_round_trip(tmp_path: Path, points: tuple[np.ndarray, np.ndarray]) -> None:
    cells, _ = partition_cells(*points, t_min=T_MIN, t_max=T_MAX)
    path = write_cells_csv(cells, tmp_path / "out" / "cells.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(CELLS_HEADER) == "class,token,count,lat,lon"
    assert len(lines) == len(cells) + 1
    assert [p.name for p in path.parent.iterdir()] == ["cells.csv"], "no temporary file is left behind"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask, "the mode of any new file, not mkstemp's 0600"
    read = read_cells_csv(path)
    assert [(c.class_index, c.token, c.count) for c in read] == [(c.class_index, c.token, c.count) for c in cells]
    for a, b in zip(read, cells, strict=True):
        assert (a.lat, a.lon) == pytest.approx((b.lat, b.lon), abs=1e-6)
    lats, lons = points
    assert torch.equal(assign_cells(read, lats, lons), assign_cells(cells, lats, lons))


def test_write_checks_the_class_order(tmp_path: Path) -> None:
    cells = [GeoCell(0, "47", 5, 45.0, 0.0), GeoCell(2, "89", 5, 0.0, 0.0)]
    with pytest.raises(DataError, match="cell 89 at position 1 has class 2"):
        write_cells_csv(cells, tmp_path / "cells.csv")
    assert not list(tmp_path.iterdir())


GOOD = ["class,token,count,lat,lon", "0,47,10,48.5,2.0", "1,4c,12,45.0,12.0", "2,89,7,35.0,-100.0"]


def write_lines(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "cells.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_accepts_a_hand_written_file(tmp_path: Path) -> None:
    cells = read_cells_csv(write_lines(tmp_path, [*GOOD[:2], "", "1,4C0,12,45.0,12.0", GOOD[3]]))
    assert [c.token for c in cells] == ["47", "4c", "89"]  # tokens in canonical form
    assert cells[1] == GeoCell(class_index=1, token="4c", count=12, lat=45.0, lon=12.0)
    assert [c.level for c in cells] == [2, 1, 2]


@pytest.mark.parametrize(
    ("line", "text", "message"),
    [
        (1, "class,token,count,latitude,lon", r":1: expected the header 'class,token,count,lat,lon'"),
        (3, "1,zz,12,45.0,12.0", r":3: token 'zz' is not a valid S2 cell token"),
        (3, "1,0x4c,12,45.0,12.0", r":3: token '0x4c' is not a valid S2 cell token"),
        (3, "1,0,12,45.0,12.0", r":3: token '0' is not a valid S2 cell token"),
        (3, "1,4c,0,45.0,12.0", r":3: count is '0'; expected a positive integer"),
        (3, "1,4c,x,45.0,12.0", r":3: count is 'x'"),
        (3, "1,4c,12,95.0,12.0", r":3: lat is '95.0'; expected a number in \[-90, 90\]"),
        (3, "1,4c,12,45.0,nan", r":3: lon is 'nan'; expected a number in \[-180, 180\]"),
        (3, "2,4c,12,45.0,12.0", r":3: class is '2'; expected 1"),
        (3, "1,4c,12,45.0", r":3: expected 5 values"),
        (4, "2,474,7,35.0,-100.0", r":4: cell 474 \(level 3\) lies inside cell 47 \(level 2\) on line 2"),
        (4, "2,47,7,35.0,-100.0", r":4: cell 47 \(level 2\) repeats cell 47 \(level 2\) on line 2"),
        (2, "0,4c4,10,48.5,2.0", r":2: cell 4c4 \(level 3\) lies inside cell 4c \(level 1\) on line 3"),
    ],
)
def test_read_errors_name_file_and_line(tmp_path: Path, line: int, text: str, message: str) -> None:
    lines = list(GOOD)
    lines[line - 1] = text
    path = write_lines(tmp_path, lines)
    with pytest.raises(DataError, match=rf"^{path}{message}"):
        read_cells_csv(path)


def test_a_cells_file_that_is_not_utf_8_names_the_line_and_byte(tmp_path: Path) -> None:
    path = write_lines(tmp_path, GOOD)
    path.write_bytes(path.read_bytes().replace(b"45.0", b"45\xb00", 1))  # a Latin-1 degree sign
    with pytest.raises(
        DataError, match=rf"^{path}:3: not UTF-8 text \(byte 0xb0 at column 11\); save the file as UTF-8$"
    ):
        read_cells_csv(path)


def test_read_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cells file not found"):
        read_cells_csv(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="no cells after the header"):
        read_cells_csv(write_lines(tmp_path, GOOD[:1]))


def test_geocell_is_frozen() -> None:
    cell = GeoCell(0, "47", 5, 45.0, 0.0)
    with pytest.raises(AttributeError):
        cell.count = 3  # type: ignore[misc]
    assert replace(cell, count=3).count == 3


def test_parent_indices_of_nested_partitions(points: tuple[np.ndarray, np.ndarray]) -> None:
    coarse, _ = partition_cells(*points, t_min=T_MIN, t_max=1000)
    fine, _ = partition_cells(*points, t_min=T_MIN, t_max=100)
    assert len(fine) > len(coarse)
    parents = parent_indices(fine, coarse)
    assert parents.dtype == torch.long and parents.shape == (len(fine),)
    for cell, parent in zip(fine, parents.tolist(), strict=True):
        hits = [c.class_index for c in coarse if c.cell_id.contains(cell.cell_id)]
        assert hits == [parent], "same data, same t_min: every fine cell lies in exactly one kept coarse cell"
    assert parent_indices(fine, fine).tolist() == list(range(len(fine)))
    # a coarse list missing a cell, or holding cells finer than the fine ones: -1
    assert (parent_indices(fine, coarse[1:]) == -1).sum().item() == (parents == 0).sum().item()
    assert parent_indices(coarse, fine).tolist().count(-1) >= 1
    assert parent_indices([], coarse).shape == (0,) and parent_indices(fine, []).tolist() == [-1] * len(fine)


def test_columns_round_trip(points: tuple[np.ndarray, np.ndarray]) -> None:
    cells, _ = partition_cells(*points, t_min=T_MIN, t_max=T_MAX)
    columns = cells_to_columns(cells)
    assert set(columns) == {"tokens", "count", "lat", "lon"}
    assert all(type(v) in (str, int, float) for values in columns.values() for v in values)
    assert cells_from_columns({"name": "cells_20_300", **columns}) == cells
    with pytest.raises(DataError, match=r"lack \['lon'\]"):
        cells_from_columns({k: v for k, v in columns.items() if k != "lon"})
    with pytest.raises(DataError, match="differ in length"):
        cells_from_columns({**columns, "lat": columns["lat"][:-1]})
    with pytest.raises(DataError, match=r"tokens\[1\] = 'zz' is not a valid S2 cell token"):
        cells_from_columns({**columns, "tokens": [columns["tokens"][0], "zz", *columns["tokens"][2:]]})


def test_load_or_build_cells(tmp_path: Path, points: tuple[np.ndarray, np.ndarray]) -> None:
    path = tmp_path / "cells" / "cells_20_300.csv"
    built = load_or_build_cells(path, *points, t_min=T_MIN, t_max=T_MAX)
    assert path.is_file()
    assert [(c.token, c.count) for c in built] == [
        (c.token, c.count) for c in partition_cells(*points, t_min=20, t_max=300)[0]
    ]
    # an existing file is read as it is, whatever the points
    assert load_or_build_cells(path, [0.0], [0.0], t_min=1, t_max=5) == read_cells_csv(path)
