"""Unit tests of ``mobivision.data.synthetic.geo``: a synthetic geo-localization set in the geo CSV format.

The writer promises the CSV format (header, paths relative to the root, 6-decimal coordinates, 80/10/10 splits),
reproducibility from the seed, reuse of a complete dataset (the ``.complete`` marker is written last), places
near the cities of ``GEO_REGIONS`` with the antimeridian crossed, and regions that are visible in the pixels, so
a small network can learn where a photo was taken.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobivision.data.synthetic import GEO_REGIONS, GeoCity, scatter_location, write_synthetic_geo
from mobivision.errors import DataError

NUM, SIZE = 600, 64
SPLITS = {"train": 480, "val": 60, "test": 60}  # contiguous blocks of 80 / 10 / 10 percent
CITIES = [(r, city) for r, region in enumerate(GEO_REGIONS) for city in region.cities]
LINE = re.compile(r"images/(\d{6})\.jpg,(-?\d{1,2}\.\d{6}),(-?\d{1,3}\.\d{6})")


def _write(root: Path, *, num_images: int = NUM, seed: int = 0) -> Path:
    return write_synthetic_geo(root, num_images=num_images, size=SIZE, seed=seed)


def _rows(root: Path, split: str) -> list[tuple[str, float, float]]:
    text = (root / f"{split}.csv").read_text()
    assert text.endswith("\n") and not text.endswith("\n\n"), f"{split}.csv: one newline after the last line"
    header, *lines = text[:-1].split("\n")
    assert header == "path,latitude,longitude"
    for line in lines:
        assert LINE.fullmatch(line), line
    return [(path, float(lat), float(lon)) for path, lat, lon in (line.split(",") for line in lines)]


def _all_rows(root: Path) -> list[tuple[str, float, float]]:
    return [row for split in SPLITS for row in _rows(root, split)]


def _haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance on a sphere of radius 6371 km (numpy broadcasting)."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(v, dtype=np.float64)) for v in (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def _nearest_city(rows: list[tuple[str, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Distance (km) to the nearest city of ``GEO_REGIONS`` and that city's region, per row."""
    lat, lon = np.array([r[1] for r in rows])[:, None], np.array([r[2] for r in rows])[:, None]
    city_lat = np.array([city.latitude for _, city in CITIES])[None, :]
    city_lon = np.array([city.longitude for _, city in CITIES])[None, :]
    distance = _haversine_km(lat, lon, city_lat, city_lon)
    nearest = distance.argmin(axis=1)
    return distance.min(axis=1), np.array([CITIES[k][0] for k in nearest])


def _contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def _age(root: Path) -> None:
    """Set every file's mtime to 1 s after the epoch, so any rewrite shows whatever the clock resolution."""
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(1_000_000_000, 1_000_000_000))


