"""Adaptive S2 cell partitions of the globe: geolocation as classification.

PlaNet (Weyand, Kostrikov and Philbin, ECCV 2016) and GeoEstimation (Müller-Budack, Pustu-Iren and Ewerth,
ECCV 2018) turn photo geolocation into classification over S2 cells (Google's hierarchical quadtree on the six
faces of a cube projected onto the sphere) sized to the training data: start from the cells at ``min_level``
that hold photos, split a cell into its four children while it holds more than ``t_max`` photos, then drop the
cells with fewer than ``t_min``. Dense places (cities) end up with small cells, empty ocean with none.
GeoEstimation uses ``min_level=2``, ``max_level=30`` and ``t_min=50`` with ``t_max`` 5000, 2000 and 1000 for
its coarse, middle and fine partitions on MP-16; it drops a cell with ``count <= t_min``, here the rule is
``count < t_min``.

Classes are numbered 0, 1, ... in S2 cell-id order (the Hilbert-curve order of the cells), so the same data
always gives the same classes. A cell's ``lat``/``lon`` is the mean position of its training photos, the point
a prediction of that class stands for.

Cell ids are 64-bit integers (``uint64`` arrays here): the face in the top 3 bits, then 2 bits per level of
the Hilbert-curve position, then a 1 bit that marks the level, then zeros. The parent at level ``L`` of any
cell below it therefore is ``(id & -lsb) | lsb`` with ``lsb = 1 << 2 * (30 - L)``. Each photo's leaf cell (level
30) is computed once, by numpy with s2sphere's projection and tables; the levels above come from that bit
arithmetic, so a million photos take about a second.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import s2sphere
import torch

from mobivision.data.text_files import open_text
from mobivision.errors import ConfigError, DataError

log = logging.getLogger("mobivision")

MAX_LEVEL = 30
"""The level of S2 leaf cells (about 1 cm across)."""

CELLS_HEADER = ("class", "token", "count", "lat", "lon")
"""The header of a cells CSV (``write_cells_csv``)."""

_TOKEN = re.compile(r"[0-9a-fA-F]{1,16}")

# S2's constants, from s2sphere so the leaf ids match it bit for bit.
_MAX_SIZE = 1 << MAX_LEVEL
_SWAP_MASK, _INVERT_MASK = s2sphere.sphere.SWAP_MASK, s2sphere.sphere.INVERT_MASK
_LOOKUP_POS = np.asarray(s2sphere.sphere.LOOKUP_POS, dtype=np.int64)
# (u, v) of a point (x, y, z) on each cube face, as S2's ValidFaceXYZtoUV.
_FACE_UV = (
    (lambda x, y, z: y / x, lambda x, y, z: z / x),
    (lambda x, y, z: -x / y, lambda x, y, z: z / y),
    (lambda x, y, z: -x / z, lambda x, y, z: -y / z),
    (lambda x, y, z: z / x, lambda x, y, z: y / x),
    (lambda x, y, z: z / y, lambda x, y, z: -x / y),
    (lambda x, y, z: -y / z, lambda x, y, z: -x / z),
)


@dataclass(frozen=True)
class GeoCell:
    """One class of a partition.

    Attributes:
        class_index: The class (0-based, in S2 cell-id order).
        token: The S2 cell token (hex cell id without trailing zeros).
        count: Training photos in the cell.
        lat: Mean latitude of those photos in degrees: the mean of their 3-D unit vectors, converted back, so a
            cell across the antimeridian (lon 180 / -180) gets a point inside it, not one near lon 0.
        lon: Mean longitude in degrees, in [-180, 180].
    """

    class_index: int
    token: str
    count: int
    lat: float
    lon: float

    @property
    def cell_id(self) -> s2sphere.CellId:
        return s2sphere.CellId.from_token(self.token)

    @property
    def level(self) -> int:
        return self.cell_id.level()


@dataclass
class PartitionStats:
    """What a partition kept and dropped.

    Attributes:
        num_points: Photos given.
        kept_cells: Cells with at least ``t_min`` photos (the classes).
        dropped_cells: Final cells with fewer than ``t_min`` photos.
        dropped_points: Photos in the dropped cells (they belong to no class).
        min_count, median_count, max_count: Photos per kept cell.
        levels: S2 level -> number of kept cells at that level, levels ascending.
    """

    num_points: int
    kept_cells: int
    dropped_cells: int
    dropped_points: int
    min_count: int
    median_count: float
    max_count: int
    levels: dict[int, int] = field(default_factory=dict)


def leaf_cell_ids(lats: Any, lons: Any) -> np.ndarray:
    """The S2 leaf cell (level 30) of each point, as a ``uint64`` array.

    This is ``s2sphere.CellId.from_lat_lng(LatLng.from_degrees(lat, lon)).id()`` done by numpy for all points at
    once (s2sphere takes about 10 µs a point): the same steps in the same floating-point order, so the ids are
    the same as long as numpy's sine and cosine round like Python's ``math`` module (the tests check); where they
    did not, only a point within rounding error of a cell edge could change cell. Pass the result to
    ``partition_cells(..., leaf_ids=...)`` to build several partitions of the same photos.

    Raises:
        DataError: The lists differ in length, or a coordinate is not finite or out of range.
    """
    lat, lon = _coordinates(lats, lons)
    phi, theta = np.deg2rad(lat), np.deg2rad(lon)
    cos_phi = np.cos(phi)
    x, y, z = np.cos(theta) * cos_phi, np.sin(theta) * cos_phi, np.sin(phi)
    # The face is the axis of the largest |component| (ties as S2's LargestAbsComponent breaks them), +3 if < 0.
    ax, ay, az = np.abs(x), np.abs(y), np.abs(z)
    face = np.where(ax > ay, np.where(ax > az, 0, 2), np.where(ay > az, 1, 2))
    face = face + 3 * (np.choose(face, (x, y, z)) < 0)
    u, v = np.empty_like(x), np.empty_like(x)
    for f, (u_of, v_of) in enumerate(_FACE_UV):
        on = face == f
        u[on], v[on] = u_of(x[on], y[on], z[on]), v_of(x[on], y[on], z[on])
    i, j = _st_to_ij(_uv_to_st(u)), _st_to_ij(_uv_to_st(v))
    # Hilbert-curve position: s2sphere's table maps 4 bits of i and j plus the orientation to 8 position bits.
    ids = face.astype(np.uint64) << np.uint64(2 * MAX_LEVEL)
    bits = face & _SWAP_MASK
    for k in range(7, -1, -1):
        bits = bits + (((i >> (4 * k)) & 15) << 6) + (((j >> (4 * k)) & 15) << 2)
        bits = _LOOKUP_POS[bits]
        ids |= (bits >> 2).astype(np.uint64) << np.uint64(8 * k)
        bits &= _SWAP_MASK | _INVERT_MASK
    return ids * np.uint64(2) + np.uint64(1)


def _uv_to_st(u: np.ndarray) -> np.ndarray:
    """S2's quadratic projection from cube-face coordinates [-1, 1] to cell coordinates [0, 1]."""
    with np.errstate(invalid="ignore"):  # the branch not taken may take the root of a negative number
        return np.where(u >= 0, 0.5 * np.sqrt(1 + 3 * u), 1 - 0.5 * np.sqrt(1 - 3 * u))


