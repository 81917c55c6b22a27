"""Geolocation metrics on points at known distances, the Table 11 text, report files and the map helpers."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch

from mobivision.errors import ConfigError, DataError
from mobivision.evaluation.geo import (
    PAPER_TABLE11,
    PAPER_THRESHOLDS_KM,
    format_table11,
    format_table11_row,
    geo_metrics,
    geo_metrics_from_errors,
    split_at_antimeridian,
    write_geo_report,
)
from mobivision.evaluation.world_outline import WORLD_OUTLINE

R = 6371.0
KM_PER_DEGREE = math.pi * R / 180  # 111.19 km along a meridian (or the equator)


def ref_distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance by the atan2 (Vincenty, sphere) formula: not the haversine under test."""
    p1, p2, dl = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    y = math.hypot(
        math.cos(p2) * math.sin(dl), math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    )
    x = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dl)
    return R * math.atan2(y, x)


def _tensors(*values: list[float]) -> list[torch.Tensor]:
    return [torch.tensor(v, dtype=torch.float64) for v in values]


# ---- metrics ----


def test_errors_along_a_meridian_give_the_expected_shares() -> None:
    # truth at (40 N, 100 E); predictions 0, 0.5, 1.5, 5, 20 and 30 degrees of latitude north of it:
    # 0, 55.6, 166.8, 556, 2224 and 3336 km
    offsets = [0.0, 0.5, 1.5, 5.0, 20.0, 30.0]
    true_lat, true_lon = [40.0] * 6, [100.0] * 6
    pred_lat = [40.0 + d for d in offsets]
    metrics = geo_metrics(*_tensors(pred_lat, true_lon, true_lat, true_lon))
    assert metrics.errors_km.dtype == torch.float64
    assert metrics.errors_km.tolist() == pytest.approx([d * KM_PER_DEGREE for d in offsets], abs=1e-6)
    assert metrics.within == pytest.approx({1: 1 / 6, 25: 1 / 6, 200: 3 / 6, 750: 4 / 6, 2500: 5 / 6})
    assert list(metrics.within) == list(PAPER_THRESHOLDS_KM)
    assert metrics.count == 6
    assert metrics.median_km == pytest.approx((1.5 + 5.0) / 2 * KM_PER_DEGREE)
    assert metrics.mean_km == pytest.approx(sum(offsets) / 6 * KM_PER_DEGREE)


def test_errors_match_an_independent_formula_and_take_the_short_way() -> None:
    generator = torch.Generator().manual_seed(0)
    lat = torch.rand(2, 50, generator=generator, dtype=torch.float64) * 180 - 90
    lon = torch.rand(2, 50, generator=generator, dtype=torch.float64) * 360 - 180
    metrics = geo_metrics(lat[0], lon[0], lat[1], lon[1])
    columns = (lat[1].tolist(), lon[1].tolist(), lat[0].tolist(), lon[0].tolist())
    expected = [ref_distance_km(*p) for p in zip(*columns, strict=True)]
    assert metrics.errors_km.tolist() == pytest.approx(expected, rel=1e-9, abs=1e-6)
    # one degree of longitude across the antimeridian on the equator; float32 input is accepted
    across = geo_metrics(torch.tensor([0.0]), torch.tensor([-179.5]), torch.tensor([0.0]), torch.tensor([179.5]))
    assert across.errors_km.item() == pytest.approx(KM_PER_DEGREE, rel=1e-9)


def test_an_error_equal_to_the_threshold_counts_as_within() -> None:
    exact = geo_metrics_from_errors([25.0, 24.999, 25.001, 200.0], thresholds_km=(25, 200))
    assert exact.within == {25: 0.5, 200: 1.0}
    # From coordinates: 25 km north of the truth; the threshold is the computed error itself (whatever its
    # last bit), so the boundary is exercised without depending on float rounding.
    offset = 25 / KM_PER_DEGREE
    pred_lat, pred_lon, true_lat, true_lon = _tensors([10.0 + offset], [20.0], [10.0], [20.0])
    error = geo_metrics(pred_lat, pred_lon, true_lat, true_lon).errors_km.item()
    assert error == pytest.approx(25.0, abs=1e-9)
    below = math.nextafter(error, 0.0)
    assert geo_metrics(pred_lat, pred_lon, true_lat, true_lon, thresholds_km=(error, below)).within == {
        error: 1.0,
        below: 0.0,
    }


