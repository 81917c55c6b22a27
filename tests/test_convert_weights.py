"""Tests of weight conversion (``mobivision.backbones.convert``) and its CLI ``tools/convert_weights.py``.

A converted file must rebuild the same network from ``create_model(name, pretrained=file)`` alone: the
timm reference and TensorFlow's own logits (REFERENCE.md, TF-Slim checkpoints) are reproduced from it.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from mobivision import create_model
from mobivision.backbones.convert import convert_weights, infer_v1_width, read_metadata, save_weights
from mobivision.errors import ConfigError, WeightFileError

ROOT = Path(__file__).resolve().parents[1]


def logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


def test_timm_to_safetensors_round_trip(timm_v1_100, tmp_path) -> None:
    output = convert_weights(timm_v1_100.pth, tmp_path / "v1.safetensors")
    assert output == tmp_path / "v1.safetensors"
    meta = read_metadata(output)
    assert meta["format"] == "mobivision"
    expected = {"architecture": "mobilenet_v1", "width_mult": 1.0, "padding": "symmetric", "bn_eps": 1e-5}
    expected |= {"num_classes": 1000, "label_offset": 0, "resolution": 224, "source_format": "timm"}
    expected |= {"mean": [0.5] * 3, "std": [0.5] * 3}
    assert {k: meta[k] for k in expected} == expected
    with safe_open(str(output), framework="pt") as f:
        raw, names = f.metadata(), set(f.keys())
    assert "backbone.layers.Conv2d_0.conv.weight" in names
    assert raw["format"] == "mobivision" and raw["width_mult"] == "1.0"  # JSON strings on disk
    x = torch.randn(2, 3, 64, 64)
    model = create_model("mobilenet_v1", pretrained=output)
    torch.testing.assert_close(logits(model, x), logits(timm_v1_100.model, x), rtol=0, atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1.safetensors"]  # no temporary files left
    assert os.stat(output).st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_tf_slim_conversion_keeps_tf_padding_and_epsilon(tf_slim_fixture, tmp_path) -> None:
    output = convert_weights(tf_slim_fixture / "model.ckpt.index", tmp_path / "tf.safetensors")
    meta = read_metadata(output)
    assert (meta["source_format"], meta["padding"], meta["bn_eps"]) == ("tf_slim", "tf", 1e-3)
    assert (meta["width_mult"], meta["num_classes"], meta["label_offset"]) == (0.25, 1001, 1)
    with np.load(tf_slim_fixture / "expected.npz") as expected:
        model = create_model("mobilenet_v1", width_mult=0.25, num_classes=1001, pretrained=output)
        assert model.pretrained_cfg["padding"] == "tf"
        for size in (96, 97):
            ours = logits(model, torch.from_numpy(expected[f"input_{size}_nchw"]))
            diff = (ours - torch.from_numpy(expected[f"logits_{size}"])).abs().max().item()
            print(f"\nparity TF-Slim -> safetensors {size}x{size}: max abs diff {diff:.3g}")
            assert diff <= 1e-4


def test_keras_conversion_reads_the_resolution_from_the_file_name(keras_fixture, tmp_path) -> None:
    output = convert_weights(keras_fixture / "mobilenet_2_5_128_tf.h5", tmp_path / "keras.safetensors")
    meta = read_metadata(output)
    assert (meta["source_format"], meta["resolution"], meta["width_mult"], meta["num_classes"]) == (
        "keras",
        128,
        0.25,
        1000,
    )


def test_torchvision_conversion_and_explicit_width(torchvision_weights, tmp_path) -> None:
    reference = torchvision_weights("mobilenet_v3_small")
    output = convert_weights(reference.pth, tmp_path / "v3.safetensors", resolution=160)
    meta = read_metadata(output)
    assert (meta["architecture"], meta["width_mult"], meta["resolution"]) == ("mobilenet_v3_small", 1.0, 160)
    x = torch.randn(1, 3, 64, 64)
    model = create_model("mobilenet_v3_small", pretrained=output)
    torch.testing.assert_close(logits(model, x), logits(reference.model, x), rtol=0, atol=1e-5)
    with pytest.raises(WeightFileError, match="shape"):
        convert_weights(reference.pth, tmp_path / "wrong.safetensors", width_mult=0.5)
    assert not (tmp_path / "wrong.safetensors").exists()


@pytest.mark.parametrize("width", [0.25, 0.35, 0.5, 0.75, 1.0, 1.4])
def test_width_is_inferred_from_every_layer(width: float) -> None:
    # Conv2d_13 alone is ambiguous for 0.35: 358 / 1024 = 0.3496 rounds Conv2d_6 to 178 channels, not 179.
    state = create_model("mobilenet_v1", width_mult=width, num_classes=0).state_dict()
    assert infer_v1_width(state) == width


def test_save_weights_keeps_class_names_and_extra_metadata(tmp_path) -> None:
    model = create_model("mobilenet_v1", width_mult=0.25, num_classes=3)
    model.pretrained_cfg["classes"] = ["cat", "dog", "bird"]
    path = save_weights(model, tmp_path / "named.safetensors", metadata={"resolution": 96, "note": {"a": [1, 2]}})
    meta = read_metadata(path)
    assert meta["classes"] == ["cat", "dog", "bird"] and meta["resolution"] == 96 and meta["note"] == {"a": [1, 2]}
    reloaded = create_model("mobilenet_v1", width_mult=0.25, num_classes=3, pretrained=path)
    assert reloaded.pretrained_cfg["classes"] == ["cat", "dog", "bird"]
    with pytest.raises(ConfigError, match="safetensors"):
        save_weights(model, tmp_path / "named.pth")


def test_conversion_refuses_to_overwrite_its_input(timm_v1_100, tmp_path) -> None:
    before = timm_v1_100.safetensors.read_bytes()
    with pytest.raises(ConfigError, match="overwrite"):
        convert_weights(timm_v1_100.safetensors, timm_v1_100.safetensors)
    assert timm_v1_100.safetensors.read_bytes() == before
    with pytest.raises(ConfigError, match=r"\.safetensors"):
        convert_weights(timm_v1_100.pth, tmp_path / "out.pth")


@pytest.fixture(scope="module")
def tool():
    """The command behind ``tools/convert_weights.py``, to run ``main(argv)`` in-process."""
    return importlib.import_module("mobivision.commands.convert")


def test_cli_converts_and_reports(tool, timm_v1_100, tmp_path, capsys) -> None:
    output = tmp_path / "cli.safetensors"
    assert tool.main([str(timm_v1_100.pth), str(output), "--resolution", "192"]) == 0
    out = capsys.readouterr().out
    assert "format timm" in out and "arch mobilenet_v1" in out and "width 1" in out
    assert "1000 classes" in out and "padding symmetric" in out and str(output) in out
    assert read_metadata(output)["resolution"] == 192


def test_cli_rejects_an_unknown_arch(tool, timm_v1_100, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        tool.main([str(timm_v1_100.pth), str(tmp_path / "x.safetensors"), "--arch", "mobilenet_v4"])
    assert info.value.code == 2 and "mobilenet_v4" in capsys.readouterr().err


def test_cli_reports_a_truncated_file_in_one_line(timm_v1_100, tmp_path, run_tool) -> None:
    broken = tmp_path / "truncated.pth"
    broken.write_bytes(timm_v1_100.pth.read_bytes()[:10_000])
    # A real process, as a user runs it: the exit code and stderr are the contract.
    result = run_tool("convert_weights", str(broken), str(tmp_path / "out.safetensors"), cwd=ROOT)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and str(broken) in result.stderr
    assert not (tmp_path / "out.safetensors").exists()


def _copy_tf_slim(fixture: Path, folder: Path, stem: str = "model.ckpt") -> Path:
    """The TF-Slim fixture's checkpoint copied into ``folder`` as ``<stem>.index`` / ``.data-*``."""
    folder.mkdir(parents=True, exist_ok=True)
    for part in fixture.glob("model.ckpt.*"):
        shutil.copy(part, folder / part.name.replace("model.ckpt", stem))
    return folder