def _st_to_ij(s: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(_MAX_SIZE * s), 0, _MAX_SIZE - 1).astype(np.int64)


def parent_ids(ids: np.ndarray, level: int) -> np.ndarray:
    """The level-``level`` ancestors of cell ids at that level or below (``uint64`` in, ``uint64`` out)."""
    lsb = np.uint64(1 << (2 * (MAX_LEVEL - level)))
    # -lsb in two's complement is ~(lsb - 1); numpy scalars keep the arithmetic in uint64.
    return (np.asarray(ids, dtype=np.uint64) & ~(lsb - np.uint64(1))) | lsb


def partition_cells(
    lats: Any,
    lons: Any,
    *,
    t_min: int,
    t_max: int,
    min_level: int = 2,
    max_level: int = MAX_LEVEL,
    leaf_ids: np.ndarray | None = None,
) -> tuple[list[GeoCell], PartitionStats]:
    """Adaptive S2 partition of photo locations (see the module docstring).

    Args:
        lats, lons: Photo coordinates in degrees (1-D, same length).
        t_min: Fewest photos a cell needs to become a class (>= 1).
        t_max: A cell with more photos is split into its four children (>= ``t_min``), unless it is at
            ``max_level``.
        min_level: The level the splitting starts from (0 = the six cube faces).
        max_level: The deepest level a cell is split to (<= 30).
        leaf_ids: ``leaf_cell_ids(lats, lons)``, if already computed.

    Returns:
        The kept cells (classes 0..n-1 in S2 cell-id order) and statistics.

    Raises:
        ConfigError: A threshold or level is out of range.
        DataError: A coordinate is bad, there are no points, or no cell keeps ``t_min`` photos.
    """
    _check_int("t_min", t_min, 1)
    _check_int("t_max", t_max, t_min, f"t_min = {t_min}")
    _check_int("min_level", min_level, 0, high=MAX_LEVEL)
    _check_int("max_level", max_level, min_level, f"min_level = {min_level}", high=MAX_LEVEL)
    lat, lon = _coordinates(lats, lons)
    if lat.size == 0:
        raise DataError("no points to partition")
    if leaf_ids is None:
        leaf_ids = leaf_cell_ids(lat, lon)
    leaf_ids = np.asarray(leaf_ids, dtype=np.uint64)
    if leaf_ids.shape != lat.shape:
        raise DataError(f"leaf_ids has shape {leaf_ids.shape}, expected one id per point {lat.shape}")

    # Split on the distinct leaf cells weighted by how many photos share each (Flickr photos often do).
    leaves, point_leaf, weight = np.unique(leaf_ids, return_inverse=True, return_counts=True)
    final = np.empty_like(leaves)  # each leaf's cell in the partition
    active = np.arange(leaves.size)
    level = min_level
    while active.size:
        parents = parent_ids(leaves[active], level)
        inverse = np.unique(parents, return_inverse=True)[1].reshape(-1)
        counts = np.bincount(inverse, weights=weight[active])
        split = (counts > t_max)[inverse] if level < max_level else np.zeros(active.size, dtype=bool)
        final[active[~split]] = parents[~split]
        active = active[split]
        level += 1

    cell_of_point = final[point_leaf.reshape(-1)]
    ids, point_class = np.unique(cell_of_point, return_inverse=True)
    point_class = point_class.reshape(-1)
    counts = np.bincount(point_class, minlength=ids.size)
    kept = counts >= t_min
    if not kept.any():
        raise DataError(
            f"no cell holds t_min = {t_min} of the {lat.size} points (the fullest holds {counts.max()}); "
            "lower t_min or give more points"
        )
    means = _mean_positions(lat, lon, point_class, ids.size)
    cells: list[GeoCell] = []
    for index, (cell_id, count, (mean_lat, mean_lon)) in enumerate(
        zip(ids[kept].tolist(), counts[kept].tolist(), means[kept].tolist(), strict=True)
    ):
        token = s2sphere.CellId(cell_id).to_token()
        cells.append(GeoCell(class_index=index, token=token, count=count, lat=mean_lat, lon=mean_lon))
    kept_counts = counts[kept]
    levels: dict[int, int] = {}
    for cell in cells:
        levels[cell.level] = levels.get(cell.level, 0) + 1
    stats = PartitionStats(
        num_points=int(lat.size),
        kept_cells=len(cells),
        dropped_cells=int((~kept).sum()),
        dropped_points=int(counts[~kept].sum()),
        min_count=int(kept_counts.min()),
        median_count=float(np.median(kept_counts)),
        max_count=int(kept_counts.max()),
        levels=dict(sorted(levels.items())),
    )
    return cells, stats


