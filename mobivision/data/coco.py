"""COCO detection reader (pycocotools), the detection dataset and its collate function.

The MobileNets paper (Howard et al., 2017, Sec. 4.6) trains SSD and Faster R-CNN on COCO trainval35k and
reports AP on minival. This module reads a COCO ``instances_*.json`` file (Lin et al., "Microsoft COCO:
Common Objects in Context", 2014) into validated ``DetectionRecord``s:

- category ids (1..90 with gaps in COCO) map to contiguous labels 1..C in sorted-id order; label 0 is the
  background of SSD (Liu et al., 2016, Sec. 2.2). A map saved in a checkpoint can be passed back in;
- ``iscrowd=1`` annotations are not training targets (the COCO evaluator ignores them too) and are counted;
- ``[x, y, w, h]`` boxes become absolute ``xyxy`` float32 clipped to the image; boxes degenerate after clipping
  (narrower or lower than 1 px, outside the image) or not finite (NaN, ``Infinity``, which Python's json reads)
  are dropped and reported in one warning;
- an id that two entries of ``images``, ``annotations`` or ``categories`` share raises ``DataError`` (pycocotools
  would keep the last entry of each id and silently lose the others);
- images without boxes are kept, so negatives flow through training and evaluation;
- a missing image file raises ``DataError`` naming it, or with ``on_error="skip"`` is counted and reported.

``DetectionDataset`` can carry image-level label sets beside the boxes (CelebA's attributes of the same images,
for a model with a detection head and an attribute head): ``image_labels``, one tensor per image file name.

The json is parsed here rather than by ``COCO(annotation_file)`` because pycocotools prints to stdout and fails
on a malformed file with a bare ``JSONDecodeError``/``KeyError`` that names neither the file nor the entry; the
validated dict is then indexed by pycocotools' own ``createIndex``. ``check_unique_ids`` is shared with the COCO
evaluation's ground truth.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO

from mobivision.data.images import DEFAULT_MAX_IMAGE_MPX, check_max_image_mpx
from mobivision.data.records import BadRecords, ImageDataset, check_on_error
from mobivision.data.text_files import open_text
from mobivision.errors import DataError

log = logging.getLogger("mobivision")

MIN_BOX_SIZE = 1.0
"""Boxes narrower or lower than this many pixels (after clipping to the image) are not training targets."""

_REQUIRED_KEYS = {
    "images": ("id", "file_name", "width", "height"),
    "annotations": ("id", "image_id", "category_id", "bbox"),
    "categories": ("id", "name"),
}
_SHOWN_IDS = 20


@dataclass(frozen=True, eq=False)
class DetectionRecord:
    """One image and its boxes, as the reader validated them (compared by identity: it holds arrays).

    Attributes:
        image_id: The COCO image id.
        path: The image file.
        width: Image width in pixels, from the annotation file.
        height: Image height in pixels, from the annotation file.
        boxes: float32 ``[N, 4]`` absolute ``xyxy`` pixels, inside the image, at least 1 px wide and high
            (read-only).
        labels: int64 ``[N]`` contiguous labels 1..C; 0 is reserved for the background (read-only).
    """

    image_id: int
    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray


@dataclass
class CocoData:
    """What ``read_coco`` returns.

    Attributes:
        records: One record per kept image, in increasing image id.
        class_names: Name of contiguous label ``i + 1`` at index ``i``.
        category_ids: COCO category id of contiguous label ``i + 1`` at index ``i`` (store it in checkpoints).
        annotation_file: The json file read.
    """

    records: list[DetectionRecord]
    class_names: list[str]
    category_ids: list[int]
    annotation_file: Path


def read_coco(
    annotation_file: str | Path,
    image_dir: str | Path,
    *,
    category_ids: Sequence[int] | None = None,
    on_error: str = "raise",
    keep_empty: bool = True,
) -> CocoData:
    """Read a COCO detection annotation file into validated records.

    Args:
        annotation_file: ``instances_*.json`` in COCO format.
        image_dir: Folder that ``file_name`` entries are relative to.
        category_ids: The label map of a trained model (``CocoData.category_ids`` saved in its checkpoint):
            contiguous label ``i + 1`` is COCO category ``category_ids[i]``. A category of the file outside
            it raises ``DataError``. Default: the file's category ids in increasing order.
        on_error: ``"raise"``: a record that cannot be used (missing image file, annotation of an unknown
            image, image without a positive size) raises ``DataError`` naming it; ``"skip"``: such records
            are dropped, counted and listed in one warning.
        keep_empty: Keep images that have no box left (negatives). ``False`` drops them (logged).

    Returns:
        The records, class names, category ids and the annotation file.

    Raises:
        DataError: The file is missing, is not UTF-8 or not valid json, lacks a required key, repeats an id, or
            holds a category outside ``category_ids``; or a bad record with ``on_error="raise"``.
    """
    annotation_file = Path(annotation_file)
    image_dir = Path(image_dir)
    source = str(annotation_file)
    bad = BadRecords(source, on_error)
    dataset = _load_json(annotation_file)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress on stdout
        coco = COCO()
        coco.dataset = dataset
        coco.createIndex()

    file_ids = sorted(coco.cats)
    if category_ids is None:
        category_ids = file_ids
    else:
        category_ids = [int(c) for c in category_ids]
        unknown = sorted(set(file_ids) - set(category_ids))
        if unknown:
            names = [coco.cats[c]["name"] for c in unknown]
            raise DataError(f"{source}: categories {unknown} ({names}) are not in the model's label map {category_ids}")
    label_of = {cid: label for label, cid in enumerate(category_ids, start=1)}
    class_names = [str(coco.cats[c]["name"]) if c in coco.cats else f"category_{c}" for c in category_ids]

    unknown_images = sorted(set(coco.imgToAnns) - set(coco.imgs), key=str)
    for image_id in unknown_images:
        ann_ids = [a["id"] for a in coco.imgToAnns[image_id]]
        bad.add(f"annotations {ann_ids[:5]} refer to image id {image_id}, which is not in 'images'")

    records: list[DetectionRecord] = []
    crowd = dropped = empty = 0
    dropped_images: list[int] = []
    for image_id in sorted(coco.imgs):
        image = coco.imgs[image_id]
        path = image_dir / str(image["file_name"])
        width, height = image["width"], image["height"]
        if not _positive_number(width) or not _positive_number(height):
            bad.add(f"image id {image_id} ({path}): width and height must be positive, got {width}x{height}")
            continue
        if not path.is_file():
            bad.add(f"image file not found: {path} (image id {image_id})")
            continue
        boxes, labels, n_crowd = _image_boxes(coco.imgToAnns.get(image_id, []), label_of, source)
        crowd += n_crowd
        # Before clipping, which would turn an infinite width into a box to the image's edge.
        finite = np.isfinite(boxes).all(axis=1)
        boxes = np.clip(boxes, 0, np.array([width, height, width, height], dtype=np.float32))
        keep = finite & ((boxes[:, 2] - boxes[:, 0]) >= MIN_BOX_SIZE) & ((boxes[:, 3] - boxes[:, 1]) >= MIN_BOX_SIZE)
        if not keep.all():
            dropped += int((~keep).sum())
            dropped_images.append(image_id)
            boxes, labels = boxes[keep], labels[keep]
        if not len(boxes):
            empty += 1
            if not keep_empty:
                continue
        boxes.setflags(write=False)
        labels.setflags(write=False)
        records.append(
            DetectionRecord(
                image_id=int(image_id), path=path, width=int(width), height=int(height), boxes=boxes, labels=labels
            )
        )
    bad.report()

    if crowd:
        log.info("%s: %d crowd annotations (iscrowd=1) excluded from the training targets", source, crowd)
    if dropped:
        log.warning(
            "%s: dropped %d degenerate boxes (under %g px wide or high after clipping to the image, outside it, "
            "or not finite) in %d images; image ids: %s",
            source,
            dropped,
            MIN_BOX_SIZE,
            len(dropped_images),
            _some_ids(dropped_images),
        )
    if empty:
        action = "kept as negatives" if keep_empty else "dropped (keep_empty=False)"
        log.info("%s: %d images without boxes %s", source, empty, action)
    if not records:
        raise DataError(f"{source}: no usable images (image_dir {image_dir})")
    return CocoData(
        records=records, class_names=class_names, category_ids=list(category_ids), annotation_file=annotation_file
    )


def _load_json(annotation_file: Path) -> dict[str, Any]:
    """The annotation file as a dict, with the keys ``createIndex`` and the reader rely on checked."""
    if not annotation_file.is_file():
        raise DataError(f"COCO annotation file not found: {annotation_file}")
    try:
        with open_text(annotation_file) as f:
            dataset = json.load(f)
    except json.JSONDecodeError as exc:
        raise DataError(f"{annotation_file}:{exc.lineno}:{exc.colno}: not valid json: {exc.msg}") from exc
    except OSError as exc:
        raise DataError(f"cannot read COCO annotation file {annotation_file}: {exc}") from exc
    if not isinstance(dataset, dict):
        raise DataError(f"{annotation_file}: expected a json object with 'images', 'annotations', 'categories'")
    for key, fields in _REQUIRED_KEYS.items():
        entries = dataset.get(key)
        if not isinstance(entries, list):
            what = "is missing" if entries is None else f"must be a list, got {type(entries).__name__}"
            raise DataError(f"{annotation_file}: top-level key '{key}' {what} (expected COCO instances format)")
        for index, entry in enumerate(entries):
            missing = [name for name in fields if not isinstance(entry, dict) or name not in entry]
            if missing:
                ident = f" (id {entry['id']})" if isinstance(entry, dict) and "id" in entry else ""
                raise DataError(f"{annotation_file}: {key}[{index}]{ident} lacks {missing}; required: {list(fields)}")
    check_unique_ids(dataset, str(annotation_file))
    categories = {c["id"] for c in dataset["categories"]}
    for index, ann in enumerate(dataset["annotations"]):
        bbox = ann["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            raise DataError(
                f"{annotation_file}: annotations[{index}] (id {ann['id']}): bbox must be 4 numbers [x, y, w, h], "
                f"got {bbox!r}"
            )
        if ann["category_id"] not in categories:
            raise DataError(
                f"{annotation_file}: annotations[{index}] (id {ann['id']}): category_id {ann['category_id']} "
                f"is not among the file's categories {sorted(categories)}"
            )
    return dataset


def check_unique_ids(dataset: dict[str, Any], source: str) -> None:
    """Raise ``DataError`` naming ``source`` and the ids that two entries of one of ``images``, ``annotations`` or
    ``categories`` share (the first ``_SHOWN_IDS``, in file order, and how many); entries without an id are left to
    the caller's checks."""
    for key, noun in (("images", "image"), ("annotations", "annotation"), ("categories", "category")):
        counts = Counter(entry["id"] for entry in dataset.get(key, []) if isinstance(entry, dict) and "id" in entry)
        repeated = [entry_id for entry_id, count in counts.items() if count > 1]
        if repeated:
            entries = sum(counts[entry_id] for entry_id in repeated)
            raise DataError(
                f"{source}: {key!r}: {entries} entries share an id with another entry; the ids: "
                f"{_some_ids(repeated)}; each {noun} needs an id of its own (pycocotools would keep only the last "
                f"entry of an id)"
            )


