"""Shared test fixtures: no network, reference weight files, and paths to the committed TF fixtures.

No test reaches the network: the
autouse ``_no_network`` fixture turns every non-loopback ``socket.connect`` into ``NetworkAccessError``;
loopback stays open so download code can be tested against ``127.0.0.1``.

The ``run_tool`` and ``start_tool`` fixtures run a command-line tool (``tools/<name>.py``) as a user would: a
separate process with one intra-op thread, for the tests whose contract is the exit code and the output.
``run_tool``'s process is forked from a warm interpreter (``tests/forkserver.py``: the imports are paid once per
test worker), ``start_tool``'s is a new interpreter (tests that signal or kill it).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from forkserver import ToolForkServer, needs_fresh
from safetensors.torch import save_file
from torch import nn

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TF_SLIM_DIR = FIXTURES / "tf_slim_mobilenet_v1_0.25"
KERAS_DIR = FIXTURES / "keras_mobilenet_0.25"


def pytest_configure(config: pytest.Config) -> None:
    """One intra-op thread and flushed denormals for the whole run.

    The test models are tiny, so threads buy little; on the 2-core machine, with a second job running,
    two spinning OpenMP threads made a width-0.25 forward 100x slower (1 s instead of 10 ms). Freshly
    initialised MobileNets in eval mode also fade to denormal activations, which are slow on x86.
    """
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)


class NetworkAccessError(RuntimeError):
    """Raised when a test tries to open a connection to anything but the loopback interface."""


def _is_loopback(address: object) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX path
        return True
    if not isinstance(address, tuple) or not address:
        return False
    host = address[0]
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guard(address: object) -> None:
        if not _is_loopback(address):
            raise NetworkAccessError(f"tests must not reach the network (connect to {address!r})")

    def connect(self: socket.socket, address: object) -> None:
        guard(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        guard(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


def randomize_batchnorm(model: nn.Module, *, seed: int = 0) -> nn.Module:
    """Random affine parameters and running statistics in every BatchNorm (fresh ones are identities)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(n, generator=generator) * 0.6 - 0.3)
                module.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
    return model


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Set every BatchNorm's running statistics to those of ``x``'s activations; returns the model in eval.

    A fresh network in eval mode uses identity statistics and its activations fade towards zero with depth;
    calibrated, every layer sees unit-scale inputs, so differences between two variants stay visible.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one batch sets the statistics exactly
    model.train()(x)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    return model.eval()


def save_state_dict(model: nn.Module, path: Path) -> Path:
    """``torch.save`` for ``.pth``, ``safetensors`` for ``.safetensors``."""
    state = model.state_dict()
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


@pytest.fixture(scope="session")
def randomize_bn():
    """``randomize_batchnorm`` for tests that build their own models."""
    return randomize_batchnorm


@pytest.fixture(scope="session")
def calibrate_bn():
    """``calibrate_batchnorm`` for tests that compare two variants of a network."""
    return calibrate_batchnorm


@dataclass(frozen=True)
class ReferenceWeights:
    """A reference model (eval mode, random weights and BN statistics) and its weights saved to disk."""

    model: nn.Module
    pth: Path
    safetensors: Path


def _reference(model: nn.Module, folder: Path, stem: str, *, seed: int) -> ReferenceWeights:
    torch.manual_seed(seed)
    for module in model.modules():  # timm's and torchvision's init leave tiny logits; spread them
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.1)
    model = randomize_batchnorm(model, seed=seed).eval()
    return ReferenceWeights(
        model, save_state_dict(model, folder / f"{stem}.pth"), save_state_dict(model, folder / f"{stem}.safetensors")
    )


@pytest.fixture(scope="session")
def timm_v1_100(tmp_path_factory: pytest.TempPathFactory) -> ReferenceWeights:
    """timm ``mobilenetv1_100`` (1000 classes) saved as ``.pth`` and ``.safetensors``."""
    timm = pytest.importorskip("timm")
    model = timm.create_model("mobilenetv1_100", pretrained=False)
    return _reference(model, tmp_path_factory.mktemp("timm"), "mobilenetv1_100", seed=1)


@pytest.fixture(scope="session")
def torchvision_weights(tmp_path_factory: pytest.TempPathFactory):
    """Factory: torchvision ``mobilenet_v2`` / ``mobilenet_v3_large`` / ``mobilenet_v3_small`` weights, cached."""
    import torchvision

    folder = tmp_path_factory.mktemp("torchvision")
    cache: dict[str, ReferenceWeights] = {}

    def get(name: str) -> ReferenceWeights:
        if name not in cache:
            torch.manual_seed(2)
            cache[name] = _reference(getattr(torchvision.models, name)(), folder, name, seed=2)
        return cache[name]

    return get


