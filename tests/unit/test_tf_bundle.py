"""Tests of the TensorFlow checkpoint reader and the TF-Slim -> mobivision mapping.

The fixtures were written by TensorFlow itself (tools/fixtures/make_tf_fixtures.py); no test imports it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mobivision.backbones.tf_bundle import read_tf_checkpoint
from mobivision.backbones.tf_mapping import is_keras_mobilenet, is_tf_slim, tf_slim_to_mobivision
from mobivision.errors import WeightFileError

SLIM_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "tf_slim_mobilenet_v1_0.25"
PREFIX = SLIM_DIR / "model.ckpt"
DATA_NAME = "model.ckpt.data-00000-of-00001"
WIDTH = 0.25
NUM_CLASSES = 1001
# MobileNetV1 (paper, Table 1): output channels of Conv2d_0, then of each pointwise conv Conv2d_1 .. 13.
FIRST_CHANNELS = 32
POINTWISE_CHANNELS = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
BN_VARIABLES = ("gamma", "beta", "moving_mean", "moving_variance")


def scaled(channels: int) -> int:
    """TF-Slim's width-multiplied channel count (min_depth 8)."""
    return max(int(channels * WIDTH), 8)


def slim_shapes() -> dict[str, tuple[int, ...]]:
    """Every variable TF-Slim's mobilenet_v1 creates at width 0.25, with its TF shape."""
    shapes: dict[str, tuple[int, ...]] = {"global_step": ()}

    def conv(scope: str, weights: str, shape: tuple[int, ...], channels: int) -> None:
        shapes[f"MobilenetV1/{scope}/{weights}"] = shape
        for name in BN_VARIABLES:
            shapes[f"MobilenetV1/{scope}/BatchNorm/{name}"] = (channels,)

    channels = scaled(FIRST_CHANNELS)
    conv("Conv2d_0", "weights", (3, 3, 3, channels), channels)
    for i, out in enumerate(POINTWISE_CHANNELS, start=1):
        conv(f"Conv2d_{i}_depthwise", "depthwise_weights", (3, 3, channels, 1), channels)
        conv(f"Conv2d_{i}_pointwise", "weights", (1, 1, channels, scaled(out)), scaled(out))
        channels = scaled(out)
    shapes["MobilenetV1/Logits/Conv2d_1c_1x1/weights"] = (1, 1, channels, NUM_CLASSES)
    shapes["MobilenetV1/Logits/Conv2d_1c_1x1/biases"] = (NUM_CLASSES,)
    return shapes


def mobivision_shapes(with_head: bool = True) -> dict[str, tuple[int, ...]]:
    """Every state-dict entry the mapping must produce at width 0.25, with its PyTorch shape."""
    shapes: dict[str, tuple[int, ...]] = {}

    def layer(name: str, weight_shape: tuple[int, ...]) -> None:
        shapes[f"backbone.layers.{name}.conv.weight"] = weight_shape
        for entry in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"backbone.layers.{name}.bn.{entry}"] = (weight_shape[0],)

    channels = scaled(FIRST_CHANNELS)
    layer("Conv2d_0", (channels, 3, 3, 3))
    for i, out in enumerate(POINTWISE_CHANNELS, start=1):
        layer(f"Conv2d_{i}_depthwise", (channels, 1, 3, 3))
        layer(f"Conv2d_{i}_pointwise", (scaled(out), channels, 1, 1))
        channels = scaled(out)
    if with_head:
        shapes["head.fc.weight"] = (NUM_CLASSES, channels)
        shapes["head.fc.bias"] = (NUM_CLASSES,)
    return shapes


@pytest.fixture(scope="module")
def tensors() -> dict[str, np.ndarray]:
    return read_tf_checkpoint(PREFIX)


@pytest.fixture
def checkpoint_copy(tmp_path: Path) -> Path:
    """A writable copy of the TF-Slim checkpoint; returns its prefix."""
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(f"{PREFIX}{suffix}", tmp_path / f"model.ckpt{suffix}")
    return tmp_path / "model.ckpt"


# ---------------------------------------------------------------------------------------------------------
# Reading.


