"""Typed results of the inference API: one ``Result`` per image holding each head's result.

numpy and Pillow only. ``to_dict()`` of each head gives the entries ``tools/predict.py`` writes to
``predictions.json`` (detections: COCO results in original pixels with ``category_name``; classes: ``top_k``;
attributes: every probability and the ``present`` ones; location: ``lat``/``lon`` and the ``top_k`` cells).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mobivision.errors import DataError
from mobivision.visualize import draw_detections, draw_text_lines, drawing_problem


class HeadResult:
    """What every head's result is (built-in or a plug-in's): its JSON entries, one line for people and, if the head
    draws one, a picture; ``Result`` gathers them per image and plots and saves them. A new head kind subclasses
    it (or returns ``Values``) and needs no change here."""

    def entries(self, image: str) -> list[dict[str, Any]]:
        """What ``predictions.json`` holds of this head for ``image`` (its name)."""
        raise NotImplementedError

    def to_dict(self, image: str) -> dict[str, Any]:
        """JSON-ready, for ``Result.to_dict``: the one entry (a detector: all of them, under ``detections``)."""
        return self.entries(image)[0]

    def line(self) -> str:
        raise NotImplementedError

    def picture(self, image: np.ndarray) -> np.ndarray | None:
        """``image`` with this result drawn on it, or None: the head draws nothing."""
        return None


@dataclass
class Detections(HeadResult):
    """Boxes ``[N, 4]`` xyxy in original pixels, best first, with scores and class indices into ``class_names``."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    category_ids: list[int]
    score_threshold: float = 0.0

    def entries(self, image: str) -> list[dict[str, Any]]:
        """COCO results: ``image_id``, ``category_id``, ``bbox`` ``[x, y, w, h]`` (2 decimals), ``score`` (5)."""
        xywh = np.array(self.boxes, dtype=np.float32).reshape(-1, 4)
        xywh[:, 2:] -= xywh[:, :2]  # in float32, as ``to_coco_results`` computes: the same file bytes
        return [
            {
                "image_id": image,
                "category_id": self.category_ids[label],
                "bbox": [round(v, 2) for v in box],
                "score": round(score, 5),
                "category_name": self.class_names[label],
            }
            for box, score, label in zip(xywh.tolist(), self.scores.tolist(), self.labels.tolist(), strict=True)
        ]

    def to_dict(self, image: str) -> dict[str, Any]:
        return {"image": image, "detections": self.entries(image)}

    def line(self) -> str:
        shown = ", ".join(f"{r['category_name']} {r['score']:.2f}" for r in self.entries(""))
        return f"{len(self.scores)} detections (score >= {self.score_threshold})" + (f": {shown}" if shown else "")

    def picture(self, image: np.ndarray) -> np.ndarray | None:
        return draw_detections(image, self.entries(""), self.class_names)


@dataclass
class Classes(HeadResult):
    """The ``top_k`` classes, most probable first."""

    names: list[str]
    probabilities: list[float]

    def entries(self, image: str) -> list[dict[str, Any]]:
        top = [{"class": n, "probability": round(p, 5)} for n, p in zip(self.names, self.probabilities, strict=True)]
        return [{"image": image, "top_k": top}]

    def line(self) -> str:
        return ", ".join(f"{n} {p:.3f}" for n, p in zip(self.names, self.probabilities, strict=True))


@dataclass
class Attributes(HeadResult):
    """Every attribute's probability, and the ``present`` ones (probability >= the tuned threshold), most probable
    first."""

    probabilities: dict[str, float]
    present: list[str]
    top_k: int = 5

    def entries(self, image: str) -> list[dict[str, Any]]:
        rounded = {n: round(p, 5) for n, p in self.probabilities.items()}
        return [{"image": image, "probabilities": rounded, "present": list(self.present)}]

    def line(self) -> str:
        return ", ".join(self.present[: self.top_k]) or "(no attribute present)"

    def picture(self, image: np.ndarray) -> np.ndarray | None:
        """The image with the ``top_k`` most probable present attributes written on it."""
        shown = [f"{n} {self.probabilities[n]:.2f}" for n in self.present[: self.top_k]]
        return draw_text_lines(image, shown or ["(no attribute present)"])


