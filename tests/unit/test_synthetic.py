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


# --- write_shapes_detection: COCO json + JPEGs --------------------------------------------------------------------

DET_SIZE = 64
DET_OPTIONS = {"num_train": 40, "num_val": 10, "size": DET_SIZE, "empty_fraction": 0.2}


def _write_detection(root: Path, **options: object) -> Path:
    from mobivision.data.synthetic import write_shapes_detection

    return write_shapes_detection(root, **{**DET_OPTIONS, **options})


def _detection_contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def detection_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_detection(tmp_path_factory.mktemp("shapes_detection") / "data")


def _load_coco(file: Path):
    import contextlib
    import io

    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(file))


def test_detection_writes_valid_coco(detection_root: Path) -> None:
    from mobivision.data.coco import read_coco

    empties = 0
    for split, count in (("train", 40), ("val", 10)):
        coco = _load_coco(detection_root / "annotations" / f"instances_{split}.json")
        assert sorted(coco.getImgIds()) == list(range(1, count + 1))
        assert [(c["id"], c["name"]) for c in coco.loadCats(coco.getCatIds())] == [
            (1, "circle"),
            (2, "square"),
            (3, "triangle"),
        ]
        for image in coco.loadImgs(coco.getImgIds()):
            assert (image["width"], image["height"]) == (DET_SIZE, DET_SIZE)
            with Image.open(detection_root / split / image["file_name"]) as file:
                assert (file.format, file.size, file.mode) == ("JPEG", (DET_SIZE, DET_SIZE), "RGB")
        anns = coco.loadAnns(coco.getAnnIds())
        assert len({a["id"] for a in anns}) == len(anns) > count
        for ann in anns:
            x, y, w, h = ann["bbox"]
            assert ann["iscrowd"] == 0 and ann["category_id"] in (1, 2, 3) and ann["image_id"] in coco.imgs
            assert w >= 1 and h >= 1 and x >= 0 and y >= 0 and x + w <= DET_SIZE and y + h <= DET_SIZE, ann
            assert 0 < ann["area"] <= w * h
        empty = [i for i in coco.getImgIds() if not coco.getAnnIds(imgIds=[i])]
        assert len(empty) < count // 2, f"{split}: {len(empty)} empty images"
        empties += len(empty)
        data = read_coco(detection_root / "annotations" / f"instances_{split}.json", detection_root / split)
        assert len(data.records) == count and sum(len(r.boxes) for r in data.records) == len(anns)
    assert empties > 0, "no image without shapes (empty_fraction 0.2 over 50 images)"


def test_detection_same_seed_is_identical(detection_root: Path, tmp_path: Path) -> None:
    again = _write_detection(tmp_path / "again")
    assert _detection_contents(again) == _detection_contents(detection_root)
    other = _write_detection(tmp_path / "other", seed=1)
    name = "annotations/instances_train.json"
    assert _detection_contents(other)[name] != _detection_contents(detection_root)[name]