def test_reads_every_tf_slim_variable_with_its_shape(tensors: dict[str, np.ndarray]) -> None:
    assert {name: value.shape for name, value in tensors.items()} == slim_shapes()
    assert list(tensors) == list(np.load(SLIM_DIR / "variables.npz")["names"])


def test_values_equal_tensorflows_own_reading(tensors: dict[str, np.ndarray]) -> None:
    dump = np.load(SLIM_DIR / "variables.npz")
    for name in dump.files:
        if name != "names":
            assert tensors[name].dtype == dump[name].dtype, name
            np.testing.assert_array_equal(tensors[name], dump[name], err_msg=name)


def test_bookkeeping_tensors_are_kept(tensors: dict[str, np.ndarray]) -> None:
    assert tensors["global_step"].dtype == np.int64
    assert int(tensors["global_step"]) == 123456


def test_batch_norm_statistics_are_not_trivial(tensors: dict[str, np.ndarray]) -> None:
    variance = tensors["MobilenetV1/Conv2d_5_pointwise/BatchNorm/moving_variance"]
    assert variance.min() > 0 and variance.std() > 0.1
    assert not np.allclose(tensors["MobilenetV1/Conv2d_5_pointwise/BatchNorm/moving_mean"], 0)


@pytest.mark.parametrize(
    "path",
    [PREFIX, str(PREFIX), Path(f"{PREFIX}.index"), SLIM_DIR, str(SLIM_DIR), SLIM_DIR / DATA_NAME],
    ids=["prefix", "prefix-str", "index", "directory", "directory-str", "data-file"],
)
def test_accepts_prefix_index_or_directory(path: Path | str, tensors: dict[str, np.ndarray]) -> None:
    again = read_tf_checkpoint(path)
    assert list(again) == list(tensors)
    for name, value in tensors.items():
        np.testing.assert_array_equal(again[name], value)


def test_returned_arrays_are_writable_copies() -> None:
    value = read_tf_checkpoint(PREFIX)["MobilenetV1/Conv2d_0/weights"]
    value[...] = 0
    assert not np.all(read_tf_checkpoint(PREFIX)["MobilenetV1/Conv2d_0/weights"] == 0)


def test_reads_every_dtype_of_an_object_based_checkpoint() -> None:
    tensors = read_tf_checkpoint(SLIM_DIR / "tf2_object")
    expected = np.load(SLIM_DIR / "tf2_object" / "values.npz")
    assert sorted(tensors) == sorted(expected.files)
    for name in expected.files:
        value, reference = tensors[name], expected[name]
        if name == "_CHECKPOINTABLE_OBJECT_GRAPH":
            assert value.shape == () and value.item() == reference.tobytes()
        elif name.startswith("text/"):
            assert value.dtype == object and value.tolist() == [b"mobile", b"", b"net" * 50]
            np.testing.assert_array_equal(value.astype(bytes), reference)
        else:
            assert value.dtype == reference.dtype, name
            np.testing.assert_array_equal(value, reference, err_msg=name)
    assert tensors["bf16/.ATTRIBUTES/VARIABLE_VALUE"].tolist() == [1.0, -3.140625, 256.0]
    assert tensors["i64/.ATTRIBUTES/VARIABLE_VALUE"] == -(2**40) - 3


def test_reads_a_checkpoint_with_two_shards() -> None:
    tensors = read_tf_checkpoint(SLIM_DIR / "sharded")
    assert sorted(tensors) == ["a", "b"]
    np.testing.assert_array_equal(tensors["a"], np.arange(5, dtype=np.float32))
    np.testing.assert_array_equal(tensors["b"], np.arange(3, dtype=np.int32))
    assert tensors["b"].dtype == np.int32


# ---------------------------------------------------------------------------------------------------------
# Errors: always a WeightFileError that names the file.


def test_truncated_data_file(checkpoint_copy: Path) -> None:
    data = Path(f"{checkpoint_copy}.data-00000-of-00001")
    data.write_bytes(data.read_bytes()[:1200])
    with pytest.raises(WeightFileError, match=re.escape(f"{data} is truncated: tensor 'MobilenetV1/")) as info:
        read_tf_checkpoint(checkpoint_copy)
    assert "but file has 1200" in str(info.value)


