"""Unit tests of ``mobivision.backbones.pretrained`` and ``download``: every weight format people have.

Each parity test loads a reference network's weights (random weights and random BatchNorm statistics, so
a mis-mapped tensor or a wrong epsilon shows) and compares eval-mode outputs with the reference's own,
printing the largest difference. The TF-Slim and Keras references are logits computed by TensorFlow
itself (``tools/fixtures/make_tf_fixtures.py``); REFERENCE.md lists the checkpoint layouts.
"""

from __future__ import annotations

import hashlib
import http.server
import logging
import shutil
import socket
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mobivision import create_backbone, create_model
from mobivision.backbones.convert import save_weights
from mobivision.errors import WeightFileError

SIZE = 64
V1_ENDPOINTS = ["Conv2d_1_pointwise", "Conv2d_3_pointwise", "Conv2d_5_pointwise", "Conv2d_11_pointwise"]
V1_ENDPOINTS += ["Conv2d_13_pointwise"]


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))


def max_diff(ours: nn.Module, reference: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, label: str) -> float:
    """Largest absolute difference of eval-mode outputs, printed (run pytest with -s to see it)."""
    with torch.no_grad():
        expected = reference(x)
        actual = ours.eval()(x)
    assert actual.shape == expected.shape
    assert expected.abs().max() > 0.1, "reference outputs are too small to compare"
    diff = (actual - expected).abs().max().item()
    print(f"\nparity {label}: max abs diff {diff:.3g} (outputs up to {expected.abs().max().item():.3g})")
    return diff


# --- timm and torchvision -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pth", "safetensors"])
def test_timm_mobilenetv1_100_parity(timm_v1_100, images, kind: str) -> None:
    model = create_model("mobilenet_v1", pretrained=getattr(timm_v1_100, kind))
    assert max_diff(model, timm_v1_100.model, images, f"timm mobilenetv1_100 .{kind}") <= 1e-5
    cfg = model.pretrained_cfg
    assert (cfg["padding"], cfg["bn_eps"], cfg["num_classes"]) == ("symmetric", 1e-5, 1000)


def test_timm_mobilenetv1_125_parity(tmp_path, randomize_bn, images) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(3)
    reference = randomize_bn(timm.create_model("mobilenetv1_125"), seed=3).eval()
    nn.init.normal_(reference.classifier.weight, std=0.1)
    path = tmp_path / "mobilenetv1_125.pth"
    torch.save(reference.state_dict(), path)
    model = create_model("mobilenet_v1", width_mult=1.25, pretrained=path)
    assert max_diff(model, reference, images, "timm mobilenetv1_125") <= 1e-5


@pytest.mark.parametrize("name", ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"])
def test_torchvision_parity(torchvision_weights, images, name: str) -> None:
    reference = torchvision_weights(name)
    model = create_model(name, pretrained=reference.pth)
    assert max_diff(model, reference.model, images, f"torchvision {name}") <= 1e-5


WRAPPERS = {
    "state_dict": lambda sd: {"state_dict": sd, "epoch": 3},
    "module.": lambda sd: {f"module.{k}": v for k, v in sd.items()},
    "_orig_mod.": lambda sd: {f"_orig_mod.{k}": v for k, v in sd.items()},
    "state_dict+module._orig_mod.": lambda sd: {"state_dict": {f"module._orig_mod.{k}": v for k, v in sd.items()}},
}


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_wrapped_checkpoints_load(timm_v1_100, tmp_path, images, wrapper: str) -> None:
    path = tmp_path / "wrapped.pth"
    torch.save(WRAPPERS[wrapper](timm_v1_100.model.state_dict()), path)
    model = create_model("mobilenet_v1", pretrained=path)
    assert max_diff(model, timm_v1_100.model, images, f"timm wrapped as {wrapper}") <= 1e-5


def test_other_num_classes_reinitialises_the_head_and_logs_it(timm_v1_100, images, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="mobivision"):
        model = create_model("mobilenet_v1", num_classes=10, pretrained=timm_v1_100.pth).eval()
    messages = " ".join(r.getMessage() for r in caplog.records if r.name == "mobivision")
    assert "head.fc.weight" in messages and "head.fc.bias" in messages
    assert "10" in messages and "1000" in messages
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(images), timm_v1_100.model.forward_features(images))
        assert model(images).shape == (2, 10)
    assert model.head.fc.weight.abs().max() < 0.1  # fresh N(0, 0.01) init, not a slice of the file's weights
    assert model.pretrained_cfg["num_classes"] == 10


