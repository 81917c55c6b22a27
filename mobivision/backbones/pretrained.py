"""Read the MobileNet weights people actually have and load them into mobivision models.

Formats are detected from the file, not declared: TF-Slim tensor bundles (``.ckpt.index`` +
``.ckpt.data-*``), Keras HDF5 (``mobilenet_<alpha>_<size>_tf.h5``), timm ``mobilenetv1_*`` and
torchvision MobileNetV2/V3 state dicts (``.pth`` or ``.safetensors``), Lightning checkpoints, and our own
safetensors files. Every format is first converted to mobivision's state-dict names
(``backbone.layers.Conv2d_i_*`` / ``backbone.features.*`` and ``head.*``), then loaded with strict checks:
a wrong shape names the key and both shapes, a missing key is an error, and a re-initialised classifier
is reported.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from mobivision.backbones.download import download, is_url
from mobivision.backbones.mobilenet_v1 import MOBILENET_V1_CONV_DEFS, scaled_depth
from mobivision.errors import WeightFileError
from mobivision.layers import TF_BN_EPS

log = logging.getLogger("mobivision")

_WRAPPER_KEYS = ("state_dict", "model", "state_dict_ema", "model_ema", "module")
_STRIP_PREFIXES = ("module.", "_orig_mod.")
# timm mobilenetv1 stage layout: (stage, block) for Conv2d_1 .. Conv2d_13.
_TIMM_V1_BLOCKS = [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1), *((3, j) for j in range(6)), (4, 0), (4, 1)]
# Number of blocks in torchvision's ``features`` identifies the architecture.
_TORCHVISION_BY_DEPTH = {19: "mobilenet_v2", 17: "mobilenet_v3_large", 13: "mobilenet_v3_small"}


@dataclass
class LoadedWeights:
    """Weights converted to mobivision names, with what is known about how they were trained."""

    path: Path
    source_format: str  # tf_slim | keras | timm | torchvision | mobivision
    arch: str
    state_dict: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)


def read_weights(source: str | os.PathLike) -> LoadedWeights:
    """Read a weight file, folder or URL of any supported format."""
    path = download(str(source)) if is_url(source) else Path(source).expanduser()
    if not path.exists() and not _is_tf_checkpoint(path):
        raise WeightFileError(f"pretrained weights not found: {path}")
    path = _pick_file(path)
    try:
        return _read_any(path)
    except WeightFileError as exc:
        if str(path) in str(exc) or path.name in str(exc):
            raise
        raise WeightFileError(f"{path}: {exc}") from exc


def _read_any(path: Path) -> LoadedWeights:
    if _is_tf_checkpoint(path):
        from mobivision.backbones.tf_bundle import read_tf_checkpoint  # lazy: no TF readers at import
        from mobivision.backbones.tf_mapping import tf_slim_to_mobivision

        state = tf_slim_to_mobivision(read_tf_checkpoint(path))
        return _with_v1_metadata(LoadedWeights(path, "tf_slim", "mobilenet_v1", state), tf=True)
    if path.suffix in (".h5", ".hdf5"):
        from mobivision.backbones.keras_h5 import read_keras_h5  # lazy: h5py only when needed
        from mobivision.backbones.tf_mapping import keras_to_mobivision

        state = keras_to_mobivision(read_keras_h5(path))
        return _with_v1_metadata(LoadedWeights(path, "keras", "mobilenet_v1", state), tf=True)
    state, metadata = _read_torch_file(path)
    return _identify(path, state, metadata)


def _pick_file(path: Path) -> Path:
    """A folder (e.g. an unpacked TF-Slim archive) must hold exactly one weight file."""
    if not path.is_dir():
        return path
    candidates = [
        p for p in sorted(path.iterdir()) if p.suffix in (".index", ".h5", ".hdf5", ".safetensors", ".pth", ".pt")
    ]
    if not candidates:  # an unpacked archive usually holds one top-level folder
        subfolders = [p for p in path.iterdir() if p.is_dir()]
        if len(subfolders) == 1:
            return _pick_file(subfolders[0])
    if len(candidates) != 1:
        raise WeightFileError(
            f"{path}: expected exactly one weight file (.ckpt.index, .h5, .safetensors, .pth) in the folder, "
            f"found {[str(p.relative_to(path)) for p in candidates] or 'none'}"
        )
    return candidates[0]


def _is_tf_checkpoint(path: Path) -> bool:
    return path.suffix == ".index" or Path(f"{path}.index").exists()


def _read_torch_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and metadata of a ``.safetensors`` or ``torch.save`` file, wrappers and prefixes removed."""
    metadata: dict[str, Any] = {}
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as f:
                raw = f.metadata() or {}
            metadata = {k: json.loads(v) for k, v in raw.items() if k != "format"}
            state = load_file(str(path))
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            state, metadata = _unwrap(obj)
    except (SafetensorError, RuntimeError, OSError, EOFError, ValueError, json.JSONDecodeError) as exc:
        raise WeightFileError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from exc
    except Exception as exc:  # torch.load raises pickle errors of many types for foreign files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightFileError(f"{path}: not a PyTorch or safetensors weight file ({first_line})") from exc
    return _strip_prefixes(state), metadata


