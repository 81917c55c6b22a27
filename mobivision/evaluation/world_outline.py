"""A very coarse world outline for the background of geolocation maps, loaded from ``world_outline.json``.

Coarse, hand-made from well-known coordinates (capes, ports, river mouths), for orientation only, not for
measurement: coastlines are cut straight across bays and gulfs, small islands are missing, and an error of a
hundred kilometres or more along any coast is normal. Natural Earth or similar data would be better but is a
download this project does not make.

``world_outline.json`` (beside this module, shipped as package data) maps each ring's name to its vertices in
drawing order, one ring per line: ``[lon, lat]`` in degrees, or ``[lon, lat, "landmark"]`` naming the place the
vertex marks (the name is documentation; the loader drops it). Each ring is closed (the last vertex connects back
to the first), longitudes in [-180, 180]. A ring that crosses the antimeridian (Chukotka, Antarctica) simply steps
from about +180 to about -180; the drawing code splits such edges at ±180 and draws them the short way.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

Ring = tuple[tuple[float, float], ...]

DATA_FILE = "world_outline.json"


@functools.lru_cache(maxsize=1)
def world_outline() -> dict[str, Ring]:
    """Closed rings of ``(lon, lat)`` degrees by name (two inland seas included, drawn the same way), read once."""
    rings = json.loads(resources.files(__package__).joinpath(DATA_FILE).read_text(encoding="utf-8"))
    return {name: tuple((float(vertex[0]), float(vertex[1])) for vertex in ring) for name, ring in rings.items()}


def __getattr__(name: str) -> dict[str, Ring]:
    """``WORLD_OUTLINE``: ``world_outline()``, loaded on first use."""
    if name == "WORLD_OUTLINE":
        return world_outline()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