def test_reinitialised_head_drops_the_files_class_names(tmp_path) -> None:
    model = create_model("mobilenet_v1", width_mult=0.25, num_classes=3)
    model.pretrained_cfg["classes"] = ["cat", "dog", "bird"]
    path = save_weights(model, tmp_path / "named.safetensors")
    same = create_model("mobilenet_v1", width_mult=0.25, num_classes=3, pretrained=path)
    assert same.pretrained_cfg["classes"] == ["cat", "dog", "bird"]
    reloaded = create_model("mobilenet_v1", width_mult=0.25, num_classes=5, pretrained=path)
    assert "classes" not in reloaded.pretrained_cfg  # 3 names for 5 fresh logits would mislabel predictions


def test_wrong_width_names_the_key_and_both_shapes(timm_v1_100) -> None:
    with pytest.raises(WeightFileError) as info:
        create_model("mobilenet_v1", width_mult=0.5, pretrained=timm_v1_100.pth)
    message = str(info.value)
    assert "Conv2d_0.conv.weight" in message
    assert "(32, 3, 3, 3)" in message and "(16, 3, 3, 3)" in message
    assert str(timm_v1_100.pth) in message


@pytest.mark.parametrize(
    ("source", "arch"),
    [("timm", "mobilenet_v2"), ("mobilenet_v2", "mobilenet_v1"), ("mobilenet_v3_small", "mobilenet_v3_large")],
)
def test_weights_of_another_architecture_are_refused(timm_v1_100, torchvision_weights, source, arch) -> None:
    path = timm_v1_100.pth if source == "timm" else torchvision_weights(source).pth
    file_arch = "mobilenet_v1" if source == "timm" else source
    with pytest.raises(WeightFileError, match=f"{file_arch}.*{arch}"):
        create_model(arch, pretrained=path)