def _unwrap(obj: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Find the state dict inside training checkpoints (``state_dict``, ``model``, EMA, ...)."""
    metadata: dict[str, Any] = {}
    if isinstance(obj, dict) and isinstance(obj.get("mobivision"), dict):
        metadata = dict(obj["mobivision"])
    for key in _WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError("no state dict of tensors found")
    return obj, metadata


def _strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DDP's ``module.``, torch.compile's ``_orig_mod.`` and a Lightning task's ``model.``."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in _STRIP_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    if all(k.startswith("model.") for k in out):
        out = {k[len("model.") :]: v for k, v in out.items()}
    return out


def _identify(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, Any]) -> LoadedWeights:
    if "backbone.layers.Conv2d_0.conv.weight" in state:
        arch = metadata.get("architecture", "mobilenet_v1")
        return _with_v1_metadata(LoadedWeights(path, "mobivision", arch, state, metadata), tf=False)
    if "backbone.features.0.0.weight" in state:
        depth = _features_depth(state, "backbone.features.")
        arch = metadata.get("architecture") or _TORCHVISION_BY_DEPTH.get(depth, "unknown")
        return LoadedWeights(path, "mobivision", arch, state, metadata)
    if "conv_stem.weight" in state:
        if "blocks.4.1.conv_pw.weight" not in state or "conv_head.weight" in state:
            raise WeightFileError(
                f"{path}: a timm checkpoint, but not of mobilenetv1_* (mobivision reads timm's MobileNetV1 "
                "family; use torchvision weights for MobileNetV2/V3)"
            )
        return _with_v1_metadata(LoadedWeights(path, "timm", "mobilenet_v1", _timm_v1_to_mobivision(state)), tf=False)
    if "features.0.0.weight" in state:
        depth = _features_depth(state, "features.")
        arch = _TORCHVISION_BY_DEPTH.get(depth)
        if arch is None:
            raise WeightFileError(
                f"{path}: torchvision-style state dict with {depth} feature blocks is not a MobileNet"
            )
        return LoadedWeights(path, "torchvision", arch, _torchvision_to_mobivision(state, arch))
    sample = ", ".join(list(state)[:5])
    raise WeightFileError(
        f"{path}: unrecognised weights (first keys: {sample}); expected TF-Slim, Keras, timm mobilenetv1, "
        "torchvision MobileNetV2/V3 or mobivision weights"
    )


def _features_depth(state: dict[str, torch.Tensor], prefix: str) -> int:
    indices = {int(m.group(1)) for k in state if (m := re.match(re.escape(prefix) + r"(\d+)\.", k))}
    return max(indices) + 1


def infer_v1_width(state: dict[str, torch.Tensor], *, min_depth: int = 8) -> float | None:
    """The shortest decimal width ``w`` with ``max(int(d * w), min_depth)`` equal to every pointwise depth.

    ``Conv2d_13``'s depth alone (``c / 1024``) is exact only for dyadic widths; 0.35 gives 358 channels and
    358 / 1024 would round other layers differently.
    """
    depths: list[tuple[int, int]] = []
    for index, layer_def in enumerate(MOBILENET_V1_CONV_DEFS):
        suffix = "" if index == 0 else "_pointwise"
        weight = state.get(f"backbone.layers.Conv2d_{index}{suffix}.conv.weight")
        if weight is None:
            return None
        depths.append((layer_def.depth, int(weight.shape[0])))
    unclamped = [c / d for d, c in depths if c > min_depth]
    if not unclamped:
        return None
    low = max(unclamped)
    for decimals in range(1, 7):
        scale = 10**decimals
        candidate = math.ceil(low * scale - 1e-9) / scale
        if all(scaled_depth(d, width_mult=candidate, min_depth=min_depth) == c for d, c in depths):
            return candidate
    return None


def _with_v1_metadata(weights: LoadedWeights, *, tf: bool) -> LoadedWeights:
    """Fill in what the tensors reveal: width, classes, and TF's padding/BN for TF-trained weights."""
    meta = weights.metadata
    width = infer_v1_width(weights.state_dict)
    if width is not None:
        meta.setdefault("width_mult", width)
    fc = weights.state_dict.get("head.fc.weight")
    meta.setdefault("num_classes", int(fc.shape[0]) if fc is not None else 0)
    if tf:
        meta.setdefault("padding", "tf")
        meta.setdefault("bn_eps", TF_BN_EPS)
        meta.setdefault("label_offset", 1 if meta["num_classes"] == 1001 else 0)
    return weights


def _timm_v1_to_mobivision(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    names = {"conv_stem.": "backbone.layers.Conv2d_0.conv.", "bn1.": "backbone.layers.Conv2d_0.bn.",
             "classifier.": "head.fc."}  # fmt: skip
    for i, (stage, block) in enumerate(_TIMM_V1_BLOCKS, start=1):
        src, dst = f"blocks.{stage}.{block}.", f"backbone.layers.Conv2d_{i}_"
        names |= {src + "conv_dw.": dst + "depthwise.conv.", src + "bn1.": dst + "depthwise.bn.",
                  src + "conv_pw.": dst + "pointwise.conv.", src + "bn2.": dst + "pointwise.bn."}  # fmt: skip
    return _rename_by_prefix(state, names)


def _torchvision_to_mobivision(state: dict[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    if arch == "mobilenet_v2":
        names = {"features.": "backbone.features.", "classifier.1.": "head.fc."}
    else:
        names = {
            "features.": "backbone.features.",
            "classifier.0.": "head.pre_fc.",
            "classifier.3.": "head.fc.",
        }
    return _rename_by_prefix(state, names)


def _rename_by_prefix(state: dict[str, torch.Tensor], names: dict[str, str]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        prefix = next((p for p in names if key.startswith(p)), None)
        if prefix is None:
            raise WeightFileError(f"unexpected key {key!r}; expected keys starting with {sorted(names)}")
        out[names[prefix] + key[len(prefix) :]] = value
    return out


def load_into(model: nn.Module, weights: LoadedWeights, *, arch: str, prefix: str = "") -> None:
    """Copy ``weights`` into ``model`` (a classifier, or a bare backbone with ``prefix="backbone."``).

    Raises:
        WeightFileError: architecture mismatch, a missing key, or a tensor of the wrong shape.
    """
    if weights.arch != arch:
        raise WeightFileError(
            f"{weights.path} holds {weights.arch} weights ({weights.source_format} format), but the model is {arch}"
        )
    source = {k[len(prefix) :]: v for k, v in weights.state_dict.items() if k.startswith(prefix)}
    target = model.state_dict()
    head_kept = _fit_classifier(model, source, target, weights)
    missing = [k for k in target if k not in source and not k.endswith("num_batches_tracked")]
    if missing:
        raise WeightFileError(f"{weights.path}: missing {len(missing)} keys the model needs, e.g. {missing[:5]}")
    for key, value in target.items():
        if key in source and source[key].shape != value.shape:
            raise WeightFileError(
                f"{weights.path}: tensor {key!r} has shape {tuple(source[key].shape)} in the file but "
                f"{tuple(value.shape)} in the model{_width_hint(weights, model)}"
            )
    unused = sorted(set(source) - set(target))
    if unused:  # e.g. layers past a backbone's last requested endpoint
        log.info("%s: %d tensors not used by this model, e.g. %s", weights.path, len(unused), unused[:3])
    model.load_state_dict({k: v for k, v in source.items() if k in target}, strict=False)
    if hasattr(model, "pretrained_cfg"):
        for key in ("mean", "std", "resolution"):
            if key in weights.metadata:
                model.pretrained_cfg[key] = weights.metadata[key]
        classes = weights.metadata.get("classes")
        if head_kept and classes:
            model.pretrained_cfg["classes"] = classes[1:] if head_kept == "dropped_background" else classes


def _fit_classifier(
    model: nn.Module, source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], weights: LoadedWeights
) -> str:
    """Adapt the file's logits to the model's: drop TF's background class, or re-initialise and report.

    Returns:
        ``"kept"``, ``"dropped_background"``, or ``""`` (no classifier, or re-initialised).
    """
    head_keys = [k for k in target if k.startswith("head.fc.")]
    if not head_keys:
        return ""
    file_classes = source["head.fc.weight"].shape[0] if "head.fc.weight" in source else None
    model_classes = target["head.fc.weight"].shape[0]
    offset = weights.metadata.get("label_offset", 0)
    if file_classes == model_classes:
        model.pretrained_cfg["label_offset"] = offset
        return "kept"
    if file_classes == model_classes + 1 and offset == 1:
        log.warning("%s: dropping the background class 0 of the %d-class logits", weights.path, file_classes)
        for key in head_keys:
            source[key] = source[key][1:]
        return "dropped_background"
    for key in head_keys:
        source.pop(key, None)
        source[key] = target[key]
    log.warning(
        "%s: classifier re-initialised for %d classes (file has %s); skipped keys: %s",
        weights.path, model_classes, file_classes or "no classifier", head_keys,
    )  # fmt: skip
    return ""


def _width_hint(weights: LoadedWeights, model: nn.Module) -> str:
    file_width = weights.metadata.get("width_mult")
    model_width = getattr(model, "width_mult", None) or getattr(getattr(model, "backbone", None), "width_mult", None)
    if file_width is not None and model_width is not None and abs(file_width - model_width) > 1e-6:
        return f" (the file looks like width_mult={file_width:g}, the model has width_mult={model_width:g})"
    return ""