def test_missing_data_file(checkpoint_copy: Path) -> None:
    data = Path(f"{checkpoint_copy}.data-00000-of-00001")
    data.unlink()
    with pytest.raises(WeightFileError, match=re.escape(f"{data}: no such file")):
        read_tf_checkpoint(checkpoint_copy)


@pytest.mark.parametrize("keep", [4000, 2839, 47, 0])
def test_truncated_index_file(checkpoint_copy: Path, keep: int) -> None:
    index = Path(f"{checkpoint_copy}.index")
    index.write_bytes(index.read_bytes()[:keep])
    with pytest.raises(WeightFileError, match=re.escape(f"{index}: ")) as info:
        read_tf_checkpoint(checkpoint_copy)
    assert "expected a TensorFlow checkpoint index" in str(info.value)


@pytest.mark.parametrize("position", [0, 100, 3000, -60])
def test_corrupt_index_block_fails_its_checksum(checkpoint_copy: Path, position: int) -> None:
    index = Path(f"{checkpoint_copy}.index")
    content = bytearray(index.read_bytes())
    content[position] ^= 0x10
    index.write_bytes(bytes(content))
    with pytest.raises(WeightFileError, match=re.escape(f"{index}: checksum mismatch")):
        read_tf_checkpoint(checkpoint_copy)


def test_corrupt_footer(checkpoint_copy: Path) -> None:
    index = Path(f"{checkpoint_copy}.index")
    content = bytearray(index.read_bytes())
    content[-48:-8] = b"\xff" * 40
    index.write_bytes(bytes(content))
    with pytest.raises(WeightFileError, match=re.escape(f"{index}: ")):
        read_tf_checkpoint(checkpoint_copy)


def test_file_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    index = tmp_path / "notes.index"
    index.write_text("just some text, long enough to hold an SSTable footer if it were one\n")
    with pytest.raises(WeightFileError, match=re.escape(f"{index}: bad SSTable magic")):
        read_tf_checkpoint(index)


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(WeightFileError, match=re.escape(f"{tmp_path / 'nothing.ckpt.index'}: no such file")):
        read_tf_checkpoint(tmp_path / "nothing.ckpt")


@pytest.mark.parametrize("copies", [0, 2])
def test_directory_needs_exactly_one_index(tmp_path: Path, copies: int) -> None:
    for i in range(copies):
        shutil.copy(f"{PREFIX}.index", tmp_path / f"model{i}.ckpt.index")
    with pytest.raises(WeightFileError, match=re.escape(f"{tmp_path}: expected exactly one *.index")):
        read_tf_checkpoint(tmp_path)


def test_partitioned_variable_is_rejected_by_name() -> None:
    index = SLIM_DIR / "partitioned" / "model.ckpt.index"
    with pytest.raises(WeightFileError, match=re.escape(f"{index}: tensor 'part/w' is a partitioned variable")):
        read_tf_checkpoint(index)


# ---------------------------------------------------------------------------------------------------------
# TF-Slim -> mobivision mapping.


def test_mapping_produces_every_key_with_pytorch_shapes(tensors: dict[str, np.ndarray]) -> None:
    state = tf_slim_to_mobivision(tensors)
    assert {key: tuple(value.shape) for key, value in state.items()} == mobivision_shapes()
    assert all(value.dtype == torch.float32 for value in state.values())