def test_median_is_the_statistical_median() -> None:
    assert geo_metrics_from_errors([3.0, 1.0, 2.0]).median_km == 2.0  # odd: the middle value
    assert geo_metrics_from_errors([4.0, 1.0, 3.0, 2.0]).median_km == 2.5  # even: mean of the two middle ones
    assert geo_metrics_from_errors([7.0]).median_km == 7.0
    generator = torch.Generator().manual_seed(1)
    for n in (10, 11):
        errors = torch.rand(n, generator=generator, dtype=torch.float64) * 1000
        metrics = geo_metrics_from_errors(errors)
        assert metrics.median_km == pytest.approx(float(np.median(errors.numpy())))
        assert metrics.mean_km == pytest.approx(float(errors.mean()))


def test_summary_keys() -> None:
    metrics = geo_metrics_from_errors([0.5, 10.0, 100.0, 1000.0])
    assert metrics.summary("val/") == {
        "val/acc_1km": 0.25,
        "val/acc_25km": 0.5,
        "val/acc_200km": 0.75,
        "val/acc_750km": 0.75,
        "val/acc_2500km": 1.0,
        "val/median_km": 55.0,
    }
    assert list(geo_metrics_from_errors([1.0], thresholds_km=(5,)).summary()) == ["acc_5km", "median_km"]


# ---- Table 11 ----

HEADER = (
    "| model | 1 km (street) | 25 km (city) | 200 km (region) | 750 km (country) | 2500 km (continent) | median km |"
)


def test_table11_row() -> None:
    metrics = geo_metrics_from_errors([0.5, 10.0, 100.0, 1000.0, 3000.0, 20.0])
    # within: 1 km 1/6, 25 km 3/6, 200 km 4/6, 750 km 4/6, 2500 km 5/6; median (20 + 100) / 2
    assert format_table11_row("MobileNet 1.0", metrics).splitlines() == [
        HEADER,
        "|---|--:|--:|--:|--:|--:|--:|",
        "| MobileNet 1.0 | 16.7 | 50.0 | 66.7 | 66.7 | 83.3 | 60.0 |",
    ]


def test_table11_with_paper_rows_and_other_row_forms() -> None:
    metrics = geo_metrics_from_errors([0.5, 10.0, 100.0, 1000.0])
    rows = [("ours", metrics), *PAPER_TABLE11.items(), ("partial", {1: 2.04, 25: 50.0}, 123.45)]
    lines = format_table11(rows).splitlines()
    assert lines[0] == HEADER
    assert lines[2:] == [
        "| ours | 25.0 | 50.0 | 75.0 | 75.0 | 100.0 | 55.0 |",
        "| PlaNet (Inception) | 11.0 | 31.7 | 51.1 | 64.0 | 77.6 |  |",
        "| PlaNet MobileNet | 11.4 | 31.7 | 45.2 | 60.3 | 79.3 |  |",
        "| partial | 2.0 | 50.0 | – | – | – | 123.5 |",
    ]
    other = format_table11([("ours", metrics)], thresholds_km=(10, 25)).splitlines()
    assert other[0] == "| model | 10 km | 25 km (city) | median km |"
    assert other[2] == "| ours | – | 50.0 | 55.0 |"  # 10 km was not measured
    with pytest.raises(ConfigError, match="Table 11 row"):
        format_table11([("bad",)])  # type: ignore[list-item]


# ---- report ----


def _report_inputs() -> dict[str, object]:
    # image a: exact; b: 1 degree of latitude off; c: across the antimeridian, 2 degrees of longitude
    return {
        "true_lat": torch.tensor([48.8566, -33.8688, 0.0]),
        "true_lon": torch.tensor([2.3522, 151.2093, 179.0]),
        "pred_lat": torch.tensor([48.8566, -32.8688, 0.0]),
        "pred_lon": torch.tensor([2.3522, 151.2093, -179.0]),
        "images": ["a.jpg", "b.jpg", "c.jpg"],
    }


