"""Geolocation evaluation: share of photos located within 1 / 25 / 200 / 750 / 2500 km, median error, reports.

The MobileNets paper (Howard et al., 2017, Sec. 4.3, Table 11) compares PlaNet (Weyand et al., 2016) on an
Inception backbone with PlaNet on MobileNet by the share of Im2GPS test photos whose predicted position lies
within street (1 km), city (25 km), region (200 km), country (750 km) and continent (2500 km) distance of the
truth. Errors here are great-circle distances on a sphere of radius 6371 km (``mobivision.geo.distance``); a
photo counts as within ``km`` when its error is ``<= km``. The median is the statistical one (the mean of the
two middle errors for an even count, as ``numpy.median``).

``write_geo_report`` writes the Table-11 style Markdown table (optionally beside the paper's two rows), the
per-image predictions as CSV and a world map of truth and predictions as PNG.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mobivision.errors import ConfigError, DataError
from mobivision.evaluation.classification import write_csv
from mobivision.evaluation.evaluator import Evaluator, image_keys
from mobivision.geo.distance import great_circle_km

PAPER_THRESHOLDS_KM = (1, 25, 200, 750, 2500)
"""The distance thresholds of PlaNet and of the MobileNets paper's Table 11, in km."""

SCALE_NAMES: dict[float, str] = {1: "street", 25: "city", 200: "region", 750: "country", 2500: "continent"}
"""The name of each threshold of ``PAPER_THRESHOLDS_KM`` in the papers' tables."""

PAPER_TABLE11 = {
    "PlaNet (Inception)": {1: 11.0, 25: 31.7, 200: 51.1, 750: 64.0, 2500: 77.6},
    "PlaNet MobileNet": {1: 11.4, 25: 31.7, 200: 45.2, 750: 60.3, 2500: 79.3},
}
"""MobileNets paper, Table 11: percent of the Im2GPS test photos located within each threshold (km)."""

PREDICTION_COLUMNS = ("image", "true_lat", "true_lon", "pred_lat", "pred_lon", "error_km")
MAP_SIZE_INCHES = (12.0, 6.5)
MAP_DPI = 100  # the map PNG is 1200 x 650 pixels

_TRUTH_COLOUR = "tab:blue"
_PREDICTION_COLOUR = "tab:red"


@dataclass(frozen=True)
class GeoMetrics:
    """Geolocation errors and the shares located within each threshold.

    ``errors_km``: float64 ``[N]`` (CPU) great-circle errors; ``within``: ``{km: share in [0, 1]}`` in the
    order of the thresholds; ``median_km`` / ``mean_km``: of the errors; ``count``: N.
    """

    errors_km: torch.Tensor
    within: dict[float, float]
    median_km: float
    mean_km: float
    count: int

    @property
    def thresholds_km(self) -> tuple[float, ...]:
        return tuple(self.within)

    def summary(self, prefix: str = "") -> dict[str, float]:
        """``{prefix}acc_<km>km`` (share in [0, 1]) per threshold, then ``{prefix}median_km``."""
        metrics = {f"{prefix}acc_{km}km": share for km, share in self.within.items()}
        metrics[f"{prefix}median_km"] = self.median_km
        return metrics


def _check_thresholds(thresholds_km: Sequence[float]) -> tuple[float, ...]:
    thresholds = tuple(thresholds_km)
    for km in thresholds:
        if not (isinstance(km, numbers.Real) and math.isfinite(km) and km > 0):
            raise ConfigError(f"distance thresholds must be positive finite numbers of km, got {km!r}")
    if len(set(thresholds)) != len(thresholds):
        raise ConfigError(f"distance thresholds must be distinct, got {thresholds}")
    return thresholds


def _median(values: torch.Tensor) -> float:
    """The statistical median: the middle value, or the mean of the two middle values for an even count."""
    ordered = values.sort().values
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return float((ordered[middle - 1] + ordered[middle]) / 2)