@pytest.fixture(scope="module")
def geo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dataset written with seed 0, shared by the read-only tests (tests that modify one write their own)."""
    return _write(tmp_path_factory.mktemp("geo") / "synthetic_geo")


def test_regions_are_valid() -> None:
    assert 12 <= len(GEO_REGIONS) <= 16
    assert math.isclose(sum(region.weight for region in GEO_REGIONS), 1.0)
    assert len({region.name for region in GEO_REGIONS}) == len(GEO_REGIONS)
    assert len({region.weight for region in GEO_REGIONS}) > 1
    for region in GEO_REGIONS:
        assert region.cities
        for city in region.cities:
            assert -90 <= city.latitude <= 90 and -180 <= city.longitude <= 180, city


def test_csv_format_and_split_sizes(geo_root: Path) -> None:
    names = []
    for split, count in SPLITS.items():
        rows = _rows(geo_root, split)
        assert len(rows) == count, split
        for path, lat, lon in rows:
            assert (geo_root / path).is_file(), path
            assert -90 <= lat <= 90 and -180 <= lon <= 180, (path, lat, lon)
            with Image.open(geo_root / path) as image:
                assert image.format == "JPEG" and image.mode == "RGB" and image.size == (SIZE, SIZE)
        names += [path for path, _, _ in rows]
    assert names == [f"images/{i:06d}.jpg" for i in range(1, NUM + 1)]
    assert sorted(p.name for p in (geo_root / "images").iterdir()) == [n.split("/")[1] for n in names]
    assert (geo_root / ".complete").exists()


def test_places_are_near_their_cities_with_a_heavy_tail(geo_root: Path) -> None:
    distance, _ = _nearest_city(_all_rows(geo_root))
    assert distance.max() < 300, distance.max()
    # Mixture of 3 km (3 in 4) and 30 km (1 in 4) Gaussians per axis.
    assert 0.6 < (distance < 10).mean() < 0.9, (distance < 10).mean()
    assert (distance > 30).mean() > 0.05, (distance > 30).mean()


def test_region_frequencies_follow_the_weights(geo_root: Path) -> None:
    _, region = _nearest_city(_all_rows(geo_root))
    counts = np.bincount(region, minlength=len(GEO_REGIONS))
    for k, r in enumerate(GEO_REGIONS):
        tolerance = 4 * math.sqrt(r.weight * (1 - r.weight) / NUM) + 1 / NUM
        assert abs(counts[k] / NUM - r.weight) <= tolerance, (r.name, counts[k] / NUM, r.weight)


def test_antimeridian_region_has_places_on_both_sides(geo_root: Path) -> None:
    rows = _all_rows(geo_root)
    _, region = _nearest_city(rows)
    wrap = next(k for k, r in enumerate(GEO_REGIONS) if any(c.longitude > 170 for c in r.cities))
    lon = np.array([r[2] for r in rows])[region == wrap]
    assert (lon > 170).any() and (lon < -170).any(), lon


def test_scatter_wraps_the_longitude_across_the_antimeridian() -> None:
    rng = np.random.default_rng(0)
    for city in (GeoCity("east", -16.8, 179.99), GeoCity("west", -16.8, -179.99)):
        places = np.array([scatter_location(rng, city) for _ in range(2000)])
        assert (np.abs(places[:, 1]) <= 180).all()
        assert (places[:, 1] > 179).any() and (places[:, 1] < -179).any()
        distance = _haversine_km(city.latitude, city.longitude, places[:, 0], places[:, 1])
        assert distance.max() < 300 and np.median(distance) < 10, (distance.max(), np.median(distance))


def test_region_is_visible_in_simple_pixel_statistics(geo_root: Path) -> None:
    # A nearest-centroid classifier on the mean colour of a 4 x 4 grid of blocks, fitted on train, tested on
    # val + test: far above the majority class (16 %).
    rows = {split: _rows(geo_root, split) for split in SPLITS}
    features, labels = {}, {}
    for split, split_rows in rows.items():
        images = []
        for path, _, _ in split_rows:
            with Image.open(geo_root / path) as image:
                images.append(np.asarray(image.convert("RGB"), dtype=np.float64))
        blocks = np.stack(images).reshape(len(images), 4, SIZE // 4, 4, SIZE // 4, 3).mean(axis=(2, 4))
        features[split] = blocks.reshape(len(images), -1)
        labels[split] = _nearest_city(split_rows)[1]
    present = np.unique(labels["train"])
    centroids = np.stack([features["train"][labels["train"] == k].mean(axis=0) for k in present])
    test_features = np.concatenate([features["val"], features["test"]])
    test_labels = np.concatenate([labels["val"], labels["test"]])
    predicted = present[((test_features[:, None] - centroids[None]) ** 2).sum(-1).argmin(axis=1)]
    accuracy = (predicted == test_labels).mean()
    majority = np.bincount(test_labels).max() / len(test_labels)
    assert accuracy > 0.7 and accuracy > 3 * majority, (accuracy, majority)


def test_same_seed_is_byte_identical_and_images_depend_only_on_seed_and_index(geo_root: Path, tmp_path: Path) -> None:
    first, again = _contents(_write(tmp_path / "a", num_images=20)), _contents(_write(tmp_path / "b", num_images=20))
    assert first == again
    for name in ("images/000001.jpg", "images/000016.jpg"):
        assert first[name] == (geo_root / name).read_bytes()
    train = (geo_root / "train.csv").read_text().split("\n")
    assert first["train.csv"].decode().split("\n")[:17] == train[:17]


def test_other_seed_differs(tmp_path: Path) -> None:
    first, other = (
        _contents(_write(tmp_path / "a", num_images=20)),
        _contents(_write(tmp_path / "b", num_images=20, seed=1)),
    )
    assert first.keys() == other.keys()
    images = [name for name in first if name.endswith(".jpg")]
    assert all(first[name] != other[name] for name in images)
    for split in SPLITS:
        assert first[f"{split}.csv"] != other[f"{split}.csv"]


def test_complete_dataset_is_reused(tmp_path: Path) -> None:
    root = _write(tmp_path / "data", num_images=20)
    _age(root)
    before = _mtimes(root)
    assert _write(root, num_images=20) == root
    assert _mtimes(root) == before


def test_incomplete_dataset_is_rewritten(tmp_path: Path) -> None:
    root = _write(tmp_path / "data", num_images=20)
    reference = _contents(root)
    # An interrupted write: no marker, one image missing, one cut short and a CSV file cut short.
    (root / ".complete").unlink()
    (root / "images" / "000005.jpg").unlink()
    cut = root / "images" / "000003.jpg"
    cut.write_bytes(cut.read_bytes()[:20])
    (root / "val.csv").write_text("path,latitude\n")
    _age(root)
    _write(root, num_images=20)
    assert _contents(root) == reference
    assert all(mtime > 1_000_000_000 for mtime in _mtimes(root).values())


@pytest.mark.parametrize("other", [{"num_images": 21}, {"seed": 1}, {"size": 48}])
def test_dataset_with_other_options_is_refused(other: dict[str, int], tmp_path: Path) -> None:
    root = _write(tmp_path / "data", num_images=20)
    options = {"num_images": 20, "size": SIZE, "seed": 0} | other
    with pytest.raises(DataError, match=re.escape(str(root))):
        write_synthetic_geo(root, **options)


@pytest.mark.parametrize("bad", [{"num_images": 2}, {"size": 16}])
def test_options_out_of_range_are_refused(bad: dict[str, int], tmp_path: Path) -> None:
    with pytest.raises(DataError, match=next(iter(bad))):
        write_synthetic_geo(tmp_path / "data", **({"num_images": 20} | bad))
    assert not (tmp_path / "data" / ".complete").exists()
