"""Unit tests of ``mobivision.data.synthetic.faces``: a synthetic CelebA in the official on-disk format.

The writer promises CelebA's exact files (aligned and in-the-wild images, attribute, box and partition lists),
attributes drawn with their priors, reproducibility from the seed, reuse of a complete dataset (the ``.complete``
marker is written last) and attributes that are visible in the pixels, so a small network can learn them.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobivision.data.synthetic import (
    FACE_ATTRIBUTE_PRIORS,
    FACE_ATTRIBUTES,
    draw_attributes,
    draw_face,
    write_synthetic_faces,
)
from mobivision.errors import DataError

NUM, SIZE, WILD = 500, 64, 96
SPLITS = {"train": 400, "val": 50, "test": 50}  # contiguous blocks of 80 / 10 / 10 percent
NAMES = [f"{i:06d}.jpg" for i in range(1, NUM + 1)]
LIST_FILES = ("list_attr_celeba.txt", "list_bbox_celeba.txt", "list_eval_partition.txt")


def _write(root: Path, *, num_images: int = NUM, seed: int = 0) -> Path:
    return write_synthetic_faces(root, num_images=num_images, size=SIZE, wild_size=WILD, seed=seed)


def _lines(root: Path, name: str) -> list[str]:
    text = (root / name).read_text()
    assert text.endswith("\n") and not text.endswith("\n\n"), f"{name}: one newline after the last line"
    return text[:-1].split("\n")


def _labels(root: Path) -> np.ndarray:
    """``list_attr_celeba.txt`` as a boolean ``images x attributes`` array."""
    return np.array([[v == "1" for v in line.split()[1:]] for line in _lines(root, "list_attr_celeba.txt")[2:]])


def _contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _mtimes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def _age(root: Path) -> None:
    """Set every file's mtime to 1 s after the epoch, so any rewrite shows whatever the clock resolution."""
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(1_000_000_000, 1_000_000_000))


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(np.float64)


def _auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random image with the attribute scores above a random one without (ties count half)."""
    pos, neg = score[positive][:, None], score[~positive][None, :]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


@pytest.fixture(scope="module")
def faces_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dataset written with seed 0, shared by the read-only tests (tests that modify one write their own)."""
    return _write(tmp_path_factory.mktemp("faces") / "celeba")


@pytest.fixture(scope="module")
def aligned(faces_root: Path) -> np.ndarray:
    """All aligned images, ``N x SIZE x SIZE x 3`` floats."""
    return np.stack([_rgb(faces_root / "img_align_celeba" / name) for name in NAMES])


def test_attributes_are_official_celeba_names_with_imbalanced_priors() -> None:
    from mobivision.data.celeba import CELEBA_ATTRIBUTES

    assert 6 <= len(FACE_ATTRIBUTES) <= 10
    assert tuple(FACE_ATTRIBUTE_PRIORS) == FACE_ATTRIBUTES
    assert list(FACE_ATTRIBUTES) == [name for name in CELEBA_ATTRIBUTES if name in FACE_ATTRIBUTES]
    priors = list(FACE_ATTRIBUTE_PRIORS.values())
    assert all(0.08 <= p <= 0.6 for p in priors), priors
    assert sum(0.1 <= p <= 0.25 for p in priors) >= 3, priors  # imbalanced, like most CelebA attributes
    assert any(p >= 0.4 for p in priors), priors


def test_writes_official_layout(faces_root: Path) -> None:
    assert (
        faces_root / ".complete"
    ).read_text() == f"celeba_faces seed=0 num_images={NUM} size={SIZE} wild_size={WILD}\n"
    assert sorted(p.name for p in faces_root.iterdir()) == sorted(
        [".complete", "img_align_celeba", "img_celeba", *LIST_FILES]
    )
    for folder in ("img_align_celeba", "img_celeba"):
        assert sorted(p.name for p in (faces_root / folder).iterdir()) == NAMES
    with Image.open(faces_root / "img_align_celeba" / "000001.jpg") as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (SIZE, SIZE))


def test_attribute_list_format(faces_root: Path) -> None:
    lines = _lines(faces_root, "list_attr_celeba.txt")
    assert lines[0] == str(NUM)
    assert lines[1] == "".join(f"{name} " for name in FACE_ATTRIBUTES)  # single spaces, one trailing like CelebA
    assert len(lines) == NUM + 2
    row = re.compile(rf"^\d{{6}}\.jpg(?: -1|  1){{{len(FACE_ATTRIBUTES)}}}$")
    for name, line in zip(NAMES, lines[2:], strict=True):
        assert row.match(line), line
        fields = line.split()
        assert fields[0] == name
        assert line == name + "".join(f" {int(v):2d}" for v in fields[1:])  # right-aligned in width 2


