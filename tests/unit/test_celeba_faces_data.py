"""The joint CelebA faces data: face boxes converted to COCO json, attributes as an image-level label set of the
detection dataset, their collation, and the label sets of ``CelebAFacesDataModule``."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from mobivision.data.celeba import write_celeba_face_annotations
from mobivision.data.coco import DetectionDataset, detection_collate, read_coco
from mobivision.data.detection_transforms import detection_eval_transform
from mobivision.data.synthetic import FACE_ATTRIBUTES, write_synthetic_faces
from mobivision.errors import DataError
from mobivision.tasks.attributes_data import AttributeDataModule
from mobivision.tasks.celeba_faces_data import CelebAFacesDataModule

RESOLUTION = 48
NUM_IMAGES = 40  # write_synthetic_faces: 32 train, 4 val, 4 test
CHOSEN = ["Smiling", "Bangs", "Eyeglasses"]  # not the file's order
MEAN, STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_faces(tmp_path_factory.mktemp("faces"), num_images=NUM_IMAGES, size=32, wild_size=48)


@pytest.fixture(scope="module")
def module(faces: Path) -> CelebAFacesDataModule:
    data = CelebAFacesDataModule(
        root=str(faces), attributes=CHOSEN, resolution=RESOLUTION, batch_size=4, num_workers=0, mean=MEAN, std=STD
    )
    data.setup("fit")
    return data


def _rows(root: Path, name: str, header_lines: int) -> dict[str, list[str]]:
    lines = (root / name).read_text().splitlines()[header_lines:]
    return {fields[0]: fields[1:] for fields in (line.split() for line in lines)}


def _boxes(root: Path) -> dict[str, list[float]]:
    """``list_bbox_celeba.txt`` as ``{file: [x, y, width, height]}``."""
    return {name: [float(v) for v in values] for name, values in _rows(root, "list_bbox_celeba.txt", 2).items()}


def _attributes(root: Path, wanted: list[str]) -> dict[str, list[float]]:
    """``list_attr_celeba.txt`` as ``{file: [1.0 / 0.0 per wanted attribute]}``."""
    names = (root / "list_attr_celeba.txt").read_text().splitlines()[1].split()
    columns = [names.index(name) for name in wanted]
    rows = _rows(root, "list_attr_celeba.txt", 2)
    return {file: [1.0 if values[c] == "1" else 0.0 for c in columns] for file, values in rows.items()}


def _split_files(root: Path, number: int) -> list[str]:
    return [file for file, (value,) in _rows(root, "list_eval_partition.txt", 0).items() if int(value) == number]


def _labeled_dataset(faces: Path, json_file: Path, labels: dict[str, dict[str, torch.Tensor]] | None):
    data = read_coco(json_file, faces / "img_celeba")
    transform = detection_eval_transform(resolution=RESOLUTION, mean=MEAN, std=STD)
    return DetectionDataset(data.records, transform=transform, annotation_file=json_file, image_labels=labels)


def test_json_has_one_face_box_per_image_as_listed_and_the_image_sizes(faces: Path, tmp_path: Path) -> None:
    out = write_celeba_face_annotations(faces, "val", tmp_path / "nested" / "val.json")
    dataset = json.loads(out.read_text())
    listed = _boxes(faces)
    files = _split_files(faces, 1)
    assert dataset["categories"] == [{"id": 1, "name": "face"}]
    assert [image["file_name"] for image in dataset["images"]] == files and len(files) == 4
    assert [image["id"] for image in dataset["images"]] == [1, 2, 3, 4]
    assert [a["image_id"] for a in dataset["annotations"]] == [1, 2, 3, 4]
    for image, annotation in zip(dataset["images"], dataset["annotations"], strict=True):
        with Image.open(faces / "img_celeba" / image["file_name"]) as picture:
            picture.load()
            assert (image["width"], image["height"]) == picture.size
        x, y, w, h = listed[image["file_name"]]
        assert annotation["bbox"] == [x, y, w, h]
        assert annotation["area"] == w * h and annotation["iscrowd"] == 0 and annotation["category_id"] == 1
    assert not [p for p in out.parent.iterdir() if p.name != "val.json"], "no temporary file is left behind"


def test_json_is_reused_while_up_to_date_and_rewritten_when_the_box_list_is_newer(faces: Path, tmp_path: Path) -> None:
    out = tmp_path / "train.json"
    write_celeba_face_annotations(faces, "train", out)
    fresh = out.read_text()
    out.write_text('{"stale": true}')  # newer than the lists: taken as up to date, not even read
    assert write_celeba_face_annotations(faces, "train", out) == out
    assert out.read_text() == '{"stale": true}'

    older = (faces / "list_bbox_celeba.txt").stat().st_mtime - 10
    os.utime(out, (older, older))  # now list_bbox_celeba.txt is newer than the json
    write_celeba_face_annotations(faces, "train", out)
    assert out.read_text() == fresh


def test_sample_carries_the_files_attributes_and_its_box_stays_in_the_image(module: CelebAFacesDataModule) -> None:
    faces = module.root
    truth = _attributes(faces, CHOSEN)
    train = module.datasets["train"]
    assert len(train) == 32 and module.attribute_names == CHOSEN
    assert (faces / "annotations_faces" / "celeba_faces_train.json").is_file()
    for index in range(len(train)):
        sample = train[index]
        name = Path(sample["meta"]["path"]).name
        assert sample["attributes"].dtype == torch.float32
        assert sample["attributes"].tolist() == truth[name], "flips and crops leave the attributes unchanged"
        assert sample["labeled"] == {"attributes": True}
        boxes = sample["target"]["boxes"]
        assert sample["image"].shape == (3, RESOLUTION, RESOLUTION)
        assert boxes.shape == (1, 4) and sample["target"]["labels"].tolist() == [1]  # the crop keeps the face
        assert (boxes >= 0).all() and (boxes <= RESOLUTION).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()


def test_eval_sample_box_is_the_listed_box_scaled_to_the_input(module: CelebAFacesDataModule) -> None:
    listed = _boxes(module.root)
    sample = module.datasets["val"][0]
    height, width = sample["meta"]["size"]
    x, y, w, h = listed[Path(sample["meta"]["path"]).name]
    sx, sy = RESOLUTION / width, RESOLUTION / height
    expected = [x * sx, y * sy, (x + w) * sx, (y + h) * sy]
    assert sample["target"]["boxes"][0].tolist() == pytest.approx(expected, abs=1e-3)


def test_image_without_a_label_entry_is_unlabeled_with_nan(faces: Path, tmp_path: Path) -> None:
    json_file = write_celeba_face_annotations(faces, "val", tmp_path / "val.json")
    truth = _attributes(faces, CHOSEN)
    files = _split_files(faces, 1)
    missing = files[1]
    labels = {name: torch.tensor(truth[name]) for name in files if name != missing}
    dataset = _labeled_dataset(faces, json_file, {"attributes": labels})
    samples = [dataset[i] for i in range(len(dataset))]
    assert [Path(s["meta"]["path"]).name for s in samples] == files
    assert [s["labeled"]["attributes"] for s in samples] == [name != missing for name in files]
    assert samples[1]["attributes"].shape == (len(CHOSEN),) and samples[1]["attributes"].isnan().all()
    assert samples[0]["attributes"].tolist() == truth[files[0]]

    batch = detection_collate(samples)
    assert batch["attributes"].shape == (4, len(CHOSEN)) and batch["attributes"].dtype == torch.float32
    assert batch["labeled"]["attributes"].dtype == torch.bool
    assert batch["labeled"]["attributes"].tolist() == [True, False, True, True]
    assert batch["attributes"][1].isnan().all() and not batch["attributes"][[0, 2, 3]].isnan().any()
    assert batch["attributes"][[0, 2, 3]].tolist() == [truth[files[i]] for i in (0, 2, 3)]


def test_loader_batches_stack_attributes_and_labeled(module: CelebAFacesDataModule) -> None:
    truth = _attributes(module.root, CHOSEN)
    batch = next(iter(module.val_dataloader()))
    assert set(batch) == {"image", "target", "meta", "attributes", "labeled"}
    assert batch["image"].shape == (4, 3, RESOLUTION, RESOLUTION)
    assert batch["attributes"].shape == (4, len(CHOSEN))
    assert batch["labeled"]["attributes"].dtype == torch.bool and batch["labeled"]["attributes"].tolist() == [True] * 4
    assert batch["attributes"].tolist() == [truth[Path(m["path"]).name] for m in batch["meta"]]
    assert len(batch["target"]) == 4 and all(t["boxes"].shape == (1, 4) for t in batch["target"])

    train = next(iter(module.train_dataloader()))
    assert train["attributes"].shape == (4, len(CHOSEN)) and train["labeled"]["attributes"].shape == (4,)


def test_plain_detection_batches_have_no_extra_keys(faces: Path, tmp_path: Path) -> None:
    json_file = write_celeba_face_annotations(faces, "val", tmp_path / "val.json")
    dataset = _labeled_dataset(faces, json_file, None)
    sample = dataset[0]
    assert set(sample) == {"image", "target", "meta"}
    assert set(detection_collate([sample, dataset[1]])) == {"image", "target", "meta"}


def test_labels_keyed_by_something_else_than_file_names_are_refused(faces: Path, tmp_path: Path) -> None:
    json_file = write_celeba_face_annotations(faces, "val", tmp_path / "val.json")
    wrong = {str(faces / "img_celeba" / name): torch.zeros(3) for name in _split_files(faces, 1)}
    with pytest.raises(DataError, match="file names"):
        _labeled_dataset(faces, json_file, {"attributes": wrong})
    with pytest.raises(DataError, match="shape"):
        _labeled_dataset(faces, json_file, {"attributes": {"000033.jpg": torch.zeros(3), "000034.jpg": torch.zeros(2)}})
    with pytest.raises(DataError, match="target"):
        _labeled_dataset(faces, json_file, {"target": {"000033.jpg": torch.zeros(3)}})


def test_label_sets_hold_the_boxes_and_the_attributes_with_their_positive_rates(
    module: CelebAFacesDataModule, faces: Path
) -> None:
    assert module.class_names == ["face"] and module.category_ids == [1]
    assert module.task_inputs() == {"class_names": ["face"], "category_ids": [1]}
    attributes = AttributeDataModule(
        root=str(faces), attributes=CHOSEN, images="in_the_wild", resolution=32, batch_size=4, num_workers=0
    )
    attributes.setup("fit")
    sets = module.label_sets()
    assert set(sets) == {"target", "attributes"}
    assert sets["target"] == module.task_inputs()
    assert sets["attributes"]["attribute_names"] == CHOSEN
    assert sets["attributes"]["positive_rate"] == attributes.positive_rate()
    truth = _attributes(faces, CHOSEN)
    train = _split_files(faces, 0)
    by_hand = [round(sum(truth[f][a] for f in train) / len(train), 6) for a in range(len(CHOSEN))]
    assert sets["attributes"]["positive_rate"] == pytest.approx(by_hand, abs=1e-6)
    assert attributes.label_sets() == {"target": attributes.task_inputs()}


def test_all_attributes_by_default_and_the_synthetic_set_is_written_at_root(tmp_path: Path) -> None:
    root = tmp_path / "faces"
    data = CelebAFacesDataModule(
        root=str(root),
        train_split=None,
        test_split=None,
        annotation_dir=str(tmp_path / "converted"),
        resolution=RESOLUTION,
        batch_size=2,
        num_workers=0,
        synthetic={"kind": "faces", "num_images": 10, "size": 32, "wild_size": 48},
    )
    data.setup("validate")
    assert set(data.datasets) == {"val"} and data.attribute_names == list(FACE_ATTRIBUTES)
    assert (tmp_path / "converted" / "celeba_faces_val.json").is_file()
    assert data.label_sets()["attributes"]["positive_rate"] is None  # no training split
    assert not math.isnan(data.datasets["val"][0]["attributes"].sum().item())