def test_mapping_converts_layouts(tensors: dict[str, np.ndarray]) -> None:
    state = tf_slim_to_mobivision(tensors)
    conv0 = tensors["MobilenetV1/Conv2d_0/weights"]  # [h, w, in, out]
    assert state["backbone.layers.Conv2d_0.conv.weight"][5, 2, 0, 1].item() == conv0[0, 1, 2, 5]
    depthwise = tensors["MobilenetV1/Conv2d_4_depthwise/depthwise_weights"]  # [h, w, channel, 1]
    assert state["backbone.layers.Conv2d_4_depthwise.conv.weight"][17, 0, 2, 1].item() == depthwise[2, 1, 17, 0]
    pointwise = tensors["MobilenetV1/Conv2d_9_pointwise/weights"]
    assert state["backbone.layers.Conv2d_9_pointwise.conv.weight"][100, 3, 0, 0].item() == pointwise[0, 0, 3, 100]
    logits = tensors["MobilenetV1/Logits/Conv2d_1c_1x1/weights"]  # [1, 1, in, classes]
    assert state["head.fc.weight"][1000, 7].item() == logits[0, 0, 7, 1000]
    np.testing.assert_array_equal(state["head.fc.bias"].numpy(), tensors["MobilenetV1/Logits/Conv2d_1c_1x1/biases"])
    for ours, theirs in [("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean")]:
        np.testing.assert_array_equal(
            state[f"backbone.layers.Conv2d_13_pointwise.bn.{ours}"].numpy(),
            tensors[f"MobilenetV1/Conv2d_13_pointwise/BatchNorm/{theirs}"],
        )
    np.testing.assert_array_equal(
        state["backbone.layers.Conv2d_2_depthwise.bn.running_var"].numpy(),
        tensors["MobilenetV1/Conv2d_2_depthwise/BatchNorm/moving_variance"],
    )


def test_mapping_ignores_moving_average_shadows(tensors: dict[str, np.ndarray]) -> None:
    shadowed = dict(tensors)
    shadowed["MobilenetV1/Conv2d_0/weights/ExponentialMovingAverage"] = np.zeros((3, 3, 3, 8), np.float32)
    state = tf_slim_to_mobivision(shadowed)
    np.testing.assert_array_equal(
        state["backbone.layers.Conv2d_0.conv.weight"].numpy(),
        tensors["MobilenetV1/Conv2d_0/weights"].transpose(3, 2, 0, 1),
    )


def test_mapping_uses_ones_for_batch_norm_without_gamma(tensors: dict[str, np.ndarray]) -> None:
    no_scale = {name: value for name, value in tensors.items() if not name.endswith("/gamma")}
    state = tf_slim_to_mobivision(no_scale)
    assert torch.equal(state["backbone.layers.Conv2d_3_pointwise.bn.weight"], torch.ones(scaled(128)))


def test_mapping_of_a_feature_extractor_has_no_head(tensors: dict[str, np.ndarray]) -> None:
    backbone_only = {name: value for name, value in tensors.items() if "/Logits/" not in name}
    state = tf_slim_to_mobivision(backbone_only)
    assert {key: tuple(value.shape) for key, value in state.items()} == mobivision_shapes(with_head=False)


def test_mapping_lists_unknown_names(tensors: dict[str, np.ndarray]) -> None:
    extra = dict(tensors)
    extra["MobilenetV1/Conv2d_1_depthwise/act_quant/min"] = np.zeros((), np.float32)
    with pytest.raises(WeightFileError, match=re.escape("unknown tensor(s): Conv2d_1_depthwise/act_quant/min")):
        tf_slim_to_mobivision(extra)


def test_mapping_lists_missing_names(tensors: dict[str, np.ndarray]) -> None:
    missing = {name: value for name, value in tensors.items() if "Conv2d_11_pointwise" not in name}
    with pytest.raises(WeightFileError, match="missing tensor") as info:
        tf_slim_to_mobivision(missing)
    assert "Conv2d_11_pointwise/weights" in str(info.value)


def test_mapping_rejects_wrong_shapes(tensors: dict[str, np.ndarray]) -> None:
    wrong = dict(tensors)
    wrong["MobilenetV1/Conv2d_6_depthwise/BatchNorm/beta"] = np.zeros(7, np.float32)
    with pytest.raises(WeightFileError, match=re.escape("'Conv2d_6_depthwise/BatchNorm/beta' has shape [7]")):
        tf_slim_to_mobivision(wrong)


def test_mapping_rejects_other_checkpoints() -> None:
    with pytest.raises(WeightFileError, match="not a TF-Slim MobileNetV1 checkpoint"):
        tf_slim_to_mobivision({"MobilenetV2/Conv/weights": np.zeros((3, 3, 3, 32), np.float32)})


def test_format_detection(tensors: dict[str, np.ndarray]) -> None:
    assert is_tf_slim(tensors)
    assert not is_keras_mobilenet(tensors)
    assert not is_tf_slim(read_tf_checkpoint(SLIM_DIR / "sharded"))