def assign_cells(cells: Sequence[GeoCell], lats: Any, lons: Any) -> torch.Tensor:
    """The class of the cell holding each point, or -1 where no kept cell does, as a ``LongTensor``.

    Raises:
        DataError: A coordinate is bad.
    """
    lat, lon = _coordinates(lats, lons)
    if lat.size == 0 or not cells:
        return torch.full(lat.shape, -1, dtype=torch.long)
    leaves = leaf_cell_ids(lat, lon)
    return torch.from_numpy(_containing_class(cells, leaves, np.full(leaves.shape, MAX_LEVEL)))


def parent_indices(fine: Sequence[GeoCell], coarse: Sequence[GeoCell]) -> torch.Tensor:
    """For each cell of ``fine``, the class of the ``coarse`` cell containing it (or equal to it), else -1.

    Partitions of the same photos with the same ``t_min`` and levels nest: a cell is split whenever the coarser
    partition splits it, so every fine cell lies in a kept coarse cell. -1 happens for partitions of other data.
    """
    if not fine or not coarse:
        return torch.full((len(fine),), -1, dtype=torch.long)
    ids = np.array([cell.cell_id.id() for cell in fine], dtype=np.uint64)
    levels = np.array([cell.level for cell in fine], dtype=np.int64)
    return torch.from_numpy(_containing_class(coarse, ids, levels))


