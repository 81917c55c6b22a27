"""``Predictor``: images in, one ``Result`` per image out, on a checkpoint or an exported ONNX file alike.

Inputs may be paths, PIL images, ``H x W x 3`` uint8 arrays or ``3 x H x W`` tensors (uint8 0..255 or float
0..1), of any sizes; they are read as the training data were (``mobivision.data.images``: EXIF orientation,
16-bit, alpha over white), pre-processed as the model's evaluation data (``preprocess.py``, bit-identical to the
training-side transform), run in batches of ``batch_size`` and decoded per head (``decode.py``) with boxes mapped
back to original pixels. An image of more than ``max_image_mpx`` million pixels is refused (``ImageTooLargeError``),
a file's from its header before it is decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mobivision.data.images import DEFAULT_MAX_IMAGE_MPX, check_max_image_mpx, check_pixels, load_rgb, rgb8
from mobivision.errors import ConfigError
from mobivision.inference.decode import Options, decoder_for
from mobivision.inference.preprocess import Preprocessing, prepare_batch
from mobivision.inference.results import Result


class Predictor:
    """``predictor(images, score_threshold=0.3, top_k=5) -> list[Result]`` (one image: one ``Result``)."""

    def __init__(self, runtime: Any, *, batch_size: int = 16, max_image_mpx: float = DEFAULT_MAX_IMAGE_MPX) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size: {batch_size} is out of range (expected >= 1)")
        self.runtime = runtime
        self.batch_size = batch_size
        self.max_image_mpx = check_max_image_mpx(max_image_mpx)
        meta = runtime.metadata
        self.metadata = meta
        self.preprocessing = Preprocessing(
            resolution=int(meta["input_size"][0]),
            mean=tuple(meta["mean"]),
            std=tuple(meta["std"]),
            crop_pct=meta.get("crop_pct"),
        )
        self.multitask = "heads" in meta
        self.heads = meta["heads"] if self.multitask else {meta["task_kind"]: {"kind": meta["task_kind"], **meta}}
        self.decoders = {head: decoder_for(entries) for head, entries in self.heads.items()}

    @property
    def kind(self) -> str:
        """The model's task kind (``detection``, ``classification``, ``attributes``, ``geo``, ``multitask``)."""
        return self.metadata["task_kind"]

    def __call__(
        self, images: Any, *, score_threshold: float = 0.3, top_k: int = 5, names: Sequence[str] | None = None
    ) -> Result | list[Result]:
        """Results of ``images`` (one input: one ``Result``; a list: a list). ``names`` label them in the results
        (default: the file name for a path, else ``image_<i>``)."""
        if not 0.0 <= score_threshold <= 1.0:
            raise ConfigError(f"score_threshold: {score_threshold} is out of range (expected 0 <= x <= 1)")
        if top_k < 1:
            raise ConfigError(f"top_k: {top_k} is out of range (expected >= 1)")
        single = not isinstance(images, list | tuple)
        inputs = [images] if single else list(images)
        labels = list(names) if names is not None else [_default_name(x, i) for i, x in enumerate(inputs)]
        if len(labels) != len(inputs):
            raise ConfigError(f"names: {len(labels)} names for {len(inputs)} images")
        options = Options(score_threshold=score_threshold, top_k=top_k)
        results: list[Result] = []
        for start in range(0, len(inputs), self.batch_size):
            chunk = zip(inputs[start : start + self.batch_size], labels[start : start + self.batch_size], strict=True)
            pictures = [as_rgb(x, name, max_image_mpx=self.max_image_mpx) for x, name in chunk]
            results += self._predict(pictures, labels[start : start + self.batch_size], options)
        return results[0] if single else results

    def _predict(self, pictures: list[np.ndarray], names: list[str], options: Options) -> list[Result]:
        batch, placements = prepare_batch(pictures, self.preprocessing)
        outputs = self.runtime.run(batch)
        per_head = {}
        for head, entries in self.heads.items():
            prefix = f"{head}." if self.multitask else ""
            own = {name[len(prefix) :]: value for name, value in outputs.items() if name.startswith(prefix)}
            side = self.runtime.side_data.get(head)  # what its decoder reads besides the outputs (geo: cells)
            per_head[head] = self.decoders[head](own, entries | _shared(self.metadata), placements, options, side)
        return [
            Result(name, {head: per_head[head][i] for head in self.heads}, picture, self.multitask)
            for i, (name, picture) in enumerate(zip(names, pictures, strict=True))
        ]


def _shared(meta: dict[str, Any]) -> dict[str, Any]:
    """Entries every head decodes with (the input size)."""
    return {"input_size": meta["input_size"]}


def as_rgb(image: Any, name: str = "image", *, max_image_mpx: float = DEFAULT_MAX_IMAGE_MPX) -> np.ndarray:
    """Any supported input as an ``H x W x 3`` uint8 RGB array; ``ImageTooLargeError`` naming ``name`` (a file: its
    path) over ``max_image_mpx`` million pixels, checked before anything is decoded or copied."""
    if isinstance(image, str | Path):
        return load_rgb(Path(image), max_image_mpx=max_image_mpx)
    if isinstance(image, Image.Image):
        check_pixels(image.size, name, max_image_mpx)
        return rgb8(image)
    if type(image).__module__.startswith("torch"):  # a CHW tensor, without importing torch here
        image = image.detach().cpu()
        array = image.numpy()
        if array.ndim != 3 or array.shape[0] not in (1, 3):
            raise ConfigError(f"a tensor image must be 3 x H x W (or 1 x H x W), got {tuple(array.shape)}")
        check_pixels((array.shape[2], array.shape[1]), name, max_image_mpx)
        if array.dtype != np.uint8:
            array = np.clip(np.rint(array.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
        array = np.repeat(array, 3, axis=0) if array.shape[0] == 1 else array
        return np.ascontiguousarray(array.transpose(1, 2, 0))
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
            raise ConfigError(
                f"an array image must be H x W x 3 uint8 (or H x W grey), got {image.dtype} {image.shape}"
            )
        check_pixels((image.shape[1], image.shape[0]), name, max_image_mpx)
        image = image[..., None] if image.ndim == 2 else image
        return np.ascontiguousarray(np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image)
    raise ConfigError(
        f"cannot read an image from a {type(image).__name__} (expected a path, PIL image, array or tensor)"
    )


def _default_name(image: Any, index: int) -> str:
    return Path(image).name if isinstance(image, str | Path) else f"image_{index}"
