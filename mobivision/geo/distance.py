"""Great-circle distance on a spherical Earth, as geolocation papers measure their errors.

PlaNet (Weyand, Kostrikov and Philbin, ECCV 2016) and GeoEstimation (Müller-Budack, Pustu-Iren and Ewerth,
ECCV 2018) report the share of photos located within 1, 25, 200, 750 and 2500 km of the truth, with the
haversine distance on a sphere of radius 6371 km (the mean Earth radius).
"""

from __future__ import annotations

from typing import Any

import torch

EARTH_RADIUS_KM = 6371.0
"""Mean Earth radius in km, the sphere PlaNet and GeoEstimation measure on."""


def great_circle_km(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> torch.Tensor:
    """Haversine distance in km between points given in degrees.

    Args:
        lat1, lon1, lat2, lon2: Latitudes and longitudes in degrees: tensors, numpy arrays, sequences or
            numbers, broadcast against each other.

    Returns:
        A float64 tensor of the broadcast shape, on the device of the first tensor argument (else the CPU).
    """
    values = (lat1, lon1, lat2, lon2)
    device = next((value.device for value in values if isinstance(value, torch.Tensor)), None)
    lat1, lon1, lat2, lon2 = (torch.as_tensor(value, dtype=torch.float64, device=device) for value in values)
    phi1, phi2 = torch.deg2rad(lat1), torch.deg2rad(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = torch.deg2rad(lon2 - lon1) / 2
    h = torch.sin(half_dphi) ** 2 + torch.cos(phi1) * torch.cos(phi2) * torch.sin(half_dlambda) ** 2
    # Rounding can push h just outside [0, 1] for (near-)antipodal points, where asin(sqrt(h)) would be NaN.
    return 2 * EARTH_RADIUS_KM * torch.asin(torch.sqrt(h.clamp(0.0, 1.0)))