def _containing_class(cells: Sequence[GeoCell], ids: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Class of the cell among ``cells`` that contains each cell id (at ``levels``), -1 for none."""
    classes = np.full(ids.shape, -1, dtype=np.int64)
    by_level: dict[int, list[tuple[int, int]]] = {}
    for cell in cells:
        cell_id = cell.cell_id
        by_level.setdefault(cell_id.level(), []).append((cell_id.id(), cell.class_index))
    # The cells do not overlap, so an id matches at most one level; look each level up by binary search.
    for level, pairs in by_level.items():
        pairs.sort()
        cell_ids = np.array([cell_id for cell_id, _ in pairs], dtype=np.uint64)
        indices = np.array([index for _, index in pairs], dtype=np.int64)
        parents = parent_ids(ids, level)
        position = np.minimum(np.searchsorted(cell_ids, parents), cell_ids.size - 1)
        found = (cell_ids[position] == parents) & (levels >= level)
        classes[found] = indices[position[found]]
    return classes


def cells_to_columns(cells: Sequence[GeoCell]) -> dict[str, list[Any]]:
    """A partition as plain lists ``{"tokens", "count", "lat", "lon"}`` (for hyper-parameters, checkpoints)."""
    return {
        "tokens": [cell.token for cell in cells],
        "count": [cell.count for cell in cells],
        "lat": [cell.lat for cell in cells],
        "lon": [cell.lon for cell in cells],
    }


def cells_from_columns(columns: Mapping[str, Any]) -> list[GeoCell]:
    """The inverse of ``cells_to_columns`` (other keys, such as ``name``, are ignored); classes in list order.

    Raises:
        DataError: A key is missing, the lists differ in length, or a token is not a valid S2 cell.
    """
    missing = [key for key in ("tokens", "count", "lat", "lon") if key not in columns]
    if missing:
        raise DataError(f"partition columns lack {missing}; expected tokens, count, lat and lon")
    tokens, counts, lats, lons = (list(columns[key]) for key in ("tokens", "count", "lat", "lon"))
    if not len(tokens) == len(counts) == len(lats) == len(lons):
        raise DataError(
            f"partition columns differ in length: {len(tokens)} tokens, {len(counts)} counts, {len(lats)} lat, "
            f"{len(lons)} lon"
        )
    cells = []
    for index, (token, count, lat, lon) in enumerate(zip(tokens, counts, lats, lons, strict=True)):
        token = str(token)
        if not _TOKEN.fullmatch(token) or not s2sphere.CellId.from_token(token).is_valid():
            raise DataError(f"partition column tokens[{index}] = {token!r} is not a valid S2 cell token")
        cells.append(GeoCell(class_index=index, token=token, count=int(count), lat=float(lat), lon=float(lon)))
    return cells


def load_or_build_cells(
    path: str | Path,
    lats: Any,
    lons: Any,
    *,
    t_min: int,
    t_max: int,
    min_level: int = 2,
    max_level: int = MAX_LEVEL,
) -> list[GeoCell]:
    """The partition in ``path`` if it exists, else one built from the points and written there.

    An existing file is used as it is (it may come from ``tools/geo_cells.py`` on the full training list).
    """
    path = Path(path)
    if path.is_file():
        cells = read_cells_csv(path)
        log.info("%d geo cells from %s", len(cells), path)
        return cells
    cells, stats = partition_cells(lats, lons, t_min=t_min, t_max=t_max, min_level=min_level, max_level=max_level)
    write_cells_csv(cells, path)
    log.info(
        "built %d geo cells (t_min=%d, t_max=%d; %d of %d photos in dropped cells), wrote %s",
        stats.kept_cells,
        t_min,
        t_max,
        stats.dropped_points,
        stats.num_points,
        path,
    )
    return cells


def write_cells_csv(cells: Sequence[GeoCell], path: str | Path) -> Path:
    """Write a partition as ``class,token,count,lat,lon`` rows (atomically: a temporary file, then a rename).

    Raises:
        DataError: The class indices are not 0, 1, ... in order.
    """
    for position, cell in enumerate(cells):
        if cell.class_index != position:
            raise DataError(f"cell {cell.token} at position {position} has class {cell.class_index}, not {position}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name beside the target (same file system, so os.replace is atomic); open() with "x" gives it the
    # mode any new file gets, where mkstemp would leave 0600.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "x", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(CELLS_HEADER)
            for cell in cells:
                writer.writerow([cell.class_index, cell.token, cell.count, f"{cell.lat:.6f}", f"{cell.lon:.6f}"])
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def read_cells_csv(path: str | Path) -> list[GeoCell]:
    """A partition written by ``write_cells_csv``, checked row by row.

    Raises:
        DataError: The file is missing or empty, the header is not ``class,token,count,lat,lon``, a class is out
            of order, a token is not a valid S2 cell, a count is not a positive integer, a coordinate is out of
            range, or one cell lies inside another; each naming the file and line.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"cells file not found: {file}")
    cells: list[GeoCell] = []
    lines: list[int] = []
    with open_text(file, newline="") as f:
        reader = csv.reader(f)
        header = [cell.strip() for cell in next(reader, [])]
        if tuple(header) != CELLS_HEADER:
            raise DataError(f"{file}:1: expected the header {','.join(CELLS_HEADER)!r}, got {','.join(header)!r}")
        while True:
            line = reader.line_num + 1
            row = next(reader, None)
            if row is None:
                break
            if not any(value.strip() for value in row):
                continue
            cells.append(_cell_row(file, line, [value.strip() for value in row], len(cells)))
            lines.append(line)
    if not cells:
        raise DataError(f"{file}: no cells after the header")
    overlap = _first_overlap([cell.cell_id.id() for cell in cells])
    if overlap is not None:
        inner, outer = overlap
        what = "repeats" if cells[inner].token == cells[outer].token else "lies inside"
        raise DataError(
            f"{file}:{lines[inner]}: cell {cells[inner].token} (level {cells[inner].level}) {what} cell "
            f"{cells[outer].token} (level {cells[outer].level}) on line {lines[outer]}; the cells of a partition "
            "must not overlap"
        )
    return cells


