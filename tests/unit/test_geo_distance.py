"""Unit tests of ``mobivision.geo.distance``: haversine distances against an independent formula.

The expected values come from Vincenty's formula for the sphere (``atan2`` of the cross and dot products),
written here with the ``math`` module, and are cross-checked against rounded published great-circle figures.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mobivision.geo import EARTH_RADIUS_KM, great_circle_km

PARIS, LONDON = (48.8566, 2.3522), (51.5074, -0.1278)
NEW_YORK, LOS_ANGELES = (40.7128, -74.0060), (34.0522, -118.2437)
SYDNEY, TOKYO = (-33.8688, 151.2093), (35.6762, 139.6503)


def vincenty_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance by Vincenty's spherical formula (well conditioned at every distance)."""
    phi1, phi2, dlam = math.radians(lat1), math.radians(lat2), math.radians(lon2 - lon1)
    cross = math.hypot(
        math.cos(phi2) * math.sin(dlam),
        math.cos(phi1) * math.sin(phi2) - math.sin(phi1) * math.cos(phi2) * math.cos(dlam),
    )
    dot = math.sin(phi1) * math.sin(phi2) + math.cos(phi1) * math.cos(phi2) * math.cos(dlam)
    return EARTH_RADIUS_KM * math.atan2(cross, dot)


def test_radius_is_the_mean_earth_radius() -> None:
    assert EARTH_RADIUS_KM == 6371.0


@pytest.mark.parametrize(
    ("a", "b", "published_km"),
    [(PARIS, LONDON, 343.5), (NEW_YORK, LOS_ANGELES, 3935.7), (SYDNEY, TOKYO, 7825.8)],
    ids=["paris-london", "newyork-losangeles", "sydney-tokyo"],
)
def test_city_pairs(a: tuple[float, float], b: tuple[float, float], published_km: float) -> None:
    distance = great_circle_km(a[0], a[1], b[0], b[1])
    assert distance.dtype == torch.float64 and distance.shape == ()
    assert distance.item() == pytest.approx(vincenty_km(*a, *b), rel=1e-12)
    assert distance.item() == pytest.approx(published_km, abs=0.1)
    assert great_circle_km(b[0], b[1], a[0], a[1]).item() == pytest.approx(distance.item(), rel=1e-15)


@pytest.mark.parametrize(("a", "b"), [((0.0, 0.0), (0.0, 180.0)), ((30.0, 40.0), (-30.0, -140.0)), ((90, 0), (-90, 0))])
def test_antipodes_are_half_a_circumference(a: tuple[float, float], b: tuple[float, float]) -> None:
    assert great_circle_km(*a, *b).item() == pytest.approx(math.pi * EARTH_RADIUS_KM, rel=1e-12)


def test_same_point_is_zero() -> None:
    distance = great_circle_km(
        [48.8566, -33.0, 90.0], [2.3522, 151.0, 0.0], [48.8566, -33.0, 90.0], [2.3522, 151.0, 45.0]
    )
    assert distance.tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert great_circle_km(10.0, 20.0, 10.0, 20.0).item() == 0.0


def test_across_the_antimeridian() -> None:
    """179.5 E to 179.5 W on the equator is one degree of arc, not 359."""
    distance = great_circle_km(0.0, 179.5, 0.0, -179.5).item()
    assert distance == pytest.approx(math.pi * EARTH_RADIUS_KM / 180, rel=1e-12)
    assert great_circle_km(0.0, 180.0, 0.0, -180.0).item() == pytest.approx(0.0, abs=1e-9)
    fiji, samoa = (-17.7134, 178.0650), (-13.7590, -172.1046)
    assert great_circle_km(*fiji, *samoa).item() == pytest.approx(vincenty_km(*fiji, *samoa), rel=1e-12)


def test_near_antipodal_points_are_finite() -> None:
    """Rounding can make the haversine term exceed 1 there; it is clamped instead of giving NaN."""
    rng = np.random.default_rng(0)
    lat = rng.uniform(-90, 90, 1000)
    lon = rng.uniform(-180, 180, 1000)
    distance = great_circle_km(lat, lon, -lat, np.where(lon > 0, lon - 180, lon + 180) + 1e-13)
    assert torch.isfinite(distance).all()
    assert distance.max().item() <= math.pi * EARTH_RADIUS_KM
    # asin is ill-conditioned next to 1, so the haversine loses about half the digits at the antipode (< 1 m)
    assert distance.min().item() == pytest.approx(math.pi * EARTH_RADIUS_KM, abs=1e-3)


def test_broadcasting_and_input_types() -> None:
    lats = torch.tensor([[PARIS[0]], [NEW_YORK[0]], [SYDNEY[0]]], dtype=torch.float32)
    lons = torch.tensor([[PARIS[1]], [NEW_YORK[1]], [SYDNEY[1]]], dtype=torch.float32)
    targets = np.array([LONDON, LOS_ANGELES, TOKYO, PARIS])
    distance = great_circle_km(lats, lons, targets[:, 0], targets[:, 1].tolist())
    assert distance.shape == (3, 4) and distance.dtype == torch.float64
    for i in range(3):
        for j in range(4):
            # float32 inputs are taken as the float32 values they are, then computed in float64
            expected = vincenty_km(lats[i, 0].item(), lons[i, 0].item(), *targets[j])
            assert distance[i, j].item() == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_random_pairs_match_the_independent_formula() -> None:
    rng = np.random.default_rng(1)
    lat1, lat2 = rng.uniform(-90, 90, (2, 500))
    lon1, lon2 = rng.uniform(-180, 180, (2, 500))
    distance = great_circle_km(torch.from_numpy(lat1), torch.from_numpy(lon1), lat2, lon2).numpy()
    expected = [vincenty_km(*values) for values in zip(lat1, lon1, lat2, lon2, strict=True)]
    np.testing.assert_allclose(distance, expected, rtol=1e-9, atol=1e-6)