def test_detection_files_match_the_exposed_drawing(detection_root: Path) -> None:
    from mobivision.data.synthetic import detection_image_rng, draw_detection_image

    coco = _load_coco(detection_root / "annotations" / "instances_val.json")
    for index in range(10):
        image, objects = draw_detection_image(
            detection_image_rng(0, "val", index), size=DET_SIZE, empty_fraction=DET_OPTIONS["empty_fraction"]
        )
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[index + 1]))
        assert [a["bbox"] for a in anns] == [list(o.bbox) for o in objects]
        assert [a["category_id"] for a in anns] == [o.category_id for o in objects]
        with Image.open(detection_root / "val" / f"{index + 1:06d}.jpg") as file:
            written = np.asarray(file.convert("RGB"), dtype=np.float64)
        drawn = np.asarray(image, dtype=np.float64)
        # JPEG (quality 95, chroma subsampled) blurs the pixel noise; 4x4 block means agree closely.
        blocks = [a.reshape(DET_SIZE // 4, 4, DET_SIZE // 4, 4, 3).mean(axis=(1, 3)) for a in (written, drawn)]
        assert np.abs(blocks[0] - blocks[1]).mean() < 2


@pytest.mark.parametrize("shape", ["circle", "square", "triangle", "ring", "diamond", "cross"])
def test_detection_boxes_are_tight(shape: str) -> None:
    from mobivision.data.synthetic import draw_detection_image

    for seed in range(8):
        image, (obj,) = draw_detection_image(
            np.random.default_rng(seed), size=DET_SIZE, classes=(shape,), max_objects=1, empty_fraction=0, clutter=0
        )
        pixels = np.asarray(image)
        mask = (pixels == obj.color).all(axis=-1)
        x, y, w, h = obj.bbox
        inside = np.zeros_like(mask)
        inside[y : y + h, x : x + w] = True
        assert not (mask & ~inside).any(), f"{shape} seed {seed}: shape colour outside its box {obj.bbox}"
        box = mask[y : y + h, x : x + w]
        assert box[0].any() and box[-1].any() and box[:, 0].any() and box[:, -1].any(), f"{shape}: loose box"
        assert mask.sum() == obj.area
        if shape == "triangle":  # extent sqrt(3) r x 1.5 r, not the nominal 2r square
            assert h < 0.95 * w or y + h == DET_SIZE or y == 0 or x == 0 or x + w == DET_SIZE


def test_detection_objects_respect_sizes_and_overlap() -> None:
    from mobivision.data.synthetic import draw_detection_image

    counts = []
    for seed in range(30):
        _, objects = draw_detection_image(np.random.default_rng(seed), size=DET_SIZE, max_overlap=0.3)
        counts.append(len(objects))
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h in (o.bbox for o in objects)], dtype=np.float64)
        for o in objects:
            assert max(o.bbox[2:]) <= 0.5 * DET_SIZE + 1
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                wh = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None)
                inter = wh[0] * wh[1]
                union = np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2]) - inter
                assert inter / union <= 0.3 + 1e-9
    assert max(counts) >= 3 and min(counts) <= 1


def test_detection_test_split_is_optional(tmp_path: Path) -> None:
    root = _write_detection(tmp_path / "data", num_train=3, num_val=2, num_test=2)
    coco = _load_coco(root / "annotations" / "instances_test.json")
    assert sorted(coco.getImgIds()) == [1, 2] and len(list((root / "test").glob("*.jpg"))) == 2
    plain = _write_detection(tmp_path / "plain", num_train=3, num_val=2)
    assert not (plain / "test").exists() and not (plain / "annotations" / "instances_test.json").exists()


def test_detection_complete_tree_is_reused_and_other_options_refused(tmp_path: Path) -> None:
    root = _write_detection(tmp_path / "data", num_train=4, num_val=2)
    _age(root)
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.jpg")}
    assert _write_detection(root, num_train=4, num_val=2) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.jpg")} == before
    with pytest.raises(MobivisionError, match=str(root)):
        _write_detection(root, num_train=4, num_val=2, max_objects=2)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.jpg")} == before


# --- write_fine_grained_shapes: one bird, classes told apart by small details ------------------------------------

FG_PER_CLASS = 20  # 14 / 3 / 3
FG_SIZE = 64


def _write_fine_grained(root: Path, **options: object) -> Path:
    from mobivision.data.synthetic import write_fine_grained_shapes

    return write_fine_grained_shapes(root, **{"images_per_class": FG_PER_CLASS, "size": FG_SIZE, **options})


@pytest.fixture(scope="module")
def fine_grained_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_fine_grained(tmp_path_factory.mktemp("fine_grained") / "data")


def _load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert (image.size, image.mode) == ((FG_SIZE, FG_SIZE), "RGB")
        return np.asarray(image).astype(np.int64)


def test_fine_grained_tree_and_classes(fine_grained_root: Path) -> None:
    from mobivision.data.synthetic import BIRD_SPECIES

    expected = sorted(f"spot_{spot}_{color}" for spot in ("front", "back") for color in ("red", "blue", "yellow"))
    assert [s.name for s in BIRD_SPECIES[:6]] == [
        "spot_front_red",
        "spot_back_red",
        "spot_front_blue",
        "spot_back_blue",
        "spot_front_yellow",
        "spot_back_yellow",
    ]
    assert len({s.name for s in BIRD_SPECIES}) == len(BIRD_SPECIES) == 12
    records, names = read_image_folder(fine_grained_root / "train")
    assert names == expected and len(records) == 6 * EXPECTED["train"]
    for split, count in EXPECTED.items():
        for name in expected:
            files = sorted((fine_grained_root / split / name).glob("*.png"))
            assert [p.name for p in files] == [f"{name}_{i:04d}.png" for i in range(count)]


def test_fine_grained_is_reproducible(fine_grained_root: Path, tmp_path: Path) -> None:
    assert _contents(_write_fine_grained(tmp_path / "again")) == _contents(fine_grained_root)
    first, other = _contents(fine_grained_root), _contents(_write_fine_grained(tmp_path / "other", seed=1))
    assert first.keys() == other.keys()
    assert all(first[name] != other[name] for name in first)