def _some_ids(ids: list[Any]) -> str:
    """The first ``_SHOWN_IDS`` of ``ids`` and how many more there are."""
    more = f" (and {len(ids) - _SHOWN_IDS} more)" if len(ids) > _SHOWN_IDS else ""
    return f"{ids[:_SHOWN_IDS]}{more}"


def _image_boxes(
    anns: list[dict[str, Any]], label_of: dict[int, int], source: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Non-crowd boxes of one image as unclipped ``xyxy`` float32, their labels, and the crowd count."""
    targets = [a for a in anns if not a.get("iscrowd", 0)]
    boxes = np.array([a["bbox"] for a in targets], dtype=np.float64).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]  # [x, y, w, h] -> [x0, y0, x1, y1]
    labels = np.array([label_of[a["category_id"]] for a in targets], dtype=np.int64)
    return boxes.astype(np.float32), labels, len(anns) - len(targets)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _positive_number(value: object) -> bool:
    return _is_number(value) and math.isfinite(value) and value > 0


SAMPLE_KEYS = ("image", "target", "meta", "labeled")
"""Keys every detection sample has (``labeled`` only with ``image_labels``); label sets take other names."""


class DetectionDataset(ImageDataset):
    """Detection records plus an albumentations bbox-aware transform (``mobivision.data.detection_transforms``).

    A sample is ``{"image": float CHW tensor, "target": {"boxes": float32 [N, 4] xyxy in the transformed
    image's pixels, "labels": int64 [N]}, "meta": {"image_id", "path", "size": (orig_h, orig_w),
    "input_size": (h, w)}}``; an image without boxes gives ``[0, 4]`` and ``[0]`` tensors.

    With ``image_labels`` a sample also carries, for each label key, ``sample[key]``: the image's tensor, or a
    tensor of NaN of the same shape when the image has no entry; and ``sample["labeled"] = {key: bool}``, False
    for an image without an entry (it has no label for that key: leave it out of that key's loss and metrics).
    These are image-level labels: the transform moves the boxes but leaves them unchanged.

    The transform's random state is seeded per DataLoader worker by the training loader's ``ResumableDataset``
    (tasks/resume.py), the one place that seeds augmentations.

    Args:
        records: The images and their boxes.
        transform: The albumentations transform (``image``, ``bboxes``, ``labels``).
        annotation_file: The split's COCO annotation file.
        image_labels: ``{label key: {image file name: tensor}}``; the file name is ``record.path.name``
            (``000001.jpg``), so it must be unique among the records. The tensors of one key share one shape
            and a floating dtype (NaN marks unknown values). A key must not be one of ``SAMPLE_KEYS``.
        on_error: ``raise`` (an unreadable image stops the run, naming it) or ``skip`` (named in the epoch's skip
            warning, the next readable image takes its place: ``sample_or_next_readable``).
        max_image_mpx: An image of more million pixels (from its header, before decoding) is unreadable.

    Attributes:
        annotation_file: The split's COCO annotation file: the ground truth its evaluation scores against.
        image_labels: ``{label key: float tensor [len(records), ...]}``, row ``i`` the label of record ``i``
            (NaN where it has none).
        labeled: ``{label key: bool tensor [len(records)]}``, whether record ``i`` has an entry.
        boxes_seen: Boxes fed to the transform so far.
        boxes_lost: Of those, boxes the transform removed: crops that leave a box's centre (IoU crop) or its
            whole extent out, and boxes under 1 px wide or high after resizing. Both counters are per process:
            with DataLoader workers each worker counts its own copy and the main process sees zero.

    Raises:
        DataError: An ``image_labels`` key is one of ``SAMPLE_KEYS`` or has no entries, its tensors differ in
            shape or are not floating point, none of its file names is a record's, or two records share a file
            name.
        ConfigError: ``max_image_mpx`` is not a finite number > 0.
    """

    def __init__(
        self,
        records: list[DetectionRecord],
        *,
        transform: Callable[..., dict[str, Any]],
        annotation_file: str | Path | None = None,
        image_labels: dict[str, dict[str, torch.Tensor]] | None = None,
        on_error: str = "raise",
        max_image_mpx: float = DEFAULT_MAX_IMAGE_MPX,
    ) -> None:
        check_on_error(on_error)
        self.on_error = on_error
        self.max_image_mpx = check_max_image_mpx(max_image_mpx, "data.max_image_mpx")
        self.records = records
        self.annotation_file = annotation_file
        self.transform = transform
        self.image_labels: dict[str, torch.Tensor] = {}
        self.labeled: dict[str, torch.Tensor] = {}
        if image_labels:
            names = [record.path.name for record in records]
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise DataError(
                        f"image_labels are keyed by file name, but two images are named {name!r}; "
                        f"rename them or keep them in separate datasets"
                    )
                seen.add(name)
            for key, table in image_labels.items():
                self.image_labels[key], self.labeled[key] = _align_labels(key, table, names)
        self.boxes_seen = 0
        self.boxes_lost = 0

    def _sample(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        image = self.read_image(record.path)
        if image.shape[:2] != (record.height, record.width):
            raise DataError(
                f"{record.path} (image id {record.image_id}) is {image.shape[1]}x{image.shape[0]} pixels but its "
                f"annotation says {record.width}x{record.height}; the boxes would not fit it"
            )
        out = self.transform(image=image, bboxes=record.boxes, labels=record.labels)
        boxes = torch.as_tensor(np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4))
        labels = torch.as_tensor(np.asarray(out["labels"], dtype=np.int64).reshape(-1))
        self.boxes_seen += len(record.boxes)
        self.boxes_lost += len(record.boxes) - len(boxes)
        tensor = out["image"]
        sample = {
            "image": tensor,
            "target": {"boxes": boxes, "labels": labels},
            "meta": {
                "image_id": record.image_id,
                "path": str(record.path),
                "size": (record.height, record.width),
                "input_size": (int(tensor.shape[-2]), int(tensor.shape[-1])),
            },
        }
        if self.image_labels:
            for key, values in self.image_labels.items():
                sample[key] = values[index].clone()
            sample["labeled"] = {key: bool(known[index]) for key, known in self.labeled.items()}
        return sample


def _align_labels(key: str, table: dict[str, torch.Tensor], names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """One label set as a tensor ``[len(names), ...]`` in the records' order (NaN rows where an image has no
    entry) and the bool mask of the images that have one."""
    if key in SAMPLE_KEYS:
        raise DataError(f"image_labels key {key!r} would replace the sample's own {key!r}; choose another name")
    if not table:
        raise DataError(f"image_labels[{key!r}] is empty: its label shape is unknown (leave the key out instead)")
    first_name, first = next(iter(table.items()))
    for name, value in table.items():
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise DataError(f"image_labels[{key!r}][{name!r}] must be a floating-point tensor (NaN marks unknown)")
        if value.shape != first.shape:
            raise DataError(
                f"image_labels[{key!r}][{name!r}] has shape {tuple(value.shape)}, but "
                f"[{first_name!r}] has {tuple(first.shape)}; one key's labels share one shape"
            )
    labeled = torch.tensor([name in table for name in names], dtype=torch.bool)
    if names and not labeled.any():
        raise DataError(
            f"none of the {len(table)} file names of image_labels[{key!r}] (e.g. {first_name!r}) is an image of the "
            f"dataset (e.g. {names[0]!r}); the keys must be the images' file names"
        )
    values = torch.full((len(names), *first.shape), math.nan, dtype=first.dtype)
    for index, name in enumerate(names):
        if name in table:
            values[index] = table[name]
    return values, labeled


def detection_collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack images (all the same size after the transform); keep targets and metas as lists of dicts.

    Samples with image-level label sets (``DetectionDataset(image_labels=...)``) also give, per label key,
    ``batch[key]``: the tensors stacked ``[B, ...]`` (NaN rows for images without a label), and
    ``batch["labeled"] = {key: bool tensor [B]}``. Samples without them give exactly ``image``, ``target`` and
    ``meta``.
    """
    collated = {
        "image": torch.stack([sample["image"] for sample in batch]),
        "target": [sample["target"] for sample in batch],
        "meta": [sample["meta"] for sample in batch],
    }
    for key in batch[0]:
        if key not in SAMPLE_KEYS:
            collated[key] = torch.stack([sample[key] for sample in batch])
    if "labeled" in batch[0]:
        collated["labeled"] = {
            key: torch.tensor([sample["labeled"][key] for sample in batch], dtype=torch.bool)
            for key in batch[0]["labeled"]
        }
    return collated
