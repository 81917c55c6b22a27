"""Map TensorFlow MobileNetV1 weights (TF-Slim checkpoints, Keras HDF5 files) onto mobivision's state dict.

The readers in ``tf_bundle`` and ``keras_h5`` return raw name -> array dicts; this module renames them to
the keys of mobivision's MobileNetV1 classifier and converts TensorFlow's layouts to PyTorch's:

- convolution kernels HWIO [kh, kw, in, out] -> OIHW [out, in, kh, kw];
- depthwise kernels [kh, kw, C, 1] -> [C, 1, kh, kw];
- the logits, a 1x1 convolution with bias [1, 1, C, classes], -> a Linear weight [classes, C];
- BatchNorm gamma, beta, moving_mean, moving_variance -> ``bn.weight``, ``bn.bias``, ``bn.running_mean``,
  ``bn.running_var``. A BatchNorm without gamma (TF-Slim ``scale=False``) gets ones.

Files without a classifier (TF-Slim feature extractors, Keras ``*_no_top.h5``) map to backbone keys only.
The logits keep their class count: 1001 for TF-Slim (class 0 is "background"), 1000 for Keras.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from mobivision.errors import WeightFileError

NUM_SEPARABLE_LAYERS = 13
_SLIM_SCOPE = "MobilenetV1/"
# TF-Slim's released checkpoints already hold the moving averages in the main variables; the shadow copies
# and optimizer slots that training checkpoints also carry are ignored.
_IGNORED_SUFFIX = re.compile(r"/(ExponentialMovingAverage|RMSProp(_1)?|Momentum|Adam(_1)?)$")
_BN_PARAMETERS = {"beta": "bias", "moving_mean": "running_mean", "moving_variance": "running_var"}
_MAX_LISTED_NAMES = 12


@dataclass(frozen=True)
class _Layer:
    """One convolution + BatchNorm layer: our module name and the source names of its variables."""

    module: str
    kernel: str
    batch_norm_scope: str
    depthwise: bool


@dataclass(frozen=True)
class _Format:
    """How one weight format names MobileNetV1's variables."""

    description: str
    layers: tuple[_Layer, ...]
    logits_weights: str
    logits_biases: str


def _slim_format() -> _Format:
    """TF-Slim's names (``mobilenet_v1.py``), without the ``MobilenetV1/`` scope."""
    layers = [_Layer("Conv2d_0", "Conv2d_0/weights", "Conv2d_0/BatchNorm/", depthwise=False)]
    for i in range(1, NUM_SEPARABLE_LAYERS + 1):
        depthwise, pointwise = f"Conv2d_{i}_depthwise", f"Conv2d_{i}_pointwise"
        layers.append(_Layer(depthwise, f"{depthwise}/depthwise_weights", f"{depthwise}/BatchNorm/", True))
        layers.append(_Layer(pointwise, f"{pointwise}/weights", f"{pointwise}/BatchNorm/", False))
    return _Format(
        "TF-Slim MobileNetV1 checkpoint",
        tuple(layers),
        "Logits/Conv2d_1c_1x1/weights",
        "Logits/Conv2d_1c_1x1/biases",
    )


def _keras_format() -> _Format:
    """Keras Applications' names (``keras/applications/mobilenet.py``)."""
    layers = [_Layer("Conv2d_0", "conv1/kernel", "conv1_bn/", depthwise=False)]
    for i in range(1, NUM_SEPARABLE_LAYERS + 1):
        layers.append(_Layer(f"Conv2d_{i}_depthwise", f"conv_dw_{i}/depthwise_kernel", f"conv_dw_{i}_bn/", True))
        layers.append(_Layer(f"Conv2d_{i}_pointwise", f"conv_pw_{i}/kernel", f"conv_pw_{i}_bn/", False))
    return _Format("Keras MobileNet weights", tuple(layers), "conv_preds/kernel", "conv_preds/bias")


_SLIM = _slim_format()
_KERAS = _keras_format()


def is_tf_slim(tensors: Mapping[str, np.ndarray]) -> bool:
    """Whether ``tensors`` (from ``read_tf_checkpoint``) look like a TF-Slim MobileNetV1 checkpoint."""
    return f"{_SLIM_SCOPE}{_SLIM.layers[0].kernel}" in tensors


def is_keras_mobilenet(tensors: Mapping[str, np.ndarray]) -> bool:
    """Whether ``tensors`` (from ``read_keras_h5``) look like Keras Applications' MobileNet (V1)."""
    return _KERAS.layers[0].kernel in tensors and _KERAS.layers[1].kernel in tensors


