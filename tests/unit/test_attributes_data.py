"""``AttributeDataModule``: CelebA splits, the labeled share for distillation, extra unlabeled images, and the
positive rates the task weighs its loss with."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobivision.data.synthetic import FACE_ATTRIBUTES, write_synthetic_faces
from mobivision.errors import ConfigError, DataError
from mobivision.tasks.attributes_data import AttributeDataModule

NUM_TRAIN = 80  # write_synthetic_faces puts 80 % of the images in train


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_faces(tmp_path_factory.mktemp("faces"), num_images=100, size=32, wild_size=48)


def _module(root: Path, **options) -> AttributeDataModule:
    data = AttributeDataModule(root=str(root), resolution=32, batch_size=4, num_workers=0, **options)
    data.setup("fit")
    return data


def _unlabeled(records) -> list[bool]:
    return [all(math.isnan(v) for v in r.label) for r in records]


def test_reads_the_chosen_attributes_in_order(faces: Path) -> None:
    data = _module(faces, attributes=["Smiling", "Bangs"])
    assert data.class_names == ["Smiling", "Bangs"]
    train = data.datasets["train"].records
    assert len(train) == NUM_TRAIN and len(data.datasets["val"].records) == 10
    assert all(len(r.label) == 2 and set(r.label) <= {0.0, 1.0} for r in train)
    sample = data.datasets["train"][0]
    assert sample["image"].shape == (3, 32, 32) and sample["target"].tolist() == list(train[0].label)


def test_positive_rate_counts_labeled_images_only(faces: Path) -> None:
    full = _module(faces)
    labels = np.array([r.label for r in full.datasets["train"].records])
    assert full.class_names == list(FACE_ATTRIBUTES)
    assert full.positive_rate() == pytest.approx(labels.mean(0).tolist(), abs=1e-6)
    assert full.task_inputs() == {"attribute_names": list(FACE_ATTRIBUTES), "positive_rate": full.positive_rate()}

    part = _module(faces, labeled_fraction=0.25)
    records = part.datasets["train"].records
    known = np.array([r.label for r, u in zip(records, _unlabeled(records), strict=True) if not u])
    assert part.positive_rate() == pytest.approx(known.mean(0).tolist(), abs=1e-6)


def test_labeled_fraction_is_a_fixed_share_chosen_by_the_seed(faces: Path) -> None:
    first = _module(faces, labeled_fraction=0.25)
    again = _module(faces, labeled_fraction=0.25)
    other = _module(faces, labeled_fraction=0.25, label_seed=1)
    records = first.datasets["train"].records
    assert len(records) == NUM_TRAIN  # the unlabeled images stay, for the teacher
    assert sum(not u for u in _unlabeled(records)) == 20 and first.unlabeled_count == 60
    assert _unlabeled(records) == _unlabeled(again.datasets["train"].records)
    assert _unlabeled(records) != _unlabeled(other.datasets["train"].records)
    full = {r.image_id: r.label for r in _module(faces).datasets["train"].records}
    assert all(r.label == full[r.image_id] for r, u in zip(records, _unlabeled(records), strict=True) if not u)


def test_keep_unlabeled_false_trains_on_the_labeled_share_only(faces: Path) -> None:
    kept = _module(faces, labeled_fraction=0.25)
    alone = _module(faces, labeled_fraction=0.25, keep_unlabeled=False)
    records = kept.datasets["train"].records
    labeled = [r for r, u in zip(records, _unlabeled(records), strict=True) if not u]
    assert alone.datasets["train"].records == labeled and alone.unlabeled_count == 0


def test_unlabeled_dir_adds_every_image_below_it(faces: Path, tmp_path: Path) -> None:
    for name in ("a.png", "nested/b.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    data = _module(faces, unlabeled_dir=str(tmp_path))
    extra = data.datasets["train"].records[NUM_TRAIN:]
    assert [r.path for r in extra] == [tmp_path / "a.png", tmp_path / "nested" / "b.jpg"]
    assert data.unlabeled_count == 2 and all(_unlabeled(extra))
    assert data.datasets["train"][NUM_TRAIN]["target"].isnan().all()


def test_bad_options_are_refused(faces: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"labeled_fraction must be in \(0, 1\], got 0"):
        _module(faces, labeled_fraction=0)
    with pytest.raises(ConfigError, match=r"unlabeled_dir adds unlabeled images, but data\.keep_unlabeled=false"):
        _module(faces, unlabeled_dir=str(tmp_path), keep_unlabeled=False)
    with pytest.raises(ConfigError, match=r"data.format must be one of \('celeba', 'csv'\), got 'cub'"):
        _module(faces, format="cub")
    with pytest.raises(DataError, match=f"{tmp_path / 'empty'}: no image files"):
        (tmp_path / "empty").mkdir()
        _module(faces, unlabeled_dir=str(tmp_path / "empty"))


def test_csv_format_reads_split_files_under_root(tmp_path: Path) -> None:
    for name in ("x.png", "y.png"):
        Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / name)
    (tmp_path / "train.csv").write_text("path,Hat,Glasses\nx.png,1,-1\ny.png,-1,1\n")
    (tmp_path / "val.csv").write_text("path,Hat,Glasses\ny.png,0,1\n")
    data = _module(tmp_path, format="csv", train_split="train.csv", val_split="val.csv", test_split=None)
    assert data.class_names == ["Hat", "Glasses"]
    assert [r.label for r in data.datasets["train"].records] == [(1.0, 0.0), (0.0, 1.0)]
    assert [r.label for r in data.datasets["val"].records] == [(0.0, 1.0)]
    assert data.positive_rate() == [0.5, 0.5]