def test_partition_list_format(faces_root: Path) -> None:
    # ``<file> 0|1|2``, no header: train, then val, then test as contiguous blocks (like the real split).
    values = [str(k) for k, count in enumerate(SPLITS.values()) for _ in range(count)]
    assert _lines(faces_root, "list_eval_partition.txt") == [f"{n} {v}" for n, v in zip(NAMES, values, strict=True)]


def test_box_list_format_and_boxes_locate_the_face(faces_root: Path) -> None:
    lines = _lines(faces_root, "list_bbox_celeba.txt")
    assert lines[:2] == [str(NUM), "image_id x_1 y_1 width height"]
    assert len(lines) == NUM + 2
    errors, shifted_errors = [], []
    for name, line in zip(NAMES, lines[2:], strict=True):
        fields = line.split()
        assert fields[0] == name and len(fields) == 5, line
        x, y, w, h = (int(v) for v in fields[1:])
        assert line == f"{name} {x:5d} {y:3d} {w:3d} {h:3d}"  # the real file's right-aligned columns
        wild = _rgb(faces_root / "img_celeba" / name)
        height, width = wild.shape[:2]
        assert min(width, height) >= 0.8 * WILD - 1 and max(width, height) <= 1.25 * WILD + 1, (name, wild.shape)
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= width and y + h <= height, (line, wild.shape)
        if len(errors) < 40:  # the box holds the aligned face, resized
            face = _rgb(faces_root / "img_align_celeba" / name)
            crop = Image.fromarray(wild[y : y + h, x : x + w].astype(np.uint8)).resize((SIZE, SIZE))
            errors.append(np.abs(np.asarray(crop, dtype=np.float64) - face).mean())
            dx = 4 if x + w + 4 <= width else -4
            off = Image.fromarray(wild[y : y + h, x + dx : x + dx + w].astype(np.uint8)).resize((SIZE, SIZE))
            shifted_errors.append(np.abs(np.asarray(off, dtype=np.float64) - face).mean())
    assert max(errors) < 15, max(errors)
    assert np.median(shifted_errors) > 2 * np.median(errors), (np.median(shifted_errors), np.median(errors))


def test_attribute_frequencies_near_priors(faces_root: Path) -> None:
    labels = _labels(faces_root)
    assert labels.shape == (NUM, len(FACE_ATTRIBUTES))
    for k, name in enumerate(FACE_ATTRIBUTES):
        prior = FACE_ATTRIBUTE_PRIORS[name]
        tolerance = 4 * math.sqrt(prior * (1 - prior) / NUM)
        assert abs(labels[:, k].mean() - prior) <= tolerance, (name, labels[:, k].mean(), prior)


def test_attributes_are_drawn_independently(faces_root: Path) -> None:
    correlation = np.corrcoef(_labels(faces_root).T.astype(np.float64))
    off_diagonal = np.abs(correlation[~np.eye(len(FACE_ATTRIBUTES), dtype=bool)])
    assert off_diagonal.max() < 0.2, off_diagonal.max()


def test_same_seed_is_byte_identical_and_images_depend_only_on_seed_and_index(faces_root: Path, tmp_path: Path) -> None:
    first, again = _contents(_write(tmp_path / "a", num_images=12)), _contents(_write(tmp_path / "b", num_images=12))
    assert first == again
    for name in ("img_align_celeba/000001.jpg", "img_celeba/000012.jpg"):
        assert first[name] == (faces_root / name).read_bytes()


def test_other_seed_differs(tmp_path: Path) -> None:
    first, other = (
        _contents(_write(tmp_path / "a", num_images=12)),
        _contents(_write(tmp_path / "b", num_images=12, seed=1)),
    )
    assert first.keys() == other.keys()
    images = [name for name in first if name.endswith(".jpg")]
    assert all(first[name] != other[name] for name in images)
    assert first["list_attr_celeba.txt"] != other["list_attr_celeba.txt"]


def test_complete_dataset_is_reused(tmp_path: Path) -> None:
    root = _write(tmp_path / "data", num_images=12)
    _age(root)
    before = _mtimes(root)
    assert _write(root, num_images=12) == root
    assert _mtimes(root) == before


def test_incomplete_dataset_is_rewritten(tmp_path: Path) -> None:
    root = _write(tmp_path / "data", num_images=12)
    reference = _contents(root)
    # An interrupted write: no marker, one image missing, one cut short and a list file cut short.
    (root / ".complete").unlink()
    (root / "img_celeba" / "000005.jpg").unlink()
    cut = root / "img_align_celeba" / "000003.jpg"
    cut.write_bytes(cut.read_bytes()[:20])
    (root / "list_attr_celeba.txt").write_text("12\n")
    _age(root)
    _write(root, num_images=12)
    assert _contents(root) == reference
    assert all(mtime > 1_000_000_000 for mtime in _mtimes(root).values())


