"""``GeoDataModule``: geo CSV splits, partitionings read or built from the training coordinates, and training
targets ``(lat, lon, class per partitioning)``."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mobivision.data.records import GeoLabel
from mobivision.data.synthetic import write_synthetic_geo
from mobivision.errors import ConfigError
from mobivision.geo.cells import assign_cells, read_cells_csv
from mobivision.tasks.geo_data import GeoDataModule


@pytest.fixture(scope="module")
def geo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_geo(tmp_path_factory.mktemp("geo"), num_images=200, size=32)


def _module(root: Path, cells: Path, **options) -> GeoDataModule:
    partitions = {"dir": str(cells), "t_min": 3, "t_max": [40, 10], **options.pop("partitions", {})}
    data = GeoDataModule(root=str(root), partitions=partitions, resolution=32, batch_size=4, num_workers=0, **options)
    data.setup("fit")
    return data


def test_training_targets_carry_a_class_per_partitioning(geo: Path, tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="mobivision"):
        data = _module(geo, tmp_path / "cells")
    files = [tmp_path / "cells" / "cells_3_40.csv", tmp_path / "cells" / "cells_3_10.csv"]
    partitions = [read_cells_csv(f) for f in files]
    assert [p["name"] for p in data.task_inputs()["partitions"]] == ["cells_3_40", "cells_3_10"]
    assert [p["tokens"] for p in data.task_inputs()["partitions"]] == [[c.token for c in p] for p in partitions]
    records = data.datasets["train"].records
    lats, lons = [r.label.lat for r in records], [r.label.lon for r in records]
    for i, cells in enumerate(partitions):
        assert [r.label.cells[i] for r in records] == assign_cells(cells, lats, lons).tolist()
    left_out = 160 - len(records)
    assert left_out > 0 and f"{left_out} of 160 training photos lie in cells dropped" in caplog.text
    assert all(max(r.label.cells) >= 0 for r in records)
    val_target, train_target = data.datasets["val"][0]["target"], data.datasets["train"][0]["target"]
    assert val_target.location.dtype == torch.float64 and val_target.location.shape == (2,)
    assert val_target.cells.shape == (0,)  # evaluation photos are located, not classified
    assert train_target.cells.dtype == torch.int64 and train_target.cells.shape == (2,)
    assert train_target.location.tolist() == [records[0].label.lat, records[0].label.lon]


def test_existing_cells_files_are_used_as_they_are(geo: Path, tmp_path: Path) -> None:
    _module(geo, tmp_path / "cells")
    file = tmp_path / "cells" / "cells_3_40.csv"
    lines = file.read_text().splitlines()
    file.write_text("\n".join(lines[:3]) + "\n")  # keep the header and two cells
    data = _module(geo, tmp_path / "cells")
    assert len(data.task_inputs()["partitions"][0]["tokens"]) == 2


def test_image_root_is_relative_to_each_csv(tmp_path: Path) -> None:
    (tmp_path / "list" / "photos").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "list" / "photos" / "a.jpg")
    (tmp_path / "list" / "val.csv").write_text("IMG_ID,LAT,LON\na.jpg,48.85,2.35\n")
    data = GeoDataModule(
        root=str(tmp_path),
        partitions={"dir": str(tmp_path / "cells"), "t_min": 1, "t_max": [10]},
        image_root="photos",
        train_split=None,
        val_split="list/val.csv",
        test_split=None,
        resolution=32,
        num_workers=0,
    )
    data.setup("validate")
    (record,) = data.datasets["val"].records
    assert record.path == tmp_path / "list" / "photos" / "a.jpg" and record.label == GeoLabel(48.85, 2.35)


def test_unknown_partition_keys_are_refused(geo: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data.partitions: unknown keys \['tmax'\]"):
        _module(geo, tmp_path, partitions={"tmax": 5})