def _truncated(reference: Path, target: Path) -> None:
    target.write_bytes(reference.read_bytes()[: reference.stat().st_size // 2])


BROKEN_FILES = {
    "truncated.pth": lambda ref, path: _truncated(ref.pth, path),
    "truncated.safetensors": lambda ref, path: _truncated(ref.safetensors, path),
    "random.pth": lambda ref, path: path.write_bytes(np.random.default_rng(0).bytes(4096)),
    "random.safetensors": lambda ref, path: path.write_bytes(np.random.default_rng(0).bytes(4096)),
    "empty.pth": lambda ref, path: path.write_bytes(b""),
    "tensor_not_dict.pth": lambda ref, path: torch.save(torch.zeros(3), path),
    "missing.pth": lambda ref, path: None,
}


@pytest.mark.parametrize("name", list(BROKEN_FILES))
def test_unreadable_files_raise_weight_file_error_naming_the_file(timm_v1_100, tmp_path, name: str) -> None:
    path = tmp_path / name
    BROKEN_FILES[name](timm_v1_100, path)
    with pytest.raises(WeightFileError) as info:
        create_model("mobilenet_v1", pretrained=path)
    assert str(path) in str(info.value)


def test_create_backbone_loads_the_body(timm_v1_100, images) -> None:
    backbone = create_backbone("mobilenet_v1", pretrained=timm_v1_100.safetensors).eval()
    with torch.no_grad():
        features = backbone(images)
        expected = timm_v1_100.model.forward_intermediates(images, indices=5, intermediates_only=True)
    assert list(features) == V1_ENDPOINTS
    for (name, ours), theirs in zip(features.items(), expected, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5, msg=name)
    shallow = create_backbone("mobilenet_v1", out_features=["Conv2d_5_pointwise"], pretrained=timm_v1_100.pth)
    with torch.no_grad():
        torch.testing.assert_close(shallow.eval()(images)["Conv2d_5_pointwise"], expected[2], rtol=0, atol=1e-5)


def test_torchvision_backbone_loads_the_body(torchvision_weights, images) -> None:
    reference = torchvision_weights("mobilenet_v3_large")
    backbone = create_backbone("mobilenet_v3_large", out_features=["stride32"], pretrained=reference.safetensors)
    with torch.no_grad():
        torch.testing.assert_close(backbone.eval()(images)["stride32"], reference.model.features(images))


# --- downloads ------------------------------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("MOBIVISION_CACHE", str(root))
    return root


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cached_files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file())


def test_download_with_checksum_lands_in_the_cache(timm_v1_100, cache, images) -> None:
    url = f"{timm_v1_100.pth.as_uri()}#sha256={sha256(timm_v1_100.pth)}"
    model = create_model("mobilenet_v1", pretrained=url)
    assert max_diff(model, timm_v1_100.model, images, "timm via file:// URL") <= 1e-5
    landed = [p for p in cached_files(cache) if p.name == timm_v1_100.pth.name]
    assert len(landed) == 1 and landed[0].read_bytes() == timm_v1_100.pth.read_bytes()
    assert cache / "weights" in landed[0].parents
    create_model("mobilenet_v1", pretrained=url)  # a cache hit, checked again
    assert [p for p in cached_files(cache) if p.name == timm_v1_100.pth.name] == landed


def test_checksum_mismatch_removes_the_download(timm_v1_100, cache) -> None:
    url = f"{timm_v1_100.pth.as_uri()}#sha256={'0' * 64}"
    with pytest.raises(WeightFileError, match="checksum mismatch"):
        create_model("mobilenet_v1", pretrained=url)
    assert not [p for p in cached_files(cache) if p.name == timm_v1_100.pth.name]


def test_unreachable_url_fails_cleanly(cache) -> None:
    url = "http://127.0.0.1:9/x.pth"  # the discard port: nothing listens, the connection is refused
    with pytest.raises(WeightFileError, match=r"download of http://127\.0\.0\.1:9/x\.pth failed"):
        create_model("mobilenet_v1", pretrained=url)
    assert cached_files(cache) == []


def test_tgz_archive_is_unpacked_and_loaded(timm_v1_100, tmp_path, cache, images) -> None:
    archive = tmp_path / "mobilenet_v1_1.0_224.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(timm_v1_100.safetensors, arcname="mobilenet_v1_1.0_224/weights.safetensors")
    model = create_model("mobilenet_v1", pretrained=archive.as_uri())
    assert max_diff(model, timm_v1_100.model, images, "timm inside a .tgz") <= 1e-5


def test_first_digest_is_recorded_and_a_corrupted_cache_is_detected(timm_v1_100, cache) -> None:
    create_model("mobilenet_v1", pretrained=timm_v1_100.pth.as_uri())
    (cached,) = [p for p in cached_files(cache) if p.name == timm_v1_100.pth.name]
    recorded = cached.with_name(cached.name + ".sha256")
    assert recorded.read_text().strip() == sha256(timm_v1_100.pth)
    with cached.open("r+b") as f:  # flip one byte in the cached copy
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    expected = rf"{cached}: SHA-256 [0-9a-f]{{64}} does not match {sha256(timm_v1_100.pth)} recorded at download"
    with pytest.raises(WeightFileError, match=expected + r" \(delete it to download again\)"):
        create_model("mobilenet_v1", pretrained=timm_v1_100.pth.as_uri())
    assert cached.exists()  # kept for inspection; deleting it downloads it again
    cached.unlink()
    create_model("mobilenet_v1", pretrained=timm_v1_100.pth.as_uri())
    assert sha256(cached) == sha256(timm_v1_100.pth)


def test_a_download_with_a_digest_is_reused_without_one(timm_v1_100, cache, images) -> None:
    create_model("mobilenet_v1", pretrained=f"{timm_v1_100.pth.as_uri()}#sha256={sha256(timm_v1_100.pth)}")
    model = create_model("mobilenet_v1", pretrained=timm_v1_100.pth.as_uri())  # the same cached file, no fragment
    assert max_diff(model, timm_v1_100.model, images, "cache hit without #sha256=") <= 1e-5


def test_a_cached_file_without_a_record_is_recorded_on_reuse(timm_v1_100, cache) -> None:
    # As a cache filled by an older version, which recorded nothing: trusted once, then checked every time.
    create_model("mobilenet_v1", pretrained=timm_v1_100.pth.as_uri())
    (cached,) = [p for p in cached_files(cache) if p.name == timm_v1_100.pth.name]
    record = cached.with_name(cached.name + ".sha256")
    record.unlink()
    create_model("mobilenet_v1", pretrained=timm_v1_100.pth.as_uri())
    assert record.read_text().strip() == sha256(timm_v1_100.pth)


def test_a_corrupted_cache_is_one_error_line_from_the_tool(timm_v1_100, cache, tmp_path, capsys) -> None:
    from mobivision.commands.convert import main

    url = timm_v1_100.pth.as_uri()
    create_model("mobilenet_v1", pretrained=url)
    (cached,) = [p for p in cached_files(cache) if p.name == timm_v1_100.pth.name]
    cached.write_bytes(cached.read_bytes()[:5000])  # truncated behind our back
    assert main([url, str(tmp_path / "out.safetensors")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {cached}: SHA-256 "), lines
    assert lines[0].endswith("recorded at download (delete it to download again)")


def test_no_test_reaches_the_network(cache) -> None:
    from conftest import NetworkAccessError

    with pytest.raises(NetworkAccessError):
        socket.create_connection(("192.0.2.1", 80), timeout=1)  # TEST-NET-1: never routed
    with pytest.raises((NetworkAccessError, WeightFileError)):
        create_model("mobilenet_v1", pretrained="http://192.0.2.1/weights.pth")


class _TruncatingHandler(http.server.BaseHTTPRequestHandler):
    """Promises 1 MB and closes after 100 bytes, like a connection dropped mid-download."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(1 << 20))
        self.end_headers()
        self.wfile.write(b"x" * 100)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def truncating_server():
    server = http.server.HTTPServer(("127.0.0.1", 0), _TruncatingHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_dropped_connection_fails_cleanly_and_leaves_no_partial_file(truncating_server, cache) -> None:
    url = f"{truncating_server}/weights.pth"
    with pytest.raises(WeightFileError, match=r"download of .*/weights\.pth failed"):
        create_model("mobilenet_v1", pretrained=url)
    assert cached_files(cache) == [], "a failed download must not leave files in the cache"


# --- TF-Slim and Keras (TensorFlow-computed references) -------------------------------------------------------


@pytest.fixture(scope="module")
def tf_expected(tf_slim_fixture) -> dict[str, np.ndarray]:
    with np.load(tf_slim_fixture / "expected.npz") as data:
        return dict(data)


def tf_source(kind: str, fixture: Path, tmp_path: Path) -> Path:
    if kind == "prefix":
        return fixture / "model.ckpt"
    if kind == "index":
        return fixture / "model.ckpt.index"
    folder = tmp_path / "mobilenet_v1_0.25_96"  # an unpacked TF-Slim release archive
    folder.mkdir()
    for part in fixture.glob("model.ckpt.*"):
        shutil.copy(part, folder / part.name)
    return folder


def tf_logits(model: nn.Module, expected: dict[str, np.ndarray], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        ours = model.eval()(torch.from_numpy(expected[f"input_{size}_nchw"]))
    return ours, torch.from_numpy(expected[f"logits_{size}"])


@pytest.mark.parametrize("kind", ["prefix", "index", "folder"])
def test_tf_slim_checkpoint_parity(tf_slim_fixture, tf_expected, tmp_path, kind: str) -> None:
    source = tf_source(kind, tf_slim_fixture, tmp_path)
    model = create_model("mobilenet_v1", width_mult=0.25, num_classes=1001, pretrained=source)
    cfg = model.pretrained_cfg
    assert (cfg["padding"], cfg["bn_eps"], cfg["label_offset"]) == ("tf", 1e-3, 1)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(m.eps == 1e-3 and m.momentum == pytest.approx(3e-4) for m in norms)  # TF decay 0.9997
    for size in (96, 97):
        ours, theirs = tf_logits(model, tf_expected, size)
        diff = (ours - theirs).abs().max().item()
        print(
            f"\nparity TF-Slim ({kind}) {size}x{size}: max abs diff {diff:.3g} (logits up to {theirs.abs().max():.3g})"
        )
        assert diff <= 1e-4


def test_tf_padding_is_what_makes_tf_slim_weights_match(tf_slim_fixture, tf_expected) -> None:
    model = create_model(
        "mobilenet_v1",
        width_mult=0.25,
        num_classes=1001,
        padding="symmetric",
        pretrained=tf_slim_fixture / "model.ckpt.index",
    )
    ours, theirs = tf_logits(model, tf_expected, 96)
    assert (ours - theirs).abs().max() > 1e-2  # even input: TF pads (0, 1) at every stride-2 conv
    ours, theirs = tf_logits(model, tf_expected, 97)
    assert (ours - theirs).abs().max() <= 1e-4  # 97 -> 49 -> 25 -> 13 -> 7: always odd, both pad (1, 1)


def test_tf_slim_background_class_is_dropped_for_1000_classes(tf_slim_fixture, tf_expected) -> None:
    model = create_model(
        "mobilenet_v1", width_mult=0.25, num_classes=1000, pretrained=tf_slim_fixture / "model.ckpt.index"
    )
    ours, theirs = tf_logits(model, tf_expected, 96)
    assert ours.shape == (2, 1000)
    assert (ours - theirs[:, 1:]).abs().max() <= 1e-4
    assert model.pretrained_cfg["label_offset"] == 0


def test_tf_slim_backbone_endpoint_parity(tf_slim_fixture, tf_expected) -> None:
    backbone = create_backbone(
        "mobilenet_v1",
        width_mult=0.25,
        out_features=["Conv2d_13_pointwise"],
        pretrained=tf_slim_fixture / "model.ckpt.index",
    )
    with torch.no_grad():
        ours = backbone.eval()(torch.from_numpy(tf_expected["input_96_nchw"]))["Conv2d_13_pointwise"]
    theirs = torch.from_numpy(tf_expected["conv2d_13_pointwise_96"]).permute(0, 3, 1, 2)
    assert (ours - theirs).abs().max() <= 1e-4


def test_keras_h5_parity(keras_fixture) -> None:
    with np.load(keras_fixture / "expected.npz") as data:
        expected = dict(data)
    model = create_model("mobilenet_v1", width_mult=0.25, pretrained=keras_fixture / "mobilenet_2_5_128_tf.h5").eval()
    assert (model.pretrained_cfg["padding"], model.pretrained_cfg["bn_eps"]) == ("tf", 1e-3)
    with torch.no_grad():
        ours = model(torch.from_numpy(expected["input_nchw"]))
    theirs = torch.from_numpy(expected["logits"])
    diff = (ours - theirs).abs().max().item()
    print(f"\nparity Keras 128x128: max abs diff {diff:.3g} (logits up to {theirs.abs().max():.3g})")
    assert diff <= 1e-4
    torch.testing.assert_close(ours.softmax(-1), torch.from_numpy(expected["probabilities"]), rtol=0, atol=1e-5)
