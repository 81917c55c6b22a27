"""Cost of a model: multiply-adds, parameters and CPU latency (paper Sec. 3.3 and Tables 6-7).

Multiply-adds are counted by PyTorch's own FLOP counter (``torch.utils.flop_counter``) on a real forward
pass, never from hand-kept constants; one multiply-add is two FLOPs. Like the paper and TF-Slim, this
counts convolutions and fully connected layers; BatchNorm, activations and pooling are not counted.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class ModelCost:
    """Multiply-adds for one image and the number of parameters; for a model with a ``backbone`` (detectors, multi-head
    models) also the backbone's, so its share is known (the heads' cost is the rest)."""

    macs: int
    params: int
    backbone_macs: int | None = None
    backbone_params: int | None = None

    @property
    def backbone_share(self) -> tuple[float, float] | None:
        """The backbone's share of the multiply-adds and of the parameters (None: no backbone)."""
        if self.backbone_macs is None or self.backbone_params is None:
            return None
        return self.backbone_macs / max(self.macs, 1), self.backbone_params / max(self.params, 1)

    @property
    def mmacs(self) -> float:
        return self.macs / 1e6

    @property
    def mparams(self) -> float:
        return self.params / 1e6


def count_parameters(model: nn.Module) -> int:
    """All parameters (BatchNorm running statistics are buffers and are not counted)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, resolution: int | tuple[int, int]) -> int:
    """Multiply-adds of one forward pass on a single ``3 x H x W`` image."""
    height, width = (resolution, resolution) if isinstance(resolution, int) else resolution
    was_training = model.training
    model.eval()
    x = torch.zeros(1, 3, height, width, device=next(model.parameters()).device)
    counter = FlopCounterMode(display=False)
    with counter:
        model(x)
    model.train(was_training)
    return counter.get_total_flops() // 2


def profile(model: nn.Module, resolution: int | tuple[int, int]) -> ModelCost:
    """Multiply-adds at ``resolution`` and parameter count of ``model`` (and of its ``backbone`` where it has one)."""
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        return ModelCost(macs=count_macs(model, resolution), params=count_parameters(model))
    return ModelCost(
        macs=count_macs(model, resolution),
        params=count_parameters(model),
        backbone_macs=count_macs(backbone, resolution),
        backbone_params=count_parameters(backbone),
    )


@torch.inference_mode()
def measure_latency_ms(
    model: nn.Module, *, resolution: int, batch_size: int = 1, warmup: int = 5, repeats: int = 20
) -> float:
    """Median wall-clock milliseconds of one eval-mode forward pass on CPU."""
    model.eval()
    x = torch.randn(batch_size, 3, resolution, resolution)
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)
