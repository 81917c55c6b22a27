"""Optimizers and learning-rate schedules for MobileNet training.

Parameter groups follow the paper (Sec. 4): "very little or no weight decay on the depthwise filters since
there are so few parameters in them", and, as usual, none on BatchNorm and biases. The backbone gets its
own learning-rate multiplier for fine-tuning. Schedules are per-step: linear warm-up, then cosine or step.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mobivision.errors import ConfigError

OPTIMIZERS = ("sgd", "rmsprop", "adamw")
SCHEDULES = ("cosine", "step", "constant")


def _is_no_decay(module: nn.Module, param: nn.Parameter) -> bool:
    depthwise = isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels
    return depthwise or param.ndim <= 1


def parameter_groups(
    parts: dict[str, tuple[nn.Module, float]], *, lr: float, weight_decay: float
) -> list[dict[str, Any]]:
    """Two groups per part (``{name: (module, lr multiplier)}``, e.g. backbone and head): decay and no decay
    (depthwise filters, BatchNorm, biases). Frozen parameters (``requires_grad`` False) are left out."""
    groups = []
    for name, (module, mult) in parts.items():
        decay, no_decay = [], []
        for sub in module.modules():
            for param in sub.parameters(recurse=False):
                if param.requires_grad:
                    (no_decay if _is_no_decay(sub, param) else decay).append(param)
        groups.append({"name": f"{name}", "params": decay, "lr": lr * mult, "weight_decay": weight_decay})
        groups.append({"name": f"{name}_no_decay", "params": no_decay, "lr": lr * mult, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def build_optimizer(
    groups: list[dict[str, Any]], *, name: str, lr: float, momentum: float = 0.9, nesterov: bool = False,
    alpha: float = 0.9, eps: float = 1.0, betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0,
) -> torch.optim.Optimizer:  # fmt: skip
    """SGD, RMSprop (TF-style defaults of the paper: decay 0.9, momentum 0.9, epsilon 1.0) or AdamW.

    ``weight_decay`` is already set per group by ``parameter_groups``; it is accepted here so the optimizer
    config can be passed through whole.
    """
    del weight_decay
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=alpha, eps=eps, momentum=momentum)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))
    raise ConfigError(f"optimizer.name must be one of {OPTIMIZERS}, got {name!r}")


def lr_lambda(
    *, name: str, total_steps: int, warmup_steps: int = 0, min_lr_ratio: float = 0.0,
    milestones: tuple[float, ...] = (0.5, 0.75), gamma: float = 0.1,
):  # fmt: skip
    """Multiplier of the base LR at each step: linear warm-up, then cosine / step (milestones as fractions
    of training) / constant."""
    if name not in SCHEDULES:
        raise ConfigError(f"scheduler.name must be one of {SCHEDULES}, got {name!r}")
    total_steps = max(total_steps, 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        if name == "cosine":
            return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        if name == "step":
            return gamma ** sum(progress >= m for m in milestones)
        return 1.0

    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, *, name: str, total_steps: int, warmup_epochs: float = 0.0,
    steps_per_epoch: int = 1, min_lr_ratio: float = 0.0, milestones: tuple[float, ...] = (0.5, 0.75),
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LambdaLR:  # fmt: skip
    """A per-step ``LambdaLR`` (warm-up given in epochs, converted with ``steps_per_epoch``)."""
    factor = lr_lambda(
        name=name, total_steps=total_steps, warmup_steps=round(warmup_epochs * steps_per_epoch),
        min_lr_ratio=min_lr_ratio, milestones=tuple(milestones), gamma=gamma,
    )  # fmt: skip
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