def test_report_files(tmp_path: Path) -> None:
    inputs = _report_inputs()
    files = write_geo_report(tmp_path, "test", **inputs, top_cells=[[3, 1, 7], [0], torch.tensor([5, 2])])
    assert [f.name for f in files] == ["geo_test.md", "predictions_test.csv", "map_test.png"]

    # errors 0, 111.19 and 222.39 km: within 1 km 1/3, 25 km 1/3, 200 km 2/3, then 1; median 111.2
    lines = files[0].read_text().splitlines()
    assert lines[0] == "# Geolocation: test"
    assert HEADER in lines
    assert "| ours | 33.3 | 33.3 | 66.7 | 100.0 | 100.0 | 111.2 |" in lines
    assert "| PlaNet MobileNet | 11.4 | 31.7 | 45.2 | 60.3 | 79.3 |  |" in lines
    assert "3 images; median error 111.2 km, mean error 111.2 km." in lines

    with open(files[1]) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["image", "true_lat", "true_lon", "pred_lat", "pred_lon", "error_km", "top_cells"]
    assert [r["image"] for r in rows] == ["a.jpg", "b.jpg", "c.jpg"]
    assert [r["top_cells"] for r in rows] == ["3 1 7", "0", "5 2"]
    coordinates = ("true_lat", "true_lon", "pred_lat", "pred_lon")
    for row, *expected in zip(rows, *(inputs[k].tolist() for k in coordinates), strict=True):
        values = [float(row[k]) for k in coordinates]
        assert values == pytest.approx(expected, abs=1e-6)
    assert [float(r["error_km"]) for r in rows] == pytest.approx([0, KM_PER_DEGREE, 2 * KM_PER_DEGREE], abs=2e-3)

    image = matplotlib.image.imread(files[2])
    assert image.shape[:2] == (650, 1200)
    assert image[..., :3].std() > 0  # something was drawn


def test_report_without_paper_rows_or_cells(tmp_path: Path) -> None:
    files = write_geo_report(tmp_path, "val", **_report_inputs(), paper_rows=False)
    text = files[0].read_text()
    assert "PlaNet" not in text and "| ours |" in text
    with open(files[1]) as f:
        assert next(csv.reader(f)) == ["image", "true_lat", "true_lon", "pred_lat", "pred_lon", "error_km"]


