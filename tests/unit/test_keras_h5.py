"""Tests of the Keras 2 HDF5 weight reader and the Keras MobileNet -> mobivision mapping.

The fixtures were written by tf_keras (tools/fixtures/make_tf_fixtures.py); no test imports TensorFlow.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mobivision.backbones.keras_h5 import read_keras_h5
from mobivision.backbones.tf_mapping import is_keras_mobilenet, is_tf_slim, keras_to_mobivision
from mobivision.errors import WeightFileError

KERAS_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "keras_mobilenet_0.25"
WEIGHTS = KERAS_DIR / "mobilenet_2_5_128_tf.h5"
FULL_MODEL = KERAS_DIR / "tiny_full_model.h5"
ALPHA = 0.25
NUM_CLASSES = 1000
# Keras Applications' MobileNet: filters of conv1, then of each pointwise conv conv_pw_1 .. 13 (before alpha).
FIRST_FILTERS = 32
POINTWISE_FILTERS = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
BN_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


def keras_shapes() -> dict[str, tuple[int, ...]]:
    """Every weight of Keras's MobileNet(alpha=0.25, classes=1000), with its Keras shape."""
    shapes: dict[str, tuple[int, ...]] = {}

    def conv(layer: str, weight: str, shape: tuple[int, ...], channels: int) -> None:
        shapes[f"{layer}/{weight}"] = shape
        for name in BN_WEIGHTS:
            shapes[f"{layer}_bn/{name}"] = (channels,)

    channels = int(FIRST_FILTERS * ALPHA)
    conv("conv1", "kernel", (3, 3, 3, channels), channels)
    for i, filters in enumerate(POINTWISE_FILTERS, start=1):
        conv(f"conv_dw_{i}", "depthwise_kernel", (3, 3, channels, 1), channels)
        conv(f"conv_pw_{i}", "kernel", (1, 1, channels, int(filters * ALPHA)), int(filters * ALPHA))
        channels = int(filters * ALPHA)
    shapes["conv_preds/kernel"] = (1, 1, channels, NUM_CLASSES)
    shapes["conv_preds/bias"] = (NUM_CLASSES,)
    return shapes


@pytest.fixture(scope="module")
def tensors() -> dict[str, np.ndarray]:
    return read_keras_h5(WEIGHTS)


def write_h5(path: Path, layer_names: list[str] | None, weights: dict[str, np.ndarray]) -> None:
    """A weights-only Keras-style HDF5 file with one layer group per ``layer/weight`` key."""
    with h5py.File(path, "w") as file:
        if layer_names is not None:
            file.attrs["layer_names"] = np.array(layer_names, dtype="S")
        for key, value in weights.items():
            layer, weight = key.split("/")
            group = file.require_group(layer)
            names = [*group.attrs.get("weight_names", []), f"{layer}/{weight}:0".encode()]
            group.attrs["weight_names"] = np.array(names, dtype="S")
            group[f"{layer}/{weight}:0"] = value


# ---------------------------------------------------------------------------------------------------------
# Reading.


def test_reads_every_keras_weight_with_its_shape(tensors: dict[str, np.ndarray]) -> None:
    assert {name: value.shape for name, value in tensors.items()} == keras_shapes()
    assert list(tensors)[:2] == ["conv1/kernel", "conv1_bn/gamma"]
    assert all(value.dtype == np.float32 for value in tensors.values())


def test_values_equal_the_models_weights(tensors: dict[str, np.ndarray]) -> None:
    dump = np.load(KERAS_DIR / "variables.npz")
    assert len(dump.files) >= 5
    for name in dump.files:
        np.testing.assert_array_equal(tensors[name], dump[name], err_msg=name)


def test_reads_a_full_model_file_and_skips_optimizer_state() -> None:
    tensors = read_keras_h5(FULL_MODEL)
    expected = np.load(KERAS_DIR / "tiny_full_model_weights.npz")
    assert sorted(tensors) == sorted(expected.files)
    for name in expected.files:
        np.testing.assert_array_equal(tensors[name], expected[name], err_msg=name)


def test_reads_byte_string_attributes_and_chunked_layer_names(tmp_path: Path) -> None:
    path = tmp_path / "chunked.h5"
    write_h5(path, None, {"a/kernel": np.ones((2, 2), np.float32), "b/bias": np.arange(3.0)})
    with h5py.File(path, "r+") as file:
        file.attrs["layer_names0"] = np.array([b"a"])
        file.attrs["layer_names1"] = np.array([b"b"])
    tensors = read_keras_h5(path)
    assert list(tensors) == ["a/kernel", "b/bias"]
    np.testing.assert_array_equal(tensors["b/bias"], np.arange(3.0))


# ---------------------------------------------------------------------------------------------------------
# Errors: always a WeightFileError that names the file.


def test_file_that_is_not_hdf5(tmp_path: Path) -> None:
    path = tmp_path / "mobilenet_1_0_224_tf.h5"
    path.write_bytes(b"<html>404 Not Found</html>\n" * 10)
    with pytest.raises(WeightFileError, match=re.escape(f"{path}: not an HDF5 file")):
        read_keras_h5(path)