@pytest.mark.parametrize("other", [{"num_images": 13}, {"seed": 1}, {"size": 48}, {"wild_size": 80}])
def test_dataset_with_other_options_is_refused(other: dict[str, int], tmp_path: Path) -> None:
    root = _write(tmp_path / "data", num_images=12)
    options = {"num_images": 12, "size": SIZE, "wild_size": WILD, "seed": 0} | other
    with pytest.raises(DataError, match=re.escape(str(root))):
        write_synthetic_faces(root, **options)


@pytest.mark.parametrize("bad", [{"num_images": 2}, {"size": 16}, {"wild_size": 8}])
def test_options_out_of_range_are_refused(bad: dict[str, int], tmp_path: Path) -> None:
    with pytest.raises(DataError, match=next(iter(bad))):
        write_synthetic_faces(tmp_path / "data", **({"num_images": 12} | bad))
    assert not (tmp_path / "data" / ".complete").exists()


@pytest.mark.parametrize("attribute", FACE_ATTRIBUTES)
def test_each_attribute_is_drawn_visibly_and_only_where_it_belongs(attribute: str) -> None:
    # The same generator state with and without the attribute: every random draw precedes the drawing, so the
    # two images differ only where the attribute is drawn, and clearly there (> 40 levels) in every image.
    changed, touched = [], []
    for index in range(40):
        others = draw_attributes(np.random.default_rng([1, index]))
        images = [
            np.asarray(draw_face(np.random.default_rng([2, index]), others | {attribute: on}, size=SIZE), np.int16)
            for on in (True, False)
        ]
        difference = np.abs(images[0] - images[1]).max(axis=-1)
        changed.append(int((difference > 40).sum()))
        touched.append(float((difference > 0).mean()))
    assert min(changed) >= 20, (attribute, min(changed))
    if attribute not in ("Pale_Skin", "Blond_Hair", "Wearing_Hat"):  # the local details
        assert max(touched) < 0.15, (attribute, max(touched))


def test_attributes_show_in_simple_pixel_statistics(faces_root: Path, aligned: np.ndarray) -> None:
    # Regions of the nominal face (64 px: centre (32, 36), half-width 16, half-height 20.5, eyes at row 35).
    labels = _labels(faces_root)
    brightness = aligned.mean(axis=-1)
    yellowness = (aligned[..., 0] + aligned[..., 1]) / 2 - aligned[..., 2]
    above_head = aligned[:, 3:9, 26:38].mean(axis=(1, 2))
    top_corners = aligned[:, 3:9, np.r_[0:6, 58:64]].mean(axis=(1, 2))
    statistics = {
        "Eyeglasses": (brightness[:, 28:40, 18:46] < 70).mean(axis=(1, 2)),  # dark frames round the eyes
        "Wearing_Hat": np.abs(above_head - top_corners).max(axis=-1),  # something other than background above
        "Blond_Hair": yellowness[:, 26:38, np.r_[11:15, 49:53]].mean(axis=(1, 2)),  # the hair beside the face
        "Pale_Skin": aligned[:, 38:44, 24:40, 2].mean(axis=(1, 2)),  # blue of the cheeks: near white skin
    }
    for name, statistic in statistics.items():
        positive = labels[:, FACE_ATTRIBUTES.index(name)]
        auc = _auc(statistic, positive)
        assert auc > 0.9, (name, auc, statistic[positive].mean(), statistic[~positive].mean())


def test_read_celeba_reads_the_synthetic_dataset(faces_root: Path) -> None:
    from mobivision.data.celeba import read_celeba

    labels = {
        line.split()[0]: tuple(1.0 if v == "1" else 0.0 for v in line.split()[1:])
        for line in _lines(faces_root, "list_attr_celeba.txt")[2:]
    }
    boxes = {
        line.split()[0]: tuple(int(v) for v in line.split()[1:])
        for line in _lines(faces_root, "list_bbox_celeba.txt")[2:]
    }
    start = 0
    for split, count in SPLITS.items():
        records, names = read_celeba(faces_root, split=split, images="aligned")
        assert names == list(FACE_ATTRIBUTES)
        assert [r.image_id for r in records] == NAMES[start : start + count]
        assert all(r.label == labels[r.image_id] and r.box is None for r in records)
        assert all(r.path == faces_root / "img_align_celeba" / r.image_id for r in records)
        wild, _ = read_celeba(faces_root, split=split, images="in_the_wild")
        assert [r.image_id for r in wild] == NAMES[start : start + count]
        for r in wild:
            x, y, w, h = boxes[r.image_id]
            assert r.box == (x, y, x + w, y + h) and r.path == faces_root / "img_celeba" / r.image_id
        start += count
    subset, names = read_celeba(faces_root, split="val", attributes=["Smiling", "Eyeglasses"])
    smiling, glasses = FACE_ATTRIBUTES.index("Smiling"), FACE_ATTRIBUTES.index("Eyeglasses")
    assert names == ["Smiling", "Eyeglasses"]
    assert all(r.label == (labels[r.image_id][smiling], labels[r.image_id][glasses]) for r in subset)
