"""The training speed options (uint8 batches normalised on the device, channels_last, torch.compile) train the same
model as the plain eager path: bit-identical where the arithmetic is the same, within float noise where it is not.
"""

from __future__ import annotations

import copy
import getpass
import tempfile
from pathlib import Path

import pytest
import torch
import torch._inductor.config

from mobivision.errors import ConfigError
from mobivision.tasks.runner import build_datamodule, build_task, speed_up, train

DETECTION = ["experiment=demo", "data.synthetic.num_train=24", "data.synthetic.num_val=4", "data.synthetic.num_test=4"]
CLASSIFICATION = ["experiment=demo_classification", "data.synthetic.images_per_class=10"]
SHORT = ["debug=fast", "data.batch_size=8", "test_after_training=false", "seed=5"]  # 2 training batches, 1 epoch


def _train(tmp: Path, compose_train, overrides: list[str]) -> tuple[dict, dict[str, torch.Tensor]]:
    cfg = compose_train(tmp, [*overrides, *SHORT])
    summary = train(cfg)
    state = torch.load(summary["last_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    return summary, state


def test_uint8_training_batches_normalised_on_the_device_train_bit_identical_weights(tmp_path: Path, compose_train):
    cfg = compose_train(tmp_path / "look", [*DETECTION, "data.normalize_on_device=true", "data.batch_size=8"])
    datamodule = build_datamodule(dict(cfg.data), cfg.backbone.name)
    datamodule.setup("fit")
    assert next(iter(datamodule.train_dataloader()))["image"].dtype == torch.uint8
    assert next(iter(datamodule.val_dataloader()))["image"].dtype == torch.float32  # evaluation stays float

    _, loader = _train(tmp_path / "loader", compose_train, [*DETECTION, "data.normalize_on_device=false"])
    _, device = _train(tmp_path / "device", compose_train, [*DETECTION, "data.normalize_on_device=true"])
    assert loader.keys() == device.keys()
    assert all(torch.equal(loader[k], device[k]) for k in loader)


def _gradients(task: torch.nn.Module, batch: dict, *, double: bool = False) -> dict[str, torch.Tensor]:
    task.train()
    images = batch["image"].double() if double else batch["image"]
    task.loss(task(images), batch)["loss"].backward()
    return {key: p.grad.double() for key, p in task.named_parameters()}


@pytest.mark.slow
def test_a_compiled_training_step_computes_the_gradients_of_the_eager_one(
    tmp_path: Path, compose_train, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inductor's kernel cache is one per instruction set PyTorch runs (``get_cpu_capability``): its own key leaves
    out ``ATEN_CPU_CAPABILITY``, so kernels cached by an AVX-512 run and read back by a run capped at AVX2 gave NaN
    gradients. The first run on a machine compiles (50-90 s on 2 cores), later ones read the cache."""
    capability = torch.backends.cpu.get_cpu_capability().lower()
    cache = Path(tempfile.gettempdir()) / f"mobivision-tests-inductor-{getpass.getuser()}-{capability}"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(cache))
    torch._dynamo.reset()
    # Measured against the same step in float64: fused kernels round differently from eager ones, nothing more.
    # Seeded: the weights and the batch are the same whatever ran before in this process (how ill-conditioned the
    # gradient is depends on them: an unseeded run once gave eager 1.5e-2).
    torch.manual_seed(0)
    cfg = compose_train(tmp_path, [*CLASSIFICATION, "data.batch_size=8"])
    datamodule = build_datamodule(dict(cfg.data), cfg.backbone.name)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    eager = build_task(cfg, datamodule)
    for dropout in (m for m in eager.modules() if isinstance(m, torch.nn.Dropout)):
        dropout.p = 0.0  # Inductor draws its own dropout masks: the same units must be kept
    compiled, exact = copy.deepcopy(eager), copy.deepcopy(eager).double()
    speed_up(compiled, channels_last=False, compile_mode="default")
    truth = _gradients(exact, batch, double=True)

    def error(grads: dict[str, torch.Tensor]) -> float:
        """Relative error of the whole gradient (all parameters as one vector)."""
        difference = sum(((grads[k] - g) ** 2).sum() for k, g in truth.items())
        return (difference / sum((g**2).sum() for g in truth.values())).sqrt().item()

    eager_error, compiled_error = error(_gradients(eager, batch)), error(_gradients(compiled, batch))
    # Seeded, with AVX-512 and with AVX2 kernels alike (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2, a fresh
    # Inductor cache): eager 1.4e-5, compiled 2.9e-2; unseeded runs gave 1e-3 to 2e-2 (Inductor's CPU kernels for
    # BatchNorm's backward reassociate its reductions, where a fresh network's gradients cancel heavily). A
    # wrong graph (a missed layer, stale weights, a lost BatchNorm update) is off by far more than 5%.
    print(f"gradient error vs float64: eager {eager_error:.2e}, compiled {compiled_error:.2e}")
    assert eager_error < 1e-4
    assert compiled_error < 5e-2, (compiled_error, eager_error)


def test_speed_options_keep_weight_names_and_refuse_unknown_compile_modes(tmp_path: Path, compose_train) -> None:
    cfg = compose_train(tmp_path, CLASSIFICATION)
    datamodule = build_datamodule(dict(cfg.data), cfg.backbone.name)
    datamodule.setup("fit")
    task = build_task(cfg, datamodule)
    names = list(task.state_dict())
    with pytest.raises(ConfigError, match=r"compile: 'fast' is not a torch.compile mode.*reduce-overhead"):
        speed_up(task, channels_last=False, compile_mode="fast")
    speed_up(task, channels_last=True, compile_mode="default")
    assert list(task.state_dict()) == names
    convolutions = [m.weight for m in task.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions and all(w.is_contiguous(memory_format=torch.channels_last) for w in convolutions)
