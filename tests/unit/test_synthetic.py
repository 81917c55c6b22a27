"""Unit tests of ``mobivision.data.synthetic``: the shapes dataset written as a real ImageFolder tree.

The writer promises a fixed split of each class, reproducibility from the seed, reuse of a complete tree
(the ``.complete`` marker is written last) and one contrasting shape per image, so a classifier can learn it.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mobivision.data.image_folder import read_image_folder
from mobivision.data.synthetic import SHAPES, draw_shape, write_shapes_classification
from mobivision.errors import MobivisionError

SIZE = 32
PER_CLASS = 20  # splits 0.7 / 0.15 / 0.15 -> 14 / 3 / 3
EXPECTED = {"train": 14, "val": 3, "test": 3}


def _write(root: Path, *, seed: int = 0) -> Path:
    return write_shapes_classification(root, images_per_class=PER_CLASS, size=SIZE, seed=seed)


def _contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*.png"))}


def _age(root: Path) -> None:
    """Set every PNG's mtime to 1 s after the epoch, so any rewrite shows whatever the clock resolution."""
    for path in root.rglob("*.png"):
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))


@pytest.fixture(scope="module")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tree written with seed 0, shared by the read-only tests (tests that modify it write their own)."""
    return _write(tmp_path_factory.mktemp("shapes") / "data")


def test_writes_expected_tree(shapes_root: Path) -> None:
    assert (shapes_root / ".complete").is_file()
    assert sorted(p.name for p in shapes_root.iterdir() if p.is_dir()) == sorted(EXPECTED)
    for split, count in EXPECTED.items():
        assert sorted(p.name for p in (shapes_root / split).iterdir()) == sorted(SHAPES)
        for shape in SHAPES:
            files = sorted((shapes_root / split / shape).iterdir())
            assert [p.name for p in files] == [f"{shape}_{i:04d}.png" for i in range(count)]
    with Image.open(shapes_root / "train" / "ring" / "ring_0000.png") as image:
        assert (image.size, image.mode) == ((SIZE, SIZE), "RGB")


def test_tree_reads_as_image_folder(shapes_root: Path) -> None:
    records, names = read_image_folder(shapes_root / "train")
    assert names == sorted(SHAPES)
    assert len(records) == EXPECTED["train"] * len(SHAPES)
    _, val_names = read_image_folder(shapes_root / "val", class_names=names)
    assert val_names == names


def test_same_seed_is_byte_identical(shapes_root: Path, tmp_path: Path) -> None:
    again = _contents(_write(tmp_path / "again", seed=0))
    assert again == _contents(shapes_root)


def test_other_seed_differs(shapes_root: Path, tmp_path: Path) -> None:
    first, other = _contents(shapes_root), _contents(_write(tmp_path / "other", seed=1))
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first)


def test_complete_tree_is_reused(tmp_path: Path) -> None:
    root = _write(tmp_path / "data")
    _age(root)
    before = _mtimes(root)
    assert _write(root) == root
    assert _mtimes(root) == before


def test_incomplete_tree_is_rewritten(tmp_path: Path) -> None:
    root = _write(tmp_path / "data")
    reference = _contents(root)
    # An interrupted write: no marker, one file missing and one cut short.
    (root / ".complete").unlink()
    (root / "val" / "circle" / "circle_0001.png").unlink()
    cut = root / "train" / "cross" / "cross_0003.png"
    cut.write_bytes(cut.read_bytes()[:20])
    _age(root)
    _write(root)
    assert (root / ".complete").is_file()
    assert _contents(root) == reference
    assert all(mtime > 1_000_000_000 for mtime in _mtimes(root).values())


def test_tree_with_other_options_is_not_reused_silently(tmp_path: Path) -> None:
    # The marker records seed, images_per_class and size; a complete tree written with other options must not
    # be returned as if it matched (e.g. ``data.synthetic.images_per_class=40`` after a run with 20):
    # either it is rewritten to the new options or the call fails naming the folder.
    root = _write(tmp_path / "data")
    try:
        write_shapes_classification(root, images_per_class=2 * PER_CLASS, size=SIZE, seed=0)
    except MobivisionError as exc:
        assert str(root) in str(exc)
    else:
        assert len(list((root / "train" / "circle").glob("*.png"))) == 2 * EXPECTED["train"]


@pytest.mark.parametrize("per_class", [4, 10, 20, 30, 50])
def test_images_per_class_is_the_total_over_splits(per_class: int, tmp_path: Path) -> None:
    root = write_shapes_classification(tmp_path, images_per_class=per_class, size=8, classes=("circle",))
    counts = {split: len(list((root / split / "circle").glob("*.png"))) for split in EXPECTED}
    assert sum(counts.values()) == per_class, counts
    assert min(counts.values()) >= 1, counts


def _modal_mask(image: np.ndarray) -> np.ndarray:
    """Pixels of the image's most frequent colour: the flat shape fill (the background is noisy)."""
    _, inverse, counts = np.unique(image.reshape(-1, 3), axis=0, return_inverse=True, return_counts=True)
    return (inverse.reshape(-1) == counts.argmax()).reshape(image.shape[:2])


def test_each_image_shows_a_contrasting_shape(shapes_root: Path) -> None:
    for shape in SHAPES:
        contrasts = []
        for path in sorted((shapes_root / "train" / shape).glob("*.png")):
            image = np.asarray(Image.open(path).convert("RGB"))
            mask = _modal_mask(image)
            brightness = image.astype(np.float64).mean(axis=-1)
            assert brightness[~mask].std() > 2, f"{path}: uniform background"
            assert mask.mean() > 0.03, f"{path}: no shape of a single colour"
            contrasts.append(abs(brightness[mask].mean() - brightness[~mask].mean()))
        assert min(contrasts) > 25, f"{shape}: a shape barely differs from its background ({min(contrasts):.1f})"
        assert np.mean(contrasts) > 60, f"{shape}: low mean contrast {np.mean(contrasts):.1f}"


def _shape_mask(shape: str) -> np.ndarray:
    image = Image.new("L", (SIZE, SIZE), 0)
    draw_shape(ImageDraw.Draw(image), shape, center=(16, 16), radius=10, color=255)
    return np.asarray(image) > 0


def test_shapes_differ_from_each_other() -> None:
    masks = {shape: _shape_mask(shape) for shape in SHAPES}
    for shape, mask in masks.items():
        assert mask.sum() > 50, f"{shape}: almost nothing drawn"
        assert not mask[:5].any() and not mask[-5:].any(), f"{shape} leaves its box (radius 10 at 16)"
        assert not mask[:, :5].any() and not mask[:, -5:].any(), f"{shape} leaves its box (radius 10 at 16)"
    for a, b in itertools.combinations(SHAPES, 2):
        iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
        assert iou < 0.9, f"{a} and {b} look alike (IoU {iou:.2f})"
    assert not masks["ring"][16, 16], "the ring has a hole"
    assert masks["circle"][16, 16]


def test_draw_shape_unknown_name() -> None:
    draw = ImageDraw.Draw(Image.new("L", (SIZE, SIZE)))
    with pytest.raises(ValueError, match="hexagon"):
        draw_shape(draw, "hexagon", center=(16, 16), radius=10, color=255)