@pytest.fixture(scope="session")
def tf_slim_fixture() -> Path:
    """The committed TF-Slim MobileNetV1 0.25 checkpoint folder (fails, naming the generator, if absent)."""
    if not (TF_SLIM_DIR / "model.ckpt.index").exists() or not (TF_SLIM_DIR / "expected.npz").exists():
        pytest.fail(f"TF-Slim fixture missing under {TF_SLIM_DIR}; run tools/fixtures/make_tf_fixtures.py")
    return TF_SLIM_DIR


@pytest.fixture(scope="session")
def keras_fixture() -> Path:
    """The committed Keras MobileNet 0.25 HDF5 folder."""
    if not (KERAS_DIR / "mobilenet_2_5_128_tf.h5").exists() or not (KERAS_DIR / "expected.npz").exists():
        pytest.fail(f"Keras fixture missing under {KERAS_DIR}; run tools/fixtures/make_tf_fixtures.py")
    return KERAS_DIR


@pytest.fixture(scope="session")
def compose_train():
    """Compose ``configs/train.yaml`` as ``tools/train.py`` would, shrunk for tests: outputs and data
    under ``tmp``, no DataLoader workers, plain progress lines."""
    from hydra import compose, initialize_config_dir

    configs = Path(__file__).resolve().parents[1] / "configs"

    def _compose(tmp: Path, overrides: list[str]):
        with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
            return compose(
                "train",
                overrides=[
                    *overrides,
                    f"paths.output_dir={tmp / 'run'}",
                    f"paths.data_dir={tmp / 'data'}",
                    "data.num_workers=0",
                    "progress=plain",
                ],
            )

    return _compose


# One intra-op thread in every tool process too (see pytest_configure); the caller's ``env`` comes last.
TOOL_THREADS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _tool_command(tool: str, args: tuple[object, ...]) -> list[str]:
    script = REPO / "tools" / f"{tool}.py"
    if not script.is_file():
        known = ", ".join(sorted(path.stem for path in (REPO / "tools").glob("*.py")))
        raise ValueError(f"no tool {tool!r} (tools/{tool}.py); the tools are: {known}")
    return [sys.executable, str(script), *map(str, args)]


def _tool_env(env: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, **TOOL_THREADS, **(env or {})}


_FORK_SERVER: list[ToolForkServer] = []  # this test process's server, started by the first tool run


def _fork_server() -> ToolForkServer:
    if not _FORK_SERVER:
        _FORK_SERVER.append(ToolForkServer(_tool_env(None)))
    return _FORK_SERVER[0]


def pytest_sessionfinish(session: pytest.Session) -> None:
    for server in _FORK_SERVER:
        server.close()