def geo_metrics_from_errors(
    errors_km: torch.Tensor | Sequence[float], thresholds_km: Sequence[float] = PAPER_THRESHOLDS_KM
) -> GeoMetrics:
    """``GeoMetrics`` from distances already measured (``[N]``, km); ``geo_metrics`` measures them first."""
    thresholds = _check_thresholds(thresholds_km)
    errors = torch.as_tensor(errors_km).detach().to(device="cpu", dtype=torch.float64)
    if errors.ndim != 1:
        raise DataError(f"errors must have shape [N], got {tuple(errors.shape)}")
    if len(errors) == 0:
        raise DataError("no predictions to evaluate: geolocation metrics need at least one image")
    if not bool(torch.isfinite(errors).all()) or bool((errors < 0).any()):
        raise DataError("distance errors must be finite and non-negative")
    return GeoMetrics(
        errors_km=errors,
        within={km: float((errors <= km).double().mean()) for km in thresholds},
        median_km=_median(errors),
        mean_km=float(errors.mean()),
        count=len(errors),
    )


def _coordinates(pred_lat: Any, pred_lon: Any, true_lat: Any, true_lon: Any) -> list[torch.Tensor]:
    """The four coordinate arrays as float64 CPU ``[N]`` tensors, checked."""
    names = ("pred_lat", "pred_lon", "true_lat", "true_lon")
    values = [
        torch.as_tensor(value).detach().to(device="cpu", dtype=torch.float64)
        for value in (pred_lat, pred_lon, true_lat, true_lon)
    ]
    for name, value in zip(names, values, strict=True):
        if value.ndim != 1:
            raise DataError(f"{name} must have shape [N], got {tuple(value.shape)}")
    if len({len(value) for value in values}) != 1:
        lengths = ", ".join(f"{name} {len(value)}" for name, value in zip(names, values, strict=True))
        raise DataError(f"coordinate arrays differ in length: {lengths}")
    if len(values[0]) == 0:
        raise DataError("no predictions to evaluate: geolocation metrics need at least one image")
    for name, value in zip(names, values, strict=True):
        if not bool(torch.isfinite(value).all()):
            raise DataError(f"{name} holds NaN or infinite values")
    for name, value in zip(names[::2], values[::2], strict=True):
        if bool((value.abs() > 90).any()):
            raise DataError(f"{name} must lie in [-90, 90] degrees (latitude and longitude swapped?)")
    return values


def geo_metrics(
    pred_lat: torch.Tensor,
    pred_lon: torch.Tensor,
    true_lat: torch.Tensor,
    true_lon: torch.Tensor,
    thresholds_km: Sequence[float] = PAPER_THRESHOLDS_KM,
) -> GeoMetrics:
    """Great-circle errors between predicted and true positions (``[N]`` each, degrees) and the share of
    images within each threshold (``error <= km``). Raises ``DataError`` (a ``ValueError``) on empty input."""
    pred_lat, pred_lon, true_lat, true_lon = _coordinates(pred_lat, pred_lon, true_lat, true_lon)
    return geo_metrics_from_errors(great_circle_km(true_lat, true_lon, pred_lat, pred_lon), thresholds_km)


# ---- Table 11 ----

Table11Row = tuple[str, GeoMetrics | Mapping[float, float]] | tuple[str, Mapping[float, float], float | None]


def _column_name(km: float) -> str:
    name = SCALE_NAMES.get(km)
    return f"{km:g} km ({name})" if name else f"{km:g} km"


def _row_cells(row: Table11Row, thresholds: tuple[float, ...]) -> list[str]:
    if len(row) == 2:
        name, values = row
        median = None
    elif len(row) == 3:
        name, values, median = row
    else:
        raise ConfigError(f"a Table 11 row is (name, metrics) or (name, percents, median_km), got {row!r}")
    if isinstance(values, GeoMetrics):
        median = values.median_km if median is None else median
        values = {km: 100 * share for km, share in values.within.items()}
    percents = [values.get(km) for km in thresholds]
    return [
        str(name),
        *("–" if p is None or math.isnan(p) else f"{p:.1f}" for p in percents),
        "" if median is None else f"{median:.1f}",
    ]