def _cell_row(file: Path, line: int, row: list[str], expected_class: int) -> GeoCell:
    where = f"{file}:{line}"
    if len(row) != len(CELLS_HEADER):
        raise DataError(f"{where}: expected {len(CELLS_HEADER)} values ({','.join(CELLS_HEADER)}), got {len(row)}")
    class_text, token, count_text, lat_text, lon_text = row
    if class_text != str(expected_class):
        raise DataError(f"{where}: class is {class_text!r}; expected {expected_class} (classes are 0, 1, ... in order)")
    if not _TOKEN.fullmatch(token) or not s2sphere.CellId.from_token(token).is_valid():
        raise DataError(f"{where}: token {token!r} is not a valid S2 cell token (1-16 hex digits of a cell id)")
    if not count_text.isdigit() or int(count_text) < 1:
        raise DataError(f"{where}: count is {count_text!r}; expected a positive integer")
    lat = _degrees(where, "lat", lat_text, 90.0)
    lon = _degrees(where, "lon", lon_text, 180.0)
    token = s2sphere.CellId.from_token(token).to_token()  # canonical: lower case, no trailing zeros
    return GeoCell(class_index=expected_class, token=token, count=int(count_text), lat=lat, lon=lon)


def _degrees(where: str, column: str, text: str, limit: float) -> float:
    """``text`` as a finite number in ``[-limit, limit]``, else a ``DataError`` at ``where``."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not -limit <= value <= limit:  # also false for NaN
        raise DataError(f"{where}: {column} is {text!r}; expected a number in [{-limit:g}, {limit:g}] degrees")
    return value


def _first_overlap(ids: list[int]) -> tuple[int, int] | None:
    """``(inner, outer)`` positions of a cell inside (or equal to) another, or ``None``.

    S2 cells are nested or disjoint, and cell ``c`` spans the leaf ids ``c - (lsb - 1) .. c + (lsb - 1)``, so in
    order of range start (larger cells first on ties) a cell overlaps an earlier one exactly when it starts
    before the furthest range end seen so far.
    """
    spans = [(cell_id - ((cell_id & -cell_id) - 1), cell_id + ((cell_id & -cell_id) - 1)) for cell_id in ids]
    order = sorted(range(len(ids)), key=lambda i: (spans[i][0], -spans[i][1], i))
    furthest = None
    for i in order:
        if furthest is not None and spans[i][0] <= spans[furthest][1]:
            return i, furthest
        if furthest is None or spans[i][1] > spans[furthest][1]:
            furthest = i
    return None


def _mean_positions(lat: np.ndarray, lon: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    """``(groups, 2)`` mean latitude / longitude per group, averaged as 3-D unit vectors."""
    phi, lam = np.deg2rad(lat), np.deg2rad(lon)
    cos_phi = np.cos(phi)
    x = np.bincount(group, weights=cos_phi * np.cos(lam), minlength=groups)
    y = np.bincount(group, weights=cos_phi * np.sin(lam), minlength=groups)
    z = np.bincount(group, weights=np.sin(phi), minlength=groups)
    # An S2 cell lies within one cube face, so its points' vectors never cancel out: (x, y, z) is never 0.
    return np.rad2deg(np.stack([np.arctan2(z, np.hypot(x, y)), np.arctan2(y, x)], axis=1))


def _coordinates(lats: Any, lons: Any) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes and longitudes as 1-D float64 arrays, checked to be finite and in range."""
    arrays = []
    for name, values, limit in (("latitude", lats, 90.0), ("longitude", lons, 180.0)):
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        array = np.asarray(values, dtype=np.float64)
        if array.ndim > 1:
            raise DataError(f"{name}s must be a 1-D list, got shape {array.shape}")
        array = array.reshape(-1)
        bad = np.flatnonzero(~(np.abs(array) <= limit))  # also catches NaN
        if bad.size:
            value = float(array[bad[0]])
            raise DataError(
                f"{name} {value!r} at index {bad[0]} is outside [{-limit:g}, {limit:g}] degrees "
                f"({bad.size} such value{'s' if bad.size > 1 else ''})"
            )
        arrays.append(array)
    lat, lon = arrays
    if lat.size != lon.size:
        raise DataError(f"got {lat.size} latitudes but {lon.size} longitudes")
    return lat, lon


def _check_int(name: str, value: Any, low: int, low_name: str | None = None, *, high: int | None = None) -> None:
    """Raise ``ConfigError`` unless ``value`` is an integer in ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ConfigError(f"{name} must be >= {low_name or low}, got {value}")
    if high is not None and value > high:
        raise ConfigError(f"{name} must be <= {high}, got {value}")
