"""Unit tests of ``mobivision.data.coco``: the COCO reader, the detection dataset and its collate function.

REFERENCE.md (Dataset formats, COCO): category ids have gaps and map to contiguous indices, ``iscrowd=1`` boxes
are ignored in training, boxes are ``[x, y, w, h]`` in pixels and train2017 holds zero-height boxes. ARCHITECTURE.md
(Data): boxes are absolute ``xyxy`` inside the library, and nothing is dropped silently.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from mobivision.data.coco import DetectionDataset, detection_collate, read_coco
from mobivision.data.detection_transforms import detection_eval_transform
from mobivision.data.images import ImageTooLargeError
from mobivision.errors import DataError

W, H = 64, 48
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _coco(image_dir: Path) -> dict[str, Any]:
    """Five images, categories 1, 3, 7 (gapped), and every kind of box the reader must handle."""
    image_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for image_id in (1, 2, 3, 4, 5):
        name = f"img_{image_id}.png"
        Image.new("RGB", (W, H), (10 * image_id, 50, 90)).save(image_dir / name)
        images.append({"id": image_id, "file_name": name, "width": W, "height": H})
    annotations = [
        {"id": 10, "image_id": 1, "category_id": 1, "bbox": [4, 5, 10, 20], "iscrowd": 0},
        {"id": 11, "image_id": 1, "category_id": 7, "bbox": [20, 10, 30, 30], "iscrowd": 0},
        {"id": 12, "image_id": 1, "category_id": 3, "bbox": [0, 0, 40, 40], "iscrowd": 1},  # crowd
        {"id": 20, "image_id": 2, "category_id": 3, "bbox": [10, 10, 15, 0], "iscrowd": 0},  # zero height
        {"id": 21, "image_id": 2, "category_id": 3, "bbox": [50, 40, 30, 20], "iscrowd": 0},  # partly outside
        {"id": 30, "image_id": 3, "category_id": 7, "bbox": [100, 100, 5, 5], "iscrowd": 0},  # fully outside
        {"id": 31, "image_id": 3, "category_id": 1, "bbox": [1.5, 2.5, 3.0, 4.0]},  # iscrowd missing: 0
        # image 4 has no annotations; image 5 only the 0.5 px wide box below
        {"id": 50, "image_id": 5, "category_id": 1, "bbox": [10, 10, 0.5, 8], "iscrowd": 0},
    ]
    categories = [{"id": 7, "name": "seven"}, {"id": 1, "name": "one"}, {"id": 3, "name": "three"}]
    return {"images": images, "annotations": annotations, "categories": categories}


def _write(tmp_path: Path, data: dict[str, Any] | None = None) -> tuple[Path, Path]:
    image_dir = tmp_path / "images"
    data = _coco(image_dir) if data is None else data
    file = tmp_path / "instances.json"
    file.write_text(json.dumps(data))
    return file, image_dir


@pytest.fixture
def coco_files(tmp_path: Path) -> tuple[Path, Path]:
    return _write(tmp_path)


def test_contiguous_map_and_boxes(coco_files: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="mobivision"):
        data = read_coco(*coco_files)
    assert data.category_ids == [1, 3, 7]
    assert data.class_names == ["one", "three", "seven"]
    assert data.annotation_file == coco_files[0]
    by_id = {r.image_id: r for r in data.records}
    assert sorted(by_id) == [1, 2, 3, 4, 5]  # images without boxes are kept
    first = by_id[1]
    assert (first.width, first.height, first.path) == (W, H, coco_files[1] / "img_1.png")
    assert first.boxes.dtype == np.float32 and first.labels.dtype == np.int64
    # crowd excluded; [x, y, w, h] -> xyxy; category 1 -> 1, 7 -> 3
    np.testing.assert_array_equal(first.boxes, [[4, 5, 14, 25], [20, 10, 50, 40]])
    np.testing.assert_array_equal(first.labels, [1, 3])
    # zero height dropped; the partly outside box is clipped to the 64 x 48 image
    np.testing.assert_array_equal(by_id[2].boxes, [[50, 40, 64, 48]])
    np.testing.assert_array_equal(by_id[2].labels, [2])
    # fully outside dropped; fractional box kept exactly
    np.testing.assert_allclose(by_id[3].boxes, [[1.5, 2.5, 4.5, 6.5]])
    assert by_id[4].boxes.shape == (0, 4) and by_id[4].labels.shape == (0,)
    assert by_id[5].boxes.shape == (0, 4)  # 0.5 px wide: under the 1 px minimum
    assert not first.boxes.flags.writeable

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert "dropped 3 degenerate boxes" in message and "[2, 3, 5]" in message
    assert str(coco_files[0]) in message
    assert any("1 crowd annotations" in r.getMessage() for r in caplog.records)


def test_keep_empty_false_drops_images_without_boxes(coco_files: tuple[Path, Path]) -> None:
    data = read_coco(*coco_files, keep_empty=False)
    assert [r.image_id for r in data.records] == [1, 2, 3]


def test_dropped_image_ids_are_capped_at_20(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = _coco(tmp_path / "images")
    data["images"] = [dict(data["images"][0], id=i) for i in range(1, 31)]
    data["annotations"] = [
        {"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 5, 0], "iscrowd": 0} for i in range(1, 31)
    ]
    with caplog.at_level(logging.WARNING, logger="mobivision"):
        read_coco(*_write(tmp_path, data))
    (message,) = [r.getMessage() for r in caplog.records]
    assert "dropped 30 degenerate boxes" in message and "in 30 images" in message
    assert str(list(range(1, 21))) in message and "(and 10 more)" in message


def test_empty_image_sample_and_collate(coco_files: tuple[Path, Path]) -> None:
    data = read_coco(*coco_files)
    dataset = DetectionDataset(data.records, transform=detection_eval_transform(resolution=32, mean=MEAN, std=STD))
    by_id = {r.image_id: i for i, r in enumerate(data.records)}
    empty = dataset[by_id[4]]
    assert empty["target"]["boxes"].shape == (0, 4) and empty["target"]["boxes"].dtype == torch.float32
    assert empty["target"]["labels"].shape == (0,) and empty["target"]["labels"].dtype == torch.int64
    full = dataset[by_id[1]]
    assert full["image"].shape == (3, 32, 32) and full["image"].dtype == torch.float32
    assert full["meta"] == {
        "image_id": 1,
        "path": str(coco_files[1] / "img_1.png"),
        "size": (H, W),
        "input_size": (32, 32),
    }
    np.testing.assert_allclose(full["target"]["boxes"], [[2, 10 / 3, 7, 50 / 3], [10, 20 / 3, 25, 80 / 3]], atol=1e-4)
    batch = detection_collate([full, empty])
    assert batch["image"].shape == (2, 3, 32, 32)
    assert [t["boxes"].shape[0] for t in batch["target"]] == [2, 0]
    assert [m["image_id"] for m in batch["meta"]] == [1, 4]
    assert dataset.boxes_seen == 2 and dataset.boxes_lost == 0


def test_missing_image_raises_naming_it(tmp_path: Path) -> None:
    file, image_dir = _write(tmp_path)
    (image_dir / "img_3.png").unlink()
    with pytest.raises(DataError, match=r"img_3\.png.*image id 3"):
        read_coco(file, image_dir)


def test_missing_image_skipped_and_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    file, image_dir = _write(tmp_path)
    (image_dir / "img_3.png").unlink()
    with caplog.at_level(logging.WARNING, logger="mobivision"):
        data = read_coco(file, image_dir, on_error="skip")
    assert [r.image_id for r in data.records] == [1, 2, 4, 5]
    skipped = [r.getMessage() for r in caplog.records if "skipped 1 bad records" in r.getMessage()]
    assert len(skipped) == 1 and "img_3.png" in skipped[0]


def test_annotation_of_unknown_image_is_a_bad_record(tmp_path: Path) -> None:
    data = _coco(tmp_path / "images")
    data["annotations"].append({"id": 99, "image_id": 42, "category_id": 1, "bbox": [1, 1, 5, 5]})
    file, image_dir = _write(tmp_path, data)
    with pytest.raises(DataError, match="image id 42"):
        read_coco(file, image_dir)
    assert len(read_coco(file, image_dir, on_error="skip").records) == 5


def test_missing_annotation_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.json"):
        read_coco(tmp_path / "nope.json", tmp_path)


def test_malformed_json_names_the_file(tmp_path: Path) -> None:
    file = tmp_path / "broken.json"
    file.write_text('{"images": [')
    with pytest.raises(DataError, match=r"broken\.json:1:"):
        read_coco(file, tmp_path)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d.pop("annotations"), "'annotations' is missing"),
        (lambda d: d["images"][1].pop("file_name"), r"images\[1\] \(id 2\) lacks \['file_name'\]"),
        (lambda d: d["annotations"][0].pop("bbox"), r"annotations\[0\] \(id 10\) lacks \['bbox'\]"),
        (lambda d: d["categories"][0].pop("name"), r"categories\[0\] \(id 7\) lacks \['name'\]"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "bbox must be 4 numbers"),
        (lambda d: d["annotations"][0].update(category_id=2), "category_id 2 is not among"),
    ],
)
def test_missing_keys_name_the_file_and_entry(tmp_path: Path, edit: Any, expected: str) -> None:
    data = _coco(tmp_path / "images")
    edit(data)
    file, image_dir = _write(tmp_path, data)
    with pytest.raises(DataError, match=expected) as info:
        read_coco(file, image_dir)
    assert str(file) in str(info.value)


def test_checkpoint_label_map(coco_files: tuple[Path, Path]) -> None:
    data = read_coco(*coco_files, category_ids=[7, 1, 3, 9])
    assert data.category_ids == [7, 1, 3, 9]
    assert data.class_names[:3] == ["seven", "one", "three"]
    first = next(r for r in data.records if r.image_id == 1)
    np.testing.assert_array_equal(first.labels, [2, 1])


def test_checkpoint_label_map_with_unknown_category(coco_files: tuple[Path, Path]) -> None:
    with pytest.raises(DataError, match=r"categories \[7\] \(\['seven'\]\)"):
        read_coco(*coco_files, category_ids=[1, 3])


def test_image_size_mismatch_is_reported(tmp_path: Path) -> None:
    file, image_dir = _write(tmp_path)
    Image.new("RGB", (W + 1, H), 0).save(image_dir / "img_1.png")
    records = read_coco(file, image_dir).records
    dataset = DetectionDataset(records, transform=detection_eval_transform(resolution=16, mean=MEAN, std=STD))
    with pytest.raises(DataError, match=r"img_1\.png.*65x48.*64x48"):
        dataset[0]


def test_images_over_the_pixel_limit_follow_on_error(tmp_path: Path) -> None:
    file, image_dir = _write(tmp_path)
    records = read_coco(file, image_dir).records
    Image.new("RGB", (2 * W, 2 * H), 0).save(image_dir / "img_2.png")  # 6144 pixels, over the 5000 limit
    options = {"transform": detection_eval_transform(resolution=16, mean=MEAN, std=STD), "max_image_mpx": 0.005}
    skipping = DetectionDataset(records, on_error="skip", **options)
    assert [skipping[i]["meta"]["image_id"] for i in range(3)] == [1, 3, 3]  # image 2 replaced by the next one
    with pytest.raises(ImageTooLargeError, match=r"img_2\.png: 128 x 96 pixels .* limit \(data\.max_image_mpx\)"):
        DetectionDataset(records, on_error="raise", **options)[1]


def test_non_finite_boxes_are_dropped_with_the_degenerate_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = _coco(tmp_path / "images")
    inf, nan = float("inf"), float("nan")
    data["annotations"] += [
        {"id": 60, "image_id": 4, "category_id": 1, "bbox": [5, 5, inf, 10]},  # clipped, a box to the right edge
        {"id": 61, "image_id": 4, "category_id": 1, "bbox": [5, 5, 10, inf]},
        {"id": 62, "image_id": 4, "category_id": 1, "bbox": [-inf, 5, 10, 10]},
        {"id": 63, "image_id": 4, "category_id": 1, "bbox": [nan, 5, 10, 10]},
        {"id": 64, "image_id": 4, "category_id": 3, "bbox": [5, 5, 10, 10]},
    ]
    file, image_dir = _write(tmp_path, data)
    assert "[5, 5, Infinity, 10]" in file.read_text() and "NaN" in file.read_text()  # what Python's json reads
    with caplog.at_level(logging.WARNING, logger="mobivision"):
        records = read_coco(file, image_dir).records
    (image_4,) = [r for r in records if r.image_id == 4]
    np.testing.assert_array_equal(image_4.boxes, [[5, 5, 15, 15]])
    np.testing.assert_array_equal(image_4.labels, [2])
    (message,) = [r.getMessage() for r in caplog.records]  # one warning for every kind of dropped box
    assert message.startswith(f"{file}: dropped 7 degenerate boxes (")  # the fixture's 3 and these 4
    assert "or not finite) in 4 images; image ids: [2, 3, 4, 5]" in message


def _shared_ids(data: dict[str, Any], key: str) -> tuple[str, str]:
    """Give some entries of ``data[key]`` the id of another; the expected entry count and ids of the error."""
    if key == "images":  # 30 ids given twice each: 20 are listed
        data["images"] = [dict(data["images"][0], id=i) for i in [*range(1, 31), *range(30, 0, -1)]]
        return "60", f"{list(range(1, 21))} (and 10 more)"
    if key == "annotations":  # annotations 21 and 50 take the ids 10 and 31
        data["annotations"][4]["id"], data["annotations"][7]["id"] = 10, 31
        return "4", "[10, 31]"
    data["categories"].append({"id": 7, "name": "also seven"})
    return "2", "[7]"


@pytest.mark.parametrize(
    ("key", "noun"), [("images", "image"), ("annotations", "annotation"), ("categories", "category")]
)
def test_an_id_given_to_two_entries_is_an_error(tmp_path: Path, key: str, noun: str) -> None:
    data = _coco(tmp_path / "images")
    entries, ids = _shared_ids(data, key)
    file, image_dir = _write(tmp_path, data)
    with pytest.raises(DataError) as info:
        read_coco(file, image_dir, on_error="skip")  # not a bad record to skip: the file itself is wrong
    assert str(info.value) == (
        f"{file}: {key!r}: {entries} entries share an id with another entry; the ids: {ids}; each {noun} needs an "
        f"id of its own (pycocotools would keep only the last entry of an id)"
    )


def test_annotation_file_not_in_utf_8_names_line_and_column(tmp_path: Path) -> None:
    data = _coco(tmp_path / "images")
    data["categories"][1]["name"] = "café"
    file, image_dir = _write(tmp_path, data)
    text = json.dumps(data, indent=1, ensure_ascii=False)
    file.write_bytes(text.encode("latin-1"))
    (line, before), *_ = [(n, t.index("é")) for n, t in enumerate(text.splitlines(), start=1) if "é" in t]
    with pytest.raises(DataError) as info:
        read_coco(file, image_dir)
    assert str(info.value) == (
        f"{file}:{line}: not UTF-8 text (byte 0xe9 at column {before + 1}); save the file as UTF-8"
    )
    file.write_bytes(b"\xef\xbb\xbf" + text.encode())  # UTF-8 with a byte-order mark, as Windows tools save it
    assert read_coco(file, image_dir).class_names == ["café", "three", "seven"]
