"""How the plug-in tests install the plug-ins of ``tests/plugin/``: their configs on Hydra's search path, and the
dist-info folder ``pip install`` of a plug-in package would leave, with its entry points."""

from __future__ import annotations

from pathlib import Path

PLUGIN = Path(__file__).resolve().parent / "plugin"
SEARCHPATH = f"hydra.searchpath=[file://{PLUGIN / 'configs'}]"


def register_plugin(site: Path) -> Path:
    """What ``pip install`` of a plug-in package leaves: a dist-info folder whose entry point names the task."""
    dist = site / "mobivision_shape_count-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mobivision-shape-count\nVersion: 0.1\n")
    entries = "shape_count = shape_count:ShapeCountTask\nshape_cover = shape_cover:ShapeCoverTask\n"
    (dist / "entry_points.txt").write_text(f"[mobivision.tasks]\n{entries}")
    return site
