"""Convert weights of any supported format into mobivision's own safetensors files.

A converted file holds mobivision's state-dict names plus, in the safetensors metadata, everything needed
to rebuild the model without guessing: architecture, width, padding (TF 'SAME' for TF-trained weights),
BatchNorm epsilon, mean/std, classes and label offset, resolution and the format it came from
(ARCHITECTURE.md, Conventions: "weights export as safetensors"). Safetensors metadata values must be strings,
so each value is JSON-encoded; ``mobivision.backbones.pretrained`` decodes every key except ``format``.

``convert_weights`` reads a source with the same reader ``create_model(pretrained=...)`` uses, builds the
model, writes the file next to the output under a temporary name, reloads that file through
``create_model`` and compares outputs, and only then renames it into place: a failed or unverifiable
conversion never leaves an output behind.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from mobivision.backbones.download import is_url
from mobivision.backbones.pretrained import LoadedWeights, infer_v1_width, read_weights
from mobivision.classifier import ImageClassifier
from mobivision.errors import ConfigError, WeightFileError

log = logging.getLogger("mobivision")

FORMAT = "mobivision"
# pretrained_cfg keys written into every file (``classes`` only where the model has names).
_CFG_KEYS = ("architecture", "width_mult", "padding", "bn_eps", "mean", "std", "num_classes", "label_offset")
DEFAULT_RESOLUTION = 224
# Released TF files carry their input size in the name (mobilenet_v1_0.25_128.ckpt, mobilenet_2_5_128_tf_no_top.h5,
# mobilenet_v2_..._0.35_96.h5) or in their archive's name (mobilenet_v1_0.25_128.tgz holding model.ckpt). Only the
# released sizes count as an underscore-separated part: neither a date (mobilenet_v1_2018_08_02) nor a training step
# (model.ckpt-160) is read as a resolution.
_TF_RESOLUTION_IN_NAME = re.compile(r"(?:^|_)(96|128|160|192|224)(?=[_.]|$)")
_ARCHIVE_FOLDER_SUFFIXES = (".tgz.d", ".tar.gz.d")  # the folders ``download`` unpacks archives into


def save_weights(model: ImageClassifier, path: str | os.PathLike, *, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s state dict and ``pretrained_cfg`` as a mobivision safetensors file.

    Args:
        model: The classifier to save.
        path: Output file (``.safetensors``); written to a temporary name first, then renamed.
        metadata: Extra or overriding entries (e.g. ``resolution``, ``source_format``); values must be
            JSON-serialisable.

    Returns:
        The written path.
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ConfigError(f"output must be a .safetensors file, got {str(path)!r}")
    cfg = {key: model.pretrained_cfg[key] for key in _CFG_KEYS if key in model.pretrained_cfg}
    if "classes" in model.pretrained_cfg:
        cfg["classes"] = model.pretrained_cfg["classes"]
    if "resolution" in model.pretrained_cfg:
        cfg["resolution"] = model.pretrained_cfg["resolution"]
    cfg.update(metadata or {})
    try:
        encoded = {key: json.dumps(value) for key, value in cfg.items() if key != "format"}
    except TypeError as exc:
        raise ConfigError(f"metadata values must be JSON-serialisable: {exc}") from exc
    encoded["format"] = FORMAT
    tensors = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    tmp = _temporary_sibling(path)
    try:
        save_file(tensors, str(tmp), metadata=encoded)
        _chmod_default(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The decoded metadata of a mobivision safetensors file (``format`` kept as the plain string)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
        return {key: value if key == "format" else json.loads(value) for key, value in raw.items()}
    except (SafetensorError, OSError, json.JSONDecodeError) as exc:
        raise WeightFileError(f"{path}: cannot read safetensors metadata ({type(exc).__name__}: {exc})") from exc


def convert_weights(
    source: str | os.PathLike,
    output: str | os.PathLike,
    *,
    arch: str | None = None,
    width_mult: float | None = None,
    resolution: int | None = None,
) -> Path:
    """Convert ``source`` (any format ``read_weights`` detects) into a verified mobivision safetensors file.

    Args:
        source: Weight file, TF checkpoint prefix / ``.index`` / folder, or URL.
        output: The ``.safetensors`` file to write; must not be the source.
        arch: Architecture, when the file cannot tell (it must agree with the file's otherwise).
        width_mult: Width multiplier; read from the tensors for MobileNetV1, 1.0 by default for V2/V3.
        resolution: Training input size to record (default: the source's metadata, else the size a released
            TF / Keras file, its folder or its archive states in its name, else 224).

    Returns:
        The output path.

    Raises:
        WeightFileError: unreadable or unsupported source, or a written file that does not reproduce
            the model's outputs.
        ConfigError: bad output path or arguments.
    """
    from mobivision.factory import create_model  # the factory imports the readers this module uses

    output = Path(output)
    if output.suffix != ".safetensors":
        raise ConfigError(f"output must be a .safetensors file, got {str(output)!r}")
    if not is_url(source) and output.resolve() == Path(source).expanduser().resolve():
        raise ConfigError(f"refusing to overwrite the input {str(source)!r}; choose another output file")
    weights = read_weights(source)
    if output.resolve() == weights.path.resolve():
        raise ConfigError(f"refusing to overwrite the input {str(weights.path)!r}; choose another output file")
    arch = arch or weights.arch
    if arch == "unknown":
        raise WeightFileError(f"{weights.path}: cannot tell the architecture; pass arch")
    width = _resolve_width(weights, arch, width_mult)
    num_classes = _file_classes(weights)
    model = create_model(arch, width_mult=width, num_classes=num_classes, pretrained=source).eval()
    resolution = resolution or weights.metadata.get("resolution") or _resolution_from_name(weights)
    source_format = weights.metadata.get("source_format", weights.source_format)
    log.info(
        "read %s: format %s, %s width %g, %d classes, padding %s",
        weights.path, source_format, arch, width, num_classes, model.pretrained_cfg["padding"],
    )  # fmt: skip
    tmp = _temporary_sibling(output)
    try:
        save_weights(model, tmp, metadata={"resolution": int(resolution), "source_format": source_format})
        _verify(model, tmp, arch=arch, width_mult=width, num_classes=num_classes, resolution=int(resolution))
        os.replace(tmp, output)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("wrote %s", output)
    return output


def _resolve_width(weights: LoadedWeights, arch: str, width_mult: float | None) -> float:
    if width_mult is not None:
        return width_mult
    if arch == "mobilenet_v1":
        inferred = infer_v1_width(weights.state_dict)
        if inferred is not None:
            return inferred
    return float(weights.metadata.get("width_mult", 1.0))


def _file_classes(weights: LoadedWeights) -> int:
    fc = weights.state_dict.get("head.fc.weight")
    return int(fc.shape[0]) if fc is not None else 0


def _resolution_from_name(weights: LoadedWeights) -> int:
    """The training resolution a released TF / Keras file states in its name, its folder's or its archive's."""
    if weights.source_format in ("tf_slim", "keras"):
        for part in (weights.path, *weights.path.parents[:2]):
            if match := _last_resolution_in(part.name):
                return match
    return DEFAULT_RESOLUTION


def _last_resolution_in(name: str) -> int | None:
    for suffix in _ARCHIVE_FOLDER_SUFFIXES:
        name = name.removesuffix(suffix)
    found = _TF_RESOLUTION_IN_NAME.findall(name)
    return int(found[-1]) if found else None


def _verify(
    model: ImageClassifier, path: Path, *, arch: str, width_mult: float, num_classes: int, resolution: int
) -> None:
    """Reload ``path`` as a user would and require identical outputs on a random batch."""
    from mobivision.factory import create_model

    reloaded = create_model(arch, width_mult=width_mult, num_classes=num_classes, pretrained=path).eval()
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, resolution, resolution, generator=generator) * 2 - 1
    with torch.no_grad():
        expected, actual = model(x), reloaded(x)
    diff = (expected - actual).abs().max().item() if expected.numel() else 0.0
    if expected.shape != actual.shape or diff > 0:
        raise WeightFileError(
            f"converted file does not reproduce the source model: outputs differ by {diff:g} "
            f"(source config {model.pretrained_cfg}, reloaded config {reloaded.pretrained_cfg})"
        )


def _temporary_sibling(path: Path) -> Path:
    """A fresh name beside ``path`` (same file system, so ``os.replace`` is atomic) ending in .safetensors."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp.safetensors")
    os.close(fd)
    return Path(name)


def _chmod_default(path: Path) -> None:
    """Give ``path`` the mode a plain ``open()`` would (mkstemp and safetensors leave 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
