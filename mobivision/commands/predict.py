"""Predictions of a trained task on image files: JSON for programs, pictures or lines for people.

Detection writes COCO-style results (``image_id`` is the file's path relative to the input, boxes in
original pixels, plus ``category_name``) and one picture per image with boxes, class names and scores
drawn on it; classification writes the top-k class names with probabilities; attributes every probability
and decision plus a picture; geo-localization the predicted coordinates and the top-k cells. Pre-processing
repeats the evaluation transform recorded in the checkpoint.
Pictures are drawn by ``mobivision.visualize`` (torchvision's ``draw_bounding_boxes``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from mobivision.data.detection_transforms import detection_eval_transform
from mobivision.data.image_folder import list_images
from mobivision.data.records import load_rgb
from mobivision.data.transforms import classification_eval_transform
from mobivision.errors import DataError
from mobivision.visualize import draw_detections, draw_text_lines
from tasks.classification import ClassificationTask
from tasks.detection import DetectionTask, to_coco_results
from tasks.face_attributes import AttributeTask
from tasks.geolocation import GeoTask


def find_images(source: str | Path) -> tuple[Path, list[Path]]:
    """The images to predict: ``source`` itself, or every image file under the folder ``source``."""
    source = Path(source)
    if source.is_file():
        return source.parent, [source]
    if not source.is_dir():
        raise DataError(f"no such image file or folder: {source}")
    return source, list_images(source)


def _batches(paths: list[Path], size: int) -> Iterator[list[Path]]:
    for start in range(0, len(paths), size):
        yield paths[start : start + size]


def predict_detections(
    task: DetectionTask, root: Path, paths: list[Path], out_dir: Path, *, score_threshold: float, batch_size: int = 8
) -> list[dict[str, Any]]:
    """Detect objects in ``paths``; writes ``predictions.json`` and ``<name>.jpg`` pictures into ``out_dir``."""
    meta = task.data_meta
    transform = detection_eval_transform(
        resolution=meta["resolution"], mean=tuple(meta["mean"]), std=tuple(meta["std"])
    )
    all_results = []
    for chunk in _batches(paths, batch_size):
        images = [load_rgb(p) for p in chunk]
        tensors = torch.stack([transform(image=i, bboxes=np.zeros((0, 4)), labels=[])["image"] for i in images])
        with torch.no_grad():
            detections = task.detect(tensors)
        infos = [
            {"image_id": str(p.relative_to(root)), "size": i.shape[:2], "input_size": tuple(tensors.shape[-2:])}
            for p, i in zip(chunk, images, strict=True)
        ]
        for image, info, detection in zip(images, infos, detections, strict=True):
            keep = detection["scores"] >= score_threshold
            kept = {k: v[keep] for k, v in detection.items()}
            results = to_coco_results([kept], [info], task.category_ids)
            for result, label in zip(results, kept["labels"].tolist(), strict=True):
                result["category_name"] = task.class_names[label - 1]
            all_results += results
            picture = out_dir / Path(info["image_id"]).with_suffix(".jpg")
            picture.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(draw_detections(image, results, task.class_names)).save(picture, quality=92)
    (out_dir / "predictions.json").write_text(json.dumps(all_results, indent=1) + "\n")
    return all_results


def _classification_transform(meta: dict[str, Any]):
    """The evaluation pre-processing recorded in a classifier's or attribute model's checkpoint."""
    return classification_eval_transform(
        resolution=meta["resolution"], mean=tuple(meta["mean"]), std=tuple(meta["std"]), crop_pct=meta["crop_pct"]
    )


def predict_classes(
    task: ClassificationTask, root: Path, paths: list[Path], out_dir: Path, *, top_k: int, batch_size: int = 32
) -> list[dict[str, Any]]:
    """Top-k classes of ``paths``; writes ``predictions.json`` into ``out_dir``."""
    transform = _classification_transform(task.data_meta)
    k = min(top_k, len(task.class_names))
    predictions = []
    for chunk in _batches(paths, batch_size):
        tensors = torch.stack([transform(image=load_rgb(p))["image"] for p in chunk])
        with torch.no_grad():
            probabilities, indices = task(tensors).softmax(-1).topk(k, dim=-1)
        for path, probs, idx in zip(chunk, probabilities.tolist(), indices.tolist(), strict=True):
            top = [{"class": task.class_names[i], "probability": round(p, 5)} for p, i in zip(probs, idx, strict=True)]
            predictions.append({"image": str(path.relative_to(root)), "top_k": top})
    (out_dir / "predictions.json").write_text(json.dumps(predictions, indent=1) + "\n")
    return predictions


def predict_attributes(
    task: AttributeTask, root: Path, paths: list[Path], out_dir: Path, *, top_k: int, batch_size: int = 32
) -> list[dict[str, Any]]:
    """Every attribute's probability and decision (at the thresholds tuned on validation) for ``paths``.

    Writes ``predictions.json`` (per image: ``probabilities`` and ``present`` by attribute name, ``present``
    sorted by probability) and ``<name>.jpg`` pictures with the ``top_k`` most probable present attributes.
    """
    transform = _classification_transform(task.data_meta)
    names = task.class_names
    predictions = []
    for chunk in _batches(paths, batch_size):
        images = [load_rgb(p) for p in chunk]
        with torch.no_grad():
            probabilities, present = task.predict_attributes(torch.stack([transform(image=i)["image"] for i in images]))
        for path, image, probs, flags in zip(chunk, images, probabilities.tolist(), present.tolist(), strict=True):
            ranked = sorted((i for i, flag in enumerate(flags) if flag), key=lambda i: -probs[i])
            relative = path.relative_to(root)
            predictions.append(
                {
                    "image": str(relative),
                    "probabilities": {n: round(p, 5) for n, p in zip(names, probs, strict=True)},
                    "present": [names[i] for i in ranked],
                }
            )
            lines = [f"{names[i]} {probs[i]:.2f}" for i in ranked[:top_k]] or ["(no attribute present)"]
            picture = out_dir / relative.with_suffix(".jpg")
            picture.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(draw_text_lines(image, lines)).save(picture, quality=92)
    (out_dir / "predictions.json").write_text(json.dumps(predictions, indent=1) + "\n")
    return predictions


def predict_locations(
    task: GeoTask, root: Path, paths: list[Path], out_dir: Path, *, top_k: int, batch_size: int = 32
) -> list[dict[str, Any]]:
    """Where ``paths`` were taken: the predicted latitude/longitude (the best cell's mean training location) and
    the ``top_k`` cells of the finest partitioning with their S2 tokens, centres and probabilities; writes
    ``predictions.json`` into ``out_dir``."""
    transform = _classification_transform(task.data_meta)
    cells = task.partitions[-1]
    predictions = []
    for chunk in _batches(paths, batch_size):
        tensors = torch.stack([transform(image=load_rgb(p))["image"] for p in chunk])
        with torch.no_grad():
            locations, top = task.locate(tensors, top_k=top_k)
        for path, (lat, lon), ranked in zip(chunk, locations.tolist(), top.tolist(), strict=True):
            best = [(cells[int(i)], round(p, 5)) for i, p in ranked]
            top_cells = [{"token": c.token, "lat": c.lat, "lon": c.lon, "probability": p} for c, p in best]
            predictions.append({"image": str(path.relative_to(root)), "lat": lat, "lon": lon, "top_k": top_cells})
    (out_dir / "predictions.json").write_text(json.dumps(predictions, indent=1) + "\n")
    return predictions