def format_table11(rows: Sequence[Table11Row], thresholds_km: Sequence[float] = PAPER_THRESHOLDS_KM) -> str:
    """Markdown table in the layout of the MobileNets paper's Table 11: one row per model, the percent of
    images within each threshold (one decimal; ``–`` where a row has no value), then the median error in km
    (one decimal; empty where unknown).

    A row is ``(name, GeoMetrics)``, ``(name, {km: percent})`` (e.g. the entries of ``PAPER_TABLE11``) or
    ``(name, {km: percent}, median_km)``.
    """
    thresholds = _check_thresholds(thresholds_km)
    header = ["model", *map(_column_name, thresholds), "median km"]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|--:" * (len(header) - 1) + "|"]
    lines += ["| " + " | ".join(_row_cells(row, thresholds)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def format_table11_row(name: str, metrics: GeoMetrics) -> str:
    """Markdown table (header and one row) of ``metrics`` in the Table 11 layout, over its own thresholds."""
    return format_table11([(name, metrics)], metrics.thresholds_km)


# ---- map ----


def wrap_longitude(lon: float) -> float:
    """Longitude in [-180, 180)."""
    return (lon + 180.0) % 360.0 - 180.0


Point = tuple[float, float]


def split_at_antimeridian(start: Point, end: Point) -> list[tuple[Point, Point]]:
    """The straight (equirectangular) segment from ``start`` to ``end`` (``(lon, lat)`` degrees), drawn the
    short way round: when the longitudes differ by more than 180 degrees the segment leaves the map at one
    side and comes back at the other, so it is returned as two segments meeting the edges ±180 at the
    interpolated latitude. Longitudes are wrapped into [-180, 180) first; zero-length pieces are dropped."""
    (lon1, lat1), (lon2, lat2) = start, end
    lon1, lon2 = wrap_longitude(lon1), wrap_longitude(lon2)
    if abs(lon2 - lon1) <= 180:
        return [((lon1, lat1), (lon2, lat2))]
    edge = 180.0 if lon1 > lon2 else -180.0  # the edge the short way crosses, seen from the start
    unwrapped = lon2 + 2 * edge  # lon2 moved by ±360 to lie beyond that edge, next to lon1
    lat = lat1 + (edge - lon1) / (unwrapped - lon1) * (lat2 - lat1)
    pieces = [((lon1, lat1), (edge, lat)), ((-edge, lat), (lon2, lat2))]
    return [(a, b) for a, b in pieces if a != b]


def _ring_segments(ring: Sequence[Point]) -> list[tuple[Point, Point]]:
    segments: list[tuple[Point, Point]] = []
    for start, end in zip(ring, [*ring[1:], ring[0]], strict=True):
        segments += split_at_antimeridian(start, end)
    return segments


def draw_prediction_map(
    path: Path,
    pred_lat: torch.Tensor,
    pred_lon: torch.Tensor,
    true_lat: torch.Tensor,
    true_lon: torch.Tensor,
    *,
    max_lines: int = 300,
    title: str = "geolocation",
) -> Path:
    """World map (equirectangular, 1200 x 650 px PNG) of the true positions, the predictions, and a thin
    line from truth to prediction for up to ``max_lines`` images (evenly spaced over the input order),
    drawn the short way across the antimeridian. The coastline is the coarse ``world_outline``. The title
    carries ``title``, the image count and the median error."""
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    from mobivision.evaluation.world_outline import WORLD_OUTLINE

    if max_lines < 0:
        raise ConfigError(f"max_lines must be >= 0, got {max_lines}")
    pred_lat, pred_lon, true_lat, true_lon = _coordinates(pred_lat, pred_lon, true_lat, true_lon)
    metrics = geo_metrics_from_errors(great_circle_km(true_lat, true_lon, pred_lat, pred_lon), ())
    count = metrics.count

    figure = Figure(figsize=MAP_SIZE_INCHES, dpi=MAP_DPI, layout="constrained")
    ax = figure.add_subplot()
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_aspect("equal")
    ax.set_xticks(range(-180, 181, 60))
    ax.set_yticks(range(-90, 91, 30))
    ax.set_xlabel("longitude (°)")
    ax.set_ylabel("latitude (°)")
    for lon in range(-180, 181, 30):
        ax.axvline(lon, color="0.88", linewidth=0.5, zorder=0)
    for lat in range(-90, 91, 30):
        ax.axhline(lat, color="0.88", linewidth=0.5, zorder=0)
    outline = [segment for ring in WORLD_OUTLINE.values() for segment in _ring_segments(ring)]
    ax.add_collection(LineCollection(outline, colors="0.45", linewidths=0.7, zorder=1))

    if max_lines and count:
        chosen = torch.linspace(0, count - 1, min(max_lines, count)).round().long().unique().tolist()
        lines = [
            segment
            for i in chosen
            for segment in split_at_antimeridian(
                (float(true_lon[i]), float(true_lat[i])), (float(pred_lon[i]), float(pred_lat[i]))
            )
        ]
        ax.add_collection(LineCollection(lines, colors="0.3", linewidths=0.4, alpha=0.6, zorder=2))
    size = 12 if count <= 1000 else 3
    style = {"s": size, "linewidths": 0}
    ax.scatter((true_lon + 180) % 360 - 180, true_lat, c=_TRUTH_COLOUR, label="truth", zorder=3, **style)
    ax.scatter((pred_lon + 180) % 360 - 180, pred_lat, c=_PREDICTION_COLOUR, label="prediction", zorder=4, **style)
    ax.legend(loc="lower left", fontsize=8)
    shown = f"; lines for {min(max_lines, count)} of them" if max_lines < count else ""
    ax.set_title(f"{title}: {count} images, median error {metrics.median_km:.1f} km{shown}")
    path = Path(path)
    figure.savefig(path, dpi=MAP_DPI)
    return path


# ---- report ----


def write_geo_report(
    output_dir: Path,
    split: str,
    *,
    pred_lat: torch.Tensor,
    pred_lon: torch.Tensor,
    true_lat: torch.Tensor,
    true_lon: torch.Tensor,
    images: Sequence[str],
    top_cells: Sequence[Sequence[int]] | None = None,
    baseline: tuple[float, float] | None = None,
    paper_rows: bool = True,
) -> list[Path]:
    """Write into ``output_dir``, and return the paths of, in this order:

    - ``geo_<split>.md``: the Table 11 table (this model as ``ours``; with ``baseline`` = the most common
      training cell's (lat, lon), the row of always answering it; then the paper's rows of ``PAPER_TABLE11``
      when ``paper_rows``), then the image count, median and mean error;
    - ``predictions_<split>.csv``: image, true and predicted latitude / longitude (6 decimals) and the
      error in km (3 decimals), plus ``top_cells`` (the space-separated class indices of each image, best
      first) when ``top_cells`` is given;
    - ``map_<split>.png``: ``draw_prediction_map``.
    """
    output_dir = Path(output_dir)
    pred_lat, pred_lon, true_lat, true_lon = _coordinates(pred_lat, pred_lon, true_lat, true_lon)
    metrics = geo_metrics(pred_lat, pred_lon, true_lat, true_lon)
    if len(images) != metrics.count:
        raise DataError(f"{len(images)} image names for {metrics.count} predictions")
    if top_cells is not None and len(top_cells) != metrics.count:
        raise DataError(f"top_cells has {len(top_cells)} rows for {metrics.count} predictions")

    rows: list[Table11Row] = [("ours", metrics)]
    if baseline is not None:
        lat, lon = (torch.full_like(true_lat, value) for value in baseline)
        rows.append(("always the most common cell", geo_metrics(lat, lon, true_lat, true_lon)))
    if paper_rows:
        rows += list(PAPER_TABLE11.items())
    text = [f"# Geolocation: {split}", "", format_table11(rows).rstrip("\n"), ""]
    text.append(
        f"{metrics.count} images; median error {metrics.median_km:.1f} km, mean error {metrics.mean_km:.1f} km."
    )
    if paper_rows:
        text += [
            "",
            "The PlaNet rows are the MobileNets paper's Table 11 (Howard et al., 2017), measured on the Im2GPS "
            f"test set, not on this {split} split.",
        ]
    markdown = output_dir / f"geo_{split}.md"
    markdown.write_text("\n".join(text) + "\n")

    columns = list(PREDICTION_COLUMNS)
    predictions = [
        {
            "image": image,
            "true_lat": round(t_lat, 6),
            "true_lon": round(t_lon, 6),
            "pred_lat": round(p_lat, 6),
            "pred_lon": round(p_lon, 6),
            "error_km": round(error, 3),
        }
        for image, t_lat, t_lon, p_lat, p_lon, error in zip(
            images,
            true_lat.tolist(),
            true_lon.tolist(),
            pred_lat.tolist(),
            pred_lon.tolist(),
            metrics.errors_km.tolist(),
            strict=True,
        )
    ]
    if top_cells is not None:
        columns.append("top_cells")
        for row, cells in zip(predictions, top_cells, strict=True):
            row["top_cells"] = " ".join(str(int(c)) for c in cells)
    return [
        markdown,
        write_csv(output_dir / f"predictions_{split}.csv", predictions, columns),
        draw_prediction_map(
            output_dir / f"map_{split}.png", pred_lat, pred_lon, true_lat, true_lon, title=f"geolocation ({split})"
        ),
    ]


class GeoEvaluator(Evaluator):
    """Shares of photos within 1-2500 km and the median error (paper Table 11) of predicted locations.

    Ground truth: each batch's ``target`` (``GeoTarget``: true latitude/longitude per photo). With ``baseline`` (the
    most common training cell's (lat, lon)) the same metrics of always answering it, as ``baseline_*``.
    """

    lower_is_better = frozenset({"median_km", "baseline_median_km"})

    def __init__(self, *, baseline: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.baseline = baseline

    def update(self, predictions: tuple[torch.Tensor, torch.Tensor], batch: dict[str, Any]) -> None:
        """``predictions``: ``([B, 2]`` predicted lat/lon, ``[B, k]`` top cells best first)."""
        locations, top_cells = (p.detach().cpu() for p in predictions)
        truth = batch["target"].location.cpu()
        for key, row in zip(image_keys(batch), zip(locations, top_cells, truth, strict=True), strict=True):
            self.add(key, row)

    def _columns(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        locations, top_cells, truth = zip(*self._rows.values(), strict=True)
        return torch.stack(locations).double(), torch.stack(top_cells), torch.stack(truth).double()

    def _compute(self, rows: dict[Any, Any]) -> dict[str, float]:
        predicted, _, truth = self._columns()
        metrics = geo_metrics(predicted[:, 0], predicted[:, 1], truth[:, 0], truth[:, 1]).summary()
        if self.baseline is not None:
            lat, lon = (torch.full_like(truth[:, 0], v) for v in self.baseline)
            metrics |= geo_metrics(lat, lon, truth[:, 0], truth[:, 1]).summary("baseline_")
        return metrics

    def write_report(self, output_dir: Path, split: str) -> list[Path]:
        """The Table 11 row beside the paper's, every photo's prediction, and a map."""
        if not self._rows:
            return []
        predicted, top_cells, truth = self._columns()
        return write_geo_report(
            output_dir,
            split,
            pred_lat=predicted[:, 0],
            pred_lon=predicted[:, 1],
            true_lat=truth[:, 0],
            true_lon=truth[:, 1],
            images=[str(k) for k in self._rows],
            top_cells=top_cells.long().tolist(),
            baseline=self.baseline,
        )