def test_a_no_top_keras_file_records_its_own_resolution(keras_fixture, tmp_path) -> None:
    # Keras publishes the 128-px backbone as mobilenet_2_5_128_tf_no_top.h5: its 128, not the default 224.
    no_top = tmp_path / "mobilenet_2_5_128_tf_no_top.h5"
    shutil.copy(keras_fixture / "mobilenet_2_5_128_tf.h5", no_top)
    assert read_metadata(convert_weights(no_top, tmp_path / "k.safetensors"))["resolution"] == 128


def test_a_tf_slim_archive_records_the_resolution_in_its_name(tf_slim_fixture, tmp_path, monkeypatch) -> None:
    # A released archive (mobilenet_v1_0.25_128.tgz) downloaded and unpacked: the checkpoint inside is model.ckpt.
    monkeypatch.setenv("MOBIVISION_CACHE", str(tmp_path / "cache"))
    folder = _copy_tf_slim(tf_slim_fixture, tmp_path / "unpacked")
    archive = tmp_path / "mobilenet_v1_0.25_128.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for part in sorted(folder.iterdir()):
            tar.add(part, arcname=part.name)
    output = convert_weights(archive.as_uri(), tmp_path / "tf.safetensors")
    assert read_metadata(output)["resolution"] == 128


def test_a_date_in_a_folder_name_is_not_a_resolution(tf_slim_fixture, tmp_path) -> None:
    folder = _copy_tf_slim(tf_slim_fixture, tmp_path / "mobilenet_v1_2018_08_02")
    assert read_metadata(convert_weights(folder, tmp_path / "tf.safetensors"))["resolution"] == 224