@dataclass
class Location(HeadResult):
    """The predicted latitude/longitude (the most probable cell's mean training location) and the ``top_k``
    finest cells (``token``, ``lat``, ``lon``, ``probability``)."""

    lat: float
    lon: float
    cells: list[dict[str, Any]]

    def entries(self, image: str) -> list[dict[str, Any]]:
        return [{"image": image, "lat": self.lat, "lon": self.lon, "top_k": self.cells}]

    def line(self) -> str:
        return f"{self.lat:.4f}, {self.lon:.4f} (best cell {self.cells[0]['token']})"


@dataclass
class Values(HeadResult):
    """A plug-in head's result: ``entry`` (JSON-ready; written with the image's name), its ``text`` line and the
    ``drawn`` lines written on the picture (none: no picture)."""

    entry: dict[str, Any]
    text: str
    drawn: list[str] = field(default_factory=list)

    def entries(self, image: str) -> list[dict[str, Any]]:
        return [{"image": image, **self.entry}]

    def line(self) -> str:
        return self.text

    def picture(self, image: np.ndarray) -> np.ndarray | None:
        return draw_text_lines(image, self.drawn) if self.drawn else None


@dataclass
class Result:
    """One image's prediction: ``heads`` maps each head's name to its result (a single-head model has one, named
    after its kind: ``detection``, ``classification``, ``attributes``, ``geolocation``)."""

    image: str
    heads: dict[str, HeadResult]
    image_array: np.ndarray = field(repr=False)  # the original RGB image (H x W x 3 uint8)
    multitask: bool = False

    def __getitem__(self, head: str) -> HeadResult:
        return self.heads[head]

    @property
    def head(self) -> HeadResult:
        """The only head's result (a single-head model)."""
        if len(self.heads) != 1:
            raise KeyError(f"this model has {len(self.heads)} heads: use result[name] with one of {list(self.heads)}")
        return next(iter(self.heads.values()))

    def entries(self) -> list[dict[str, Any]]:
        """What ``predictions.json`` holds for this image (a multi-task model: ``{"image", "heads": {...}}``)."""
        if self.multitask:
            return [{"image": self.image, "heads": {n: h.entries(self.image) for n, h in self.heads.items()}}]
        return self.head.entries(self.image)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"image", "heads": {head: its entries}}`` for a multi-task model, else the head's dict."""
        if self.multitask:
            return self.entries()[0]
        return self.head.to_dict(self.image)

    def line(self) -> str:
        """One line for people: each head's summary."""
        if not self.multitask:
            return self.head.line()
        return " | ".join(f"{name}: {head.line()}" for name, head in self.heads.items())

    @property
    def drawing_problem(self) -> str | None:
        """Why this image gets no picture at all (``mobivision.visualize.drawing_problem``), or None."""
        height, width = self.image_array.shape[:2]
        return drawing_problem(width, height)

    def picture(self) -> np.ndarray | None:
        """The picture ``tools/predict.py`` saves (None: none for this model, or an image too elongated to draw,
        ``drawing_problem``): a detector's boxes or an attribute model's lines; a multi-task model: the first head's
        picture with the other heads' lines written on it."""
        if self.drawing_problem:
            return None
        if not self.multitask:
            return self.head.picture(self.image_array)
        pictures = {name: head.picture(self.image_array) for name, head in self.heads.items()}
        pictured = next((name for name, picture in pictures.items() if picture is not None), None)
        lines = [f"{name}: {head.line()}" for name, head in self.heads.items() if name != pictured]
        base = pictures[pictured] if pictured is not None else self.image_array
        return draw_text_lines(base, lines) if lines else base

    def plot(self) -> Image.Image:
        """The picture with every head's result drawn (a model without one: its line written on the image);
        ``DataError`` naming the image if it is too elongated to draw (``drawing_problem``)."""
        if self.drawing_problem:
            raise DataError(f"{self.image}: {self.drawing_problem}; its result has no picture")
        picture = self.picture()
        return Image.fromarray(picture if picture is not None else draw_text_lines(self.image_array, [self.line()]))

    def save(self, path: str | Path) -> Path:
        """``.json``: ``to_dict()``; any image suffix: ``plot()``."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        else:
            self.plot().save(path)
        return path