def _run_tool(
    tool: str,
    *args: object,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    fresh: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``tools/<tool>.py *args`` in ``cwd`` to the end (each argument through ``str``); stdout and stderr
    captured as text. The exit code is the caller's to check.

    The process is forked from a server that has imported torch, Lightning and Hydra (``tests/forkserver.py``),
    unless ``fresh`` or ``env`` changes a variable read at start-up: then a new interpreter, which also prints what
    importing prints (asked for by the tests that check a command's output is free of dependency noise)."""
    command, full_env = _tool_command(tool, args), _tool_env(env)
    if fresh or needs_fresh(full_env, _fork_server().env):
        return subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    return _fork_server().run(command, cwd=cwd, env=full_env, timeout=timeout)


def _start_tool(tool: str, *args: object, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``tools/<tool>.py *args`` in the background (stdout and stderr piped, text), for tests that run
    several processes side by side; the caller waits with ``communicate(timeout=...)``."""
    return subprocess.Popen(
        _tool_command(tool, args),
        cwd=cwd,
        env=_tool_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# Makes a training process stop after a given step (after its progress line), write a marker and sleep until killed:
# a reliable point to kill it for resume tests. Installed as ``sitecustomize`` in that process only.
PAUSE_HOOK = """
import os, time
from pathlib import Path
from mobivision.tasks.callbacks import PlainProgress

_step, _original = int(os.environ["MV_TEST_PAUSE_AT_STEP"]), PlainProgress.on_train_batch_end

def on_train_batch_end(self, trainer, *args):
    _original(self, trainer, *args)
    if trainer.global_step == _step:
        Path(os.environ["MV_TEST_PAUSE_MARKER"]).write_text(str(_step))
        time.sleep(600)  # killed here by the test

PlainProgress.on_train_batch_end = on_train_batch_end
"""


def pause_training_at(step: int, folder: Path) -> tuple[dict[str, str], Path]:
    """The environment that pauses a training process after ``step`` (``PAUSE_HOOK``), and its marker file."""
    hook = folder / "hook"
    hook.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text(PAUSE_HOOK)
    marker = folder / "paused"
    return {"PYTHONPATH": str(hook), "MV_TEST_PAUSE_AT_STEP": str(step), "MV_TEST_PAUSE_MARKER": str(marker)}, marker


def wait_and_kill(process: subprocess.Popen[str], marker: Path, timeout: float = 300) -> str:
    """Wait until ``process`` paused (``marker`` written), SIGKILL it and return its output."""
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert process.poll() is None, f"the run to kill ended by itself:\n{process.communicate()[0][-3000:]}"
            assert time.monotonic() < deadline, "the run to kill never reached the pause step"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        return process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def run_tool():
    """``run_tool(tool, *args, cwd, env=None, timeout=600, fresh=False) -> CompletedProcess[str]``: run
    ``tools/<tool>.py`` (e.g. ``"train"``, ``"eval"``, ``"profile_model"``) with ``OMP_NUM_THREADS=1`` and
    ``MKL_NUM_THREADS=1``, forked from a warm interpreter unless ``fresh`` (``_run_tool``)."""
    return _run_tool


@pytest.fixture(scope="session")
def start_tool():
    """``start_tool(tool, *args, cwd, env=None) -> Popen[str]``: ``run_tool`` without waiting for the end."""
    return _start_tool


def int8_weights(path: Path) -> list[np.ndarray]:
    """The int8 weight tensors of a QDQ ONNX file: 2-D (Gemm) or 4-D (Conv); per-channel zero points, also int8,
    are 1-D and left out."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    weights = [i for i in graph.initializer if i.data_type == onnx.TensorProto.INT8 and len(i.dims) > 1]
    return [numpy_helper.to_array(i) for i in weights]


# --- tiny task checkpoints (export and inference tests) ---

TINY_COMMON = {"optimizer": {"name": "adamw", "lr": 1e-3}, "scheduler": {"name": "cosine"}}
TINY_BACKBONE = {"name": "mobilenet_v1", "width_mult": 0.25}
TINY_META = {"resolution": 64, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "crop_pct": 1.0}
TINY_DETECTOR_SIZE = 128


def save_task_checkpoint(task: Any, path: Path) -> Path:
    """A task checkpoint as training writes it (``on_save_checkpoint`` included), without training."""
    import lightning as L

    trainer = L.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.strategy.connect(task)
    trainer.save_checkpoint(path)
    return path


def geo_partitions() -> list[dict]:
    """Two S2 partitionings (coarse, fine) of 450 photos around Paris, New York and Sydney."""
    from mobivision.geo.cells import cells_to_columns, partition_cells

    rng = np.random.default_rng(0)
    centres = [(48.9, 2.3), (40.7, -74.0), (-33.9, 151.2)]
    lats = np.concatenate([rng.normal(lat, 2.0, 150) for lat, _ in centres])
    lons = np.concatenate([rng.normal(lon, 2.0, 150) for _, lon in centres])
    partitions = []
    for t_max in (300, 60):
        cells, _ = partition_cells(lats, lons, t_min=10, t_max=t_max)
        partitions.append({"name": f"cells_10_{t_max}", **cells_to_columns(cells)})
    return partitions


@pytest.fixture(scope="session")
def tiny_task_checkpoints(tmp_path_factory: pytest.TempPathFactory, calibrate_bn) -> dict[str, Path]:
    """A tiny classifier, attribute model, geo model and detector: random weights, BatchNorm calibrated on random
    images (so outputs have a realistic spread), each saved as a checkpoint: ``{name: path}``."""
    from mobivision.tasks.attributes import AttributeTask
    from mobivision.tasks.classification import ClassificationTask
    from mobivision.tasks.detection import DetectionTask
    from mobivision.tasks.geo import GeoTask

    folder = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    tasks = {
        "classifier": ClassificationTask(
            class_names=list("abcdef"), backbone=TINY_BACKBONE, data_meta=TINY_META, **TINY_COMMON
        ),
        "attributes": AttributeTask(
            attribute_names=["glasses", "hat", "smile"], backbone=TINY_BACKBONE, data_meta=TINY_META, **TINY_COMMON
        ),
        "geo": GeoTask(partitions=geo_partitions(), backbone=TINY_BACKBONE, data_meta=TINY_META, **TINY_COMMON),
        "detector": DetectionTask(
            class_names=["circle", "square", "triangle"],
            category_ids=[1, 2, 3],
            backbone=TINY_BACKBONE,
            data_meta={**TINY_META, "resolution": TINY_DETECTOR_SIZE},
            detector={"postprocess": {"max_detections": 50}},
            **TINY_COMMON,
        ),
    }
    tasks["attributes"].thresholds = torch.tensor([0.3, 0.5, 0.7])
    paths = {}
    for name, task in tasks.items():
        size = task.data_meta["resolution"]
        calibrate_bn(task.model, torch.randn(8, 3, size, size))
        paths[name] = save_task_checkpoint(task, folder / f"{name}.ckpt")
    return paths