def test_truncated_hdf5_file(tmp_path: Path) -> None:
    path = tmp_path / "truncated.h5"
    path.write_bytes(WEIGHTS.read_bytes()[:300_000])
    with pytest.raises(WeightFileError, match=re.escape(f"{path}: ")):
        read_keras_h5(path)


def test_hdf5_without_layer_names(tmp_path: Path) -> None:
    path = tmp_path / "plain.h5"
    with h5py.File(path, "w") as file:
        file["data"] = np.zeros(3)
    with pytest.raises(WeightFileError, match=re.escape(f"{path}: no 'layer_names' attribute")):
        read_keras_h5(path)


def test_layer_without_group(tmp_path: Path) -> None:
    path = tmp_path / "broken.h5"
    write_h5(path, ["conv1", "ghost"], {"conv1/kernel": np.zeros((3, 3, 3, 8), np.float32)})
    with pytest.raises(WeightFileError, match=re.escape(f"{path}: layer 'ghost'")):
        read_keras_h5(path)


def test_weight_without_dataset(tmp_path: Path) -> None:
    path = tmp_path / "broken.h5"
    write_h5(path, ["conv1"], {"conv1/kernel": np.zeros((3, 3, 3, 8), np.float32)})
    with h5py.File(path, "r+") as file:
        del file["conv1/conv1/kernel:0"]
    with pytest.raises(WeightFileError, match=re.escape(f"{path}: weight 'conv1/kernel:0' of layer 'conv1'")):
        read_keras_h5(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(WeightFileError, match=re.escape(f"{tmp_path / 'absent.h5'}: no such file")):
        read_keras_h5(tmp_path / "absent.h5")


# ---------------------------------------------------------------------------------------------------------
# Keras -> mobivision mapping.


def test_mapping_produces_every_key_with_pytorch_shapes(tensors: dict[str, np.ndarray]) -> None:
    state = keras_to_mobivision(tensors)
    expected: dict[str, tuple[int, ...]] = {}
    channels = int(FIRST_FILTERS * ALPHA)
    layers = [("Conv2d_0", (channels, 3, 3, 3))]
    for i, filters in enumerate(POINTWISE_FILTERS, start=1):
        layers += [(f"Conv2d_{i}_depthwise", (channels, 1, 3, 3))]
        layers += [(f"Conv2d_{i}_pointwise", (int(filters * ALPHA), channels, 1, 1))]
        channels = int(filters * ALPHA)
    for name, shape in layers:
        expected[f"backbone.layers.{name}.conv.weight"] = shape
        for entry in ("weight", "bias", "running_mean", "running_var"):
            expected[f"backbone.layers.{name}.bn.{entry}"] = (shape[0],)
    expected["head.fc.weight"] = (NUM_CLASSES, channels)
    expected["head.fc.bias"] = (NUM_CLASSES,)
    assert {key: tuple(value.shape) for key, value in state.items()} == expected
    assert all(value.dtype == torch.float32 for value in state.values())


def test_mapping_converts_layouts(tensors: dict[str, np.ndarray]) -> None:
    state = keras_to_mobivision(tensors)
    assert state["backbone.layers.Conv2d_0.conv.weight"][6, 1, 2, 0].item() == tensors["conv1/kernel"][2, 0, 1, 6]
    depthwise = tensors["conv_dw_12/depthwise_kernel"]
    assert state["backbone.layers.Conv2d_12_depthwise.conv.weight"][99, 0, 1, 2].item() == depthwise[1, 2, 99, 0]
    pointwise = tensors["conv_pw_3/kernel"]
    assert state["backbone.layers.Conv2d_3_pointwise.conv.weight"][31, 5, 0, 0].item() == pointwise[0, 0, 5, 31]
    assert state["head.fc.weight"][999, 255].item() == tensors["conv_preds/kernel"][0, 0, 255, 999]
    np.testing.assert_array_equal(state["head.fc.bias"].numpy(), tensors["conv_preds/bias"])
    np.testing.assert_array_equal(
        state["backbone.layers.Conv2d_7_pointwise.bn.running_var"].numpy(), tensors["conv_pw_7_bn/moving_variance"]
    )
    np.testing.assert_array_equal(state["backbone.layers.Conv2d_0.bn.weight"].numpy(), tensors["conv1_bn/gamma"])


def test_mapping_of_no_top_weights_has_no_head(tensors: dict[str, np.ndarray]) -> None:
    no_top = {name: value for name, value in tensors.items() if not name.startswith("conv_preds/")}
    state = keras_to_mobivision(no_top)
    assert not any(key.startswith("head.") for key in state)
    assert len(state) == 27 * 5


def test_mapping_rejects_foreign_weights(tensors: dict[str, np.ndarray]) -> None:
    with pytest.raises(WeightFileError, match=re.escape("unknown tensor(s): dense/kernel")):
        keras_to_mobivision({**tensors, "dense/kernel": np.zeros((256, 10), np.float32)})
    with pytest.raises(WeightFileError, match=re.escape("missing tensor(s): conv1/kernel")):
        keras_to_mobivision(read_keras_h5(FULL_MODEL))


def test_format_detection(tensors: dict[str, np.ndarray]) -> None:
    assert is_keras_mobilenet(tensors)
    assert not is_tf_slim(tensors)
    assert not is_keras_mobilenet(read_keras_h5(FULL_MODEL))