def tf_slim_to_mobivision(tensors: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Convert a TF-Slim MobileNetV1 checkpoint to mobivision state-dict entries.

    Args:
        tensors: Name to array, as returned by ``read_tf_checkpoint``. Names outside the ``MobilenetV1/``
            scope (``global_step``, optimizer slots of other scopes) and ``.../ExponentialMovingAverage``
            shadow variables and optimizer slots (``/RMSProp``, ``/Momentum``, ``/Adam``) are ignored.

    Returns:
        ``backbone.layers.*`` entries and, when the checkpoint has logits, ``head.fc.weight`` [1001, C] and
        ``head.fc.bias`` [1001]; float32 tensors in PyTorch layouts.

    Raises:
        WeightFileError: A variable is missing, has an unexpected shape, or a ``MobilenetV1/`` name is
            unknown (e.g. quantization ranges of a quantized checkpoint).
    """
    scoped = {
        name.removeprefix(_SLIM_SCOPE): value
        for name, value in tensors.items()
        if name.startswith(_SLIM_SCOPE) and not _IGNORED_SUFFIX.search(name)
    }
    if not scoped:
        raise WeightFileError(f"no '{_SLIM_SCOPE}...' tensors; not a TF-Slim MobileNetV1 checkpoint")
    return _convert(scoped, _SLIM)


def keras_to_mobivision(tensors: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Convert Keras Applications' MobileNet weights to mobivision state-dict entries.

    Args:
        tensors: ``"<layer>/<weight>"`` to array, as returned by ``read_keras_h5``.

    Returns:
        ``backbone.layers.*`` entries and, when the file has ``conv_preds``, ``head.fc.weight``
        [1000, C] and ``head.fc.bias`` [1000]; float32 tensors in PyTorch layouts.

    Raises:
        WeightFileError: A weight is missing, has an unexpected shape, or is not part of MobileNet.
    """
    return _convert(tensors, _KERAS)


def _convert(tensors: Mapping[str, np.ndarray], fmt: _Format) -> dict[str, torch.Tensor]:
    """Check that ``tensors`` are exactly ``fmt``'s variables, then rename and re-layout them."""
    required = [name for layer in fmt.layers for name in _required_names(layer)]
    has_logits = fmt.logits_weights in tensors or fmt.logits_biases in tensors
    if has_logits:
        required += [fmt.logits_weights, fmt.logits_biases]
    _check_names("missing", [name for name in required if name not in tensors], fmt)
    known = {*required, *(f"{layer.batch_norm_scope}gamma" for layer in fmt.layers)}
    _check_names("unknown", sorted(set(tensors) - known), fmt)
    state: dict[str, torch.Tensor] = {}
    for layer in fmt.layers:
        state.update(_convert_layer(tensors, layer))
    if has_logits:
        weights = _expect_shape(
            tensors, fmt.logits_weights, "[1, 1, C, classes]", lambda s: len(s) == 4 and s[:2] == (1, 1)
        )
        state["head.fc.weight"] = _to_torch(weights[0, 0].T)
        biases = _expect_shape(tensors, fmt.logits_biases, "[classes]", lambda s: s == weights.shape[3:])
        state["head.fc.bias"] = _to_torch(biases)
    return state


def _required_names(layer: _Layer) -> list[str]:
    """The source names a layer cannot do without (gamma is optional)."""
    return [layer.kernel, *(f"{layer.batch_norm_scope}{name}" for name in _BN_PARAMETERS)]


def _check_names(problem: str, names: list[str], fmt: _Format) -> None:
    """Raise a ``WeightFileError`` listing ``names`` (at most a dozen of them), if there are any."""
    if not names:
        return
    listed = ", ".join(names[:_MAX_LISTED_NAMES])
    if len(names) > _MAX_LISTED_NAMES:
        listed += f", ... ({len(names) - _MAX_LISTED_NAMES} more)"
    raise WeightFileError(f"{fmt.description}: {len(names)} {problem} tensor(s): {listed}")


def _convert_layer(tensors: Mapping[str, np.ndarray], layer: _Layer) -> dict[str, torch.Tensor]:
    """Our ``conv.weight`` and ``bn.*`` entries of one layer."""
    prefix = f"backbone.layers.{layer.module}"
    if layer.depthwise:
        kernel = _expect_shape(tensors, layer.kernel, "[kh, kw, C, 1]", lambda s: len(s) == 4 and s[3] == 1)
        state = {f"{prefix}.conv.weight": _to_torch(kernel.transpose(2, 3, 0, 1))}
    else:
        kernel = _expect_shape(tensors, layer.kernel, "[kh, kw, in, out]", lambda s: len(s) == 4)
        state = {f"{prefix}.conv.weight": _to_torch(kernel.transpose(3, 2, 0, 1))}
    channels = kernel.shape[2] if layer.depthwise else kernel.shape[3]
    scope = layer.batch_norm_scope
    gamma_name = f"{scope}gamma"
    if gamma_name in tensors:
        state[f"{prefix}.bn.weight"] = _to_torch(_expect_channels(tensors, gamma_name, channels))
    else:
        state[f"{prefix}.bn.weight"] = torch.ones(channels)
    for name, ours in _BN_PARAMETERS.items():
        state[f"{prefix}.bn.{ours}"] = _to_torch(_expect_channels(tensors, f"{scope}{name}", channels))
    return state


def _expect_channels(tensors: Mapping[str, np.ndarray], name: str, channels: int) -> np.ndarray:
    """``tensors[name]``, checked to be a vector of ``channels`` values."""
    return _expect_shape(tensors, name, f"[{channels}]", lambda s: s == (channels,))


def _expect_shape(
    tensors: Mapping[str, np.ndarray], name: str, expected: str, ok: Callable[[tuple[int, ...]], bool]
) -> np.ndarray:
    """``tensors[name]`` as an array, if ``ok(shape)``; else a ``WeightFileError`` quoting ``expected``."""
    value = np.asarray(tensors[name])
    if not ok(value.shape):
        raise WeightFileError(f"'{name}' has shape {list(value.shape)}; expected {expected}")
    return value


def _to_torch(value: np.ndarray) -> torch.Tensor:
    """A float32 tensor holding a contiguous copy of ``value``."""
    return torch.tensor(np.ascontiguousarray(value), dtype=torch.float32)