def _spot(image: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    return (image == color).all(axis=-1)


def test_fine_grained_spot_is_the_class_detail(fine_grained_root: Path) -> None:
    from mobivision.data.synthetic import SPOT_COLORS

    for split in EXPECTED:
        for folder in sorted((fine_grained_root / split).iterdir()):
            _, spot, color = folder.name.split("_")
            for path in sorted(folder.glob("*.png")):
                image = _load(path)
                mask = _spot(image, SPOT_COLORS[color])
                rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
                # At least 5 px across, so it survives a random-resized crop of scale 0.6-1 resized to 64 px.
                assert mask.sum() >= 25 and min(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 >= 5, path
                others = [c for name, c in SPOT_COLORS.items() if name != color]
                assert not any(_spot(image, c).any() for c in others), f"{path}: a spot of another colour"
                body = _modal_mask(image)
                offset = np.argwhere(mask)[:, 1].mean() - np.argwhere(body)[:, 1].mean()
                assert (offset > 2) if spot == "front" else (offset < -2), f"{path}: spot {offset:+.1f} px"


def test_fine_grained_classes_share_scenes_and_global_statistics(fine_grained_root: Path) -> None:
    classes = sorted(p.name for p in (fine_grained_root / "train").iterdir())
    means = {name: [] for name in classes}
    for i in range(EXPECTED["train"]):
        images = {name: _load(fine_grained_root / "train" / name / f"{name}_{i:04d}.png") for name in classes}
        for name, image in images.items():
            means[name].append(image.reshape(-1, 3).mean(axis=0))
            changed = (image != images[classes[0]]).any(axis=-1).mean()
            assert name == classes[0] or 0.005 < changed < 0.06, f"{name} {i}: {changed:.3f} of the pixels differ"
    per_class = np.array([np.mean(m, axis=0) for m in means.values()])
    spread = np.std(np.concatenate(list(means.values())), axis=0)
    assert spread.min() > 10, f"scenes barely vary: std of the image means {spread}"
    assert np.abs(per_class - per_class.mean(axis=0)).max() < 3, f"class mean colours differ: {per_class}"


def test_fine_grained_stripe_and_species_share_the_scene() -> None:
    from mobivision.data.synthetic import BIRD_SPECIES, BirdSpecies, draw_bird

    assert [s.stripe for s in BIRD_SPECIES] == [False] * 6 + [True] * 6
    for seed in range(10):
        plain, striped = (
            np.asarray(draw_bird(np.random.default_rng(seed), BirdSpecies("back", "blue", stripe)), dtype=np.int64)
            for stripe in (False, True)
        )
        bar = (plain != striped).any(axis=-1)
        assert 15 <= bar.sum() < 0.03 * FG_SIZE**2, f"seed {seed}: bar of {bar.sum()} px"
        body = _modal_mask(plain)
        assert body[bar].all(), f"seed {seed}: the bar leaves the body"
        contrast = np.abs(striped[bar].mean(axis=0) - plain[bar].mean(axis=0)).mean()
        assert contrast > 40, f"seed {seed}: bar contrast {contrast:.0f}"


def test_fine_grained_reuse_and_other_options(tmp_path: Path) -> None:
    root = _write_fine_grained(tmp_path / "data", images_per_class=4, num_classes=3)
    assert sorted(p.name for p in (root / "train").iterdir()) == ["spot_back_red", "spot_front_blue", "spot_front_red"]
    _age(root)
    before = _mtimes(root)
    assert _write_fine_grained(root, images_per_class=4, num_classes=3) == root
    assert _mtimes(root) == before
    with pytest.raises(MobivisionError, match=str(root)):
        _write_fine_grained(root, images_per_class=4, num_classes=4)
    with pytest.raises(MobivisionError, match=str(root)):
        write_shapes_classification(root, images_per_class=4, size=FG_SIZE)
    assert _mtimes(root) == before


@pytest.mark.parametrize(("per_class", "classes"), [(2, 6), (20, 1), (20, 13)])
def test_fine_grained_refuses_bad_options(tmp_path: Path, per_class: int, classes: int) -> None:
    with pytest.raises(MobivisionError, match="num_classes"):
        _write_fine_grained(tmp_path, images_per_class=per_class, num_classes=classes)
    assert not any(tmp_path.iterdir())