def test_map_leaves_no_pyplot_figures(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    from mobivision.evaluation.geo import draw_prediction_map

    before = plt.get_fignums()
    inputs = _report_inputs()
    path = draw_prediction_map(
        tmp_path / "map.png",
        inputs["pred_lat"],
        inputs["pred_lon"],
        inputs["true_lat"],
        inputs["true_lon"],
        max_lines=1,
    )
    assert path.exists() and plt.get_fignums() == before


# ---- antimeridian and outline ----


def test_segments_split_at_the_antimeridian() -> None:
    # eastwards across +180: 170 -> -170 is 20 degrees the short way, crossing halfway in longitude
    assert split_at_antimeridian((170.0, 10.0), (-170.0, 20.0)) == [
        ((170.0, 10.0), (180.0, 15.0)),
        ((-180.0, 15.0), (-170.0, 20.0)),
    ]
    # westwards across -180, crossing a quarter of the way
    assert split_at_antimeridian((-175.0, 0.0), (165.0, -20.0)) == [
        ((-175.0, 0.0), (-180.0, -5.0)),
        ((180.0, -5.0), (165.0, -20.0)),
    ]
    # no crossing: one segment (a difference of exactly 180 degrees is not split)
    assert split_at_antimeridian((-90.0, 0.0), (90.0, 45.0)) == [((-90.0, 0.0), (90.0, 45.0))]
    assert split_at_antimeridian((10.0, 5.0), (20.0, 6.0)) == [((10.0, 5.0), (20.0, 6.0))]
    # longitudes are wrapped first (190 = -170); a piece of zero length is dropped
    assert split_at_antimeridian((190.0, 0.0), (-160.0, 0.0)) == [((-170.0, 0.0), (-160.0, 0.0))]
    assert split_at_antimeridian((-180.0, 1.0), (170.0, 3.0)) == [((180.0, 1.0), (170.0, 3.0))]


def test_world_outline_is_plausible() -> None:
    vertices = [v for ring in WORLD_OUTLINE.values() for v in ring]
    assert all(-180 <= lon <= 180 and -90 <= lat <= 90 for lon, lat in vertices)
    assert all(len(ring) >= 4 for ring in WORLD_OUTLINE.values())
    # a few landmarks sit on the outline
    assert (18.5, -34.4) in WORLD_OUTLINE["Africa"] and (51.3, 11.8) in WORLD_OUTLINE["Africa"]
    assert (-67.3, -56.0) in WORLD_OUTLINE["South America"]


# ---- validation ----


def test_rejects_bad_inputs(tmp_path: Path) -> None:
    empty = torch.zeros(0)
    with pytest.raises(ValueError, match="at least one image"):
        geo_metrics(empty, empty, empty, empty)
    with pytest.raises(ValueError, match="at least one image"):
        geo_metrics_from_errors([])
    one, two = torch.zeros(1), torch.zeros(2)
    with pytest.raises(DataError, match="differ in length"):
        geo_metrics(one, one, two, one)
    with pytest.raises(DataError, match=r"shape \[N\]"):
        geo_metrics(torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(DataError, match=r"true_lat must lie in \[-90, 90\]"):
        geo_metrics(one, one, torch.tensor([120.0]), one)
    with pytest.raises(DataError, match="NaN"):
        geo_metrics(torch.tensor([math.nan]), one, one, one)
    with pytest.raises(DataError, match="non-negative"):
        geo_metrics_from_errors([-1.0])
    with pytest.raises(ConfigError, match="positive"):
        geo_metrics_from_errors([1.0], thresholds_km=(0,))
    with pytest.raises(ConfigError, match="distinct"):
        geo_metrics_from_errors([1.0], thresholds_km=(25, 25))
    inputs = _report_inputs()
    with pytest.raises(DataError, match="2 image names for 3 predictions"):
        write_geo_report(tmp_path, "val", **{**inputs, "images": ["a", "b"]})
    with pytest.raises(DataError, match="top_cells has 1 rows"):
        write_geo_report(tmp_path, "val", **inputs, top_cells=[[1]])


@pytest.mark.parametrize("split", [True, False])
def test_the_map_draws_a_line_across_the_date_line_the_short_way(
    tmp_path: Path, split: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A truth at 170 E and its prediction at 170 W (2,200 km apart): the map's line leaves at one edge and comes
    back at the other. Drawn straight (``split=False``: the splitting patched out) it crosses the whole map, which
    this test sees as changed pixels in the map's middle."""
    from PIL import Image

    from mobivision.evaluation import geo

    if not split:
        monkeypatch.setattr(geo, "split_at_antimeridian", lambda start, end: [(start, end)])
    points = {"true_lat": torch.tensor([40.0]), "true_lon": torch.tensor([170.0])}
    points |= {"pred_lat": torch.tensor([30.0]), "pred_lon": torch.tensor([-170.0])}
    with_line = np.asarray(Image.open(geo.draw_prediction_map(tmp_path / "a.png", **points, max_lines=1)))
    without = np.asarray(Image.open(geo.draw_prediction_map(tmp_path / "b.png", **points, max_lines=0)))
    changed = np.abs(with_line.astype(int) - without.astype(int)).sum(-1) > 30
    height, width = changed.shape
    changed = changed[height // 10 : -height // 10]  # the title differs ("lines for 0 of them"); the map does not
    columns = np.flatnonzero(changed.any(0)) / width
    assert len(columns)  # the line is drawn
    crosses_the_middle = bool(((columns > 0.3) & (columns < 0.7)).any())
    assert crosses_the_middle is not split
