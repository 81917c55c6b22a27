"""Unit tests of ``mobivision.optim``: parameter groups, optimizers and per-step LR schedules.

The paper (Sec. 4) puts "very little or no weight decay on the depthwise filters"; BatchNorm parameters and
biases get none either. The backbone has its own LR multiplier; schedules are warm-up, then cosine or step.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from mobivision import create_model
from mobivision.errors import ConfigError
from mobivision.optim import build_optimizer, build_scheduler, lr_lambda, parameter_groups

LR = 0.2
WD = 4e-5


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return create_model("mobilenet_v1", width_mult=0.25, num_classes=3)


@pytest.fixture
def groups(model: nn.Module) -> dict[str, dict]:
    """``parameter_groups`` of the model with a 0.1 backbone multiplier, by group name."""
    listed = parameter_groups({"backbone": (model.backbone, 0.1), "head": (model.head, 1.0)}, lr=LR, weight_decay=WD)
    return {group["name"]: group for group in listed}


def _expected_no_decay(module: nn.Module) -> set[int]:
    """Ids of parameters that must not decay, found independently: depthwise convs, BatchNorm, all biases."""
    ids = set()
    for sub in module.modules():
        depthwise = isinstance(sub, nn.Conv2d) and sub.groups == sub.in_channels == sub.out_channels > 1
        for name, param in sub.named_parameters(recurse=False):
            if depthwise or isinstance(sub, nn.BatchNorm2d) or name == "bias":
                ids.add(id(param))
    return ids


def test_groups_names_and_lr(groups: dict[str, dict]) -> None:
    assert sorted(groups) == ["backbone", "backbone_no_decay", "head", "head_no_decay"]
    assert groups["backbone"]["lr"] == pytest.approx(LR * 0.1)
    assert groups["backbone_no_decay"]["lr"] == pytest.approx(LR * 0.1)
    assert groups["head"]["lr"] == pytest.approx(LR)
    assert groups["head_no_decay"]["lr"] == pytest.approx(LR)
    assert groups["backbone"]["weight_decay"] == groups["head"]["weight_decay"] == WD
    assert groups["backbone_no_decay"]["weight_decay"] == groups["head_no_decay"]["weight_decay"] == 0.0


def test_every_parameter_exactly_once(model: nn.Module, groups: dict[str, dict]) -> None:
    grouped = [id(p) for group in groups.values() for p in group["params"]]
    assert len(grouped) == len(set(grouped))
    assert set(grouped) == {id(p) for p in model.parameters()}
    backbone = {id(p) for name in ("backbone", "backbone_no_decay") for p in groups[name]["params"]}
    assert backbone == {id(p) for p in model.backbone.parameters()}


@pytest.mark.parametrize("part", ["backbone", "head"])
def test_decay_split(model: nn.Module, groups: dict[str, dict], part: str) -> None:
    module = getattr(model, part)
    no_decay = _expected_no_decay(module)
    assert {id(p) for p in groups[f"{part}_no_decay"]["params"]} == no_decay
    decay = {id(p) for p in groups[part]["params"]}
    assert decay == {id(p) for p in module.parameters()} - no_decay
    # Decayed: full (groups = 1) conv and linear weights only.
    kinds = {
        type(sub).__name__
        for sub in module.modules()
        for p in sub.parameters(recurse=False)
        if id(p) in decay and p.ndim > 1 and getattr(sub, "groups", 1) == 1
    }
    assert kinds == ({"Conv2d"} if part == "backbone" else {"Linear"})
    assert all(p.ndim > 1 for p in groups[part]["params"])


def test_depthwise_weights_do_not_decay(model: nn.Module, groups: dict[str, dict]) -> None:
    depthwise = [m.weight for m in model.backbone.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert len(depthwise) == 13  # MobileNetV1: 13 depthwise separable blocks (Table 1)
    no_decay = {id(p) for p in groups["backbone_no_decay"]["params"]}
    assert all(id(w) in no_decay for w in depthwise)
    pointwise = [m.weight for m in model.backbone.modules() if isinstance(m, nn.Conv2d) and m.groups == 1]
    assert len(pointwise) == 14  # the first full conv and 13 pointwise convs
    assert not any(id(w) in no_decay for w in pointwise)
    assert id(model.head.fc.bias) in {id(p) for p in groups["head_no_decay"]["params"]}


def test_backbone_lr_mult_reaches_the_optimizer(model: nn.Module) -> None:
    listed = parameter_groups({"backbone": (model.backbone, 0.5), "head": (model.head, 1.0)}, lr=LR, weight_decay=WD)
    optimizer = build_optimizer(listed, name="sgd", lr=LR)
    lrs = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert lrs == pytest.approx({"backbone": 0.1, "backbone_no_decay": 0.1, "head": LR, "head_no_decay": LR})
    decays = {group["name"]: group["weight_decay"] for group in optimizer.param_groups}
    assert decays == {"backbone": WD, "backbone_no_decay": 0.0, "head": WD, "head_no_decay": 0.0}


def test_build_sgd(groups: dict[str, dict]) -> None:
    optimizer = build_optimizer(list(groups.values()), name="sgd", lr=LR, momentum=0.8, nesterov=True)
    assert type(optimizer) is torch.optim.SGD
    assert optimizer.defaults["momentum"] == 0.8
    assert optimizer.defaults["nesterov"] is True
    assert len(optimizer.param_groups) == 4


def test_build_rmsprop_paper_defaults(groups: dict[str, dict]) -> None:
    # TF-style RMSprop of the paper: decay 0.9, momentum 0.9, epsilon 1.0.
    optimizer = build_optimizer(list(groups.values()), name="rmsprop", lr=LR)
    assert type(optimizer) is torch.optim.RMSprop
    assert (optimizer.defaults["alpha"], optimizer.defaults["momentum"], optimizer.defaults["eps"]) == (0.9, 0.9, 1.0)


def test_build_adamw(groups: dict[str, dict]) -> None:
    optimizer = build_optimizer(list(groups.values()), name="adamw", lr=1e-3, betas=[0.8, 0.99], weight_decay=0.5)
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.defaults["betas"] == (0.8, 0.99)
    assert optimizer.defaults["lr"] == 1e-3
    # weight_decay is taken per group (the optimizer-wide value is ignored).
    assert {g["name"]: g["weight_decay"] for g in optimizer.param_groups}["head"] == WD


def test_build_optimizer_unknown(groups: dict[str, dict]) -> None:
    with pytest.raises(ConfigError, match="lamb"):
        build_optimizer(list(groups.values()), name="lamb", lr=LR)


def test_warmup_is_linear_to_one() -> None:
    factor = lr_lambda(name="cosine", total_steps=100, warmup_steps=4)
    assert [factor(s) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factor(4) == pytest.approx(1.0)  # cosine starts at its top after warm-up


def test_cosine_schedule() -> None:
    factor = lr_lambda(name="cosine", total_steps=110, warmup_steps=10, min_lr_ratio=0.1)
    assert factor(10) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.5 * (1 + 0.1))  # midway through the decay
    assert factor(35) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert factor(110) == pytest.approx(0.1)
    assert factor(500) == pytest.approx(0.1)  # held at the minimum past the end
    values = [factor(s) for s in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_step_schedule() -> None:
    factor = lr_lambda(name="step", total_steps=100, milestones=(0.3, 0.6), gamma=0.5)
    assert factor(0) == factor(29) == 1.0
    assert factor(30) == factor(59) == pytest.approx(0.5)
    assert factor(60) == factor(99) == pytest.approx(0.25)


def test_step_schedule_after_warmup() -> None:
    # Milestones are fractions of the steps after warm-up.
    factor = lr_lambda(name="step", total_steps=120, warmup_steps=20, milestones=(0.5,), gamma=0.1)
    assert factor(0) == pytest.approx(0.05)
    assert factor(69) == 1.0
    assert factor(70) == pytest.approx(0.1)


def test_constant_schedule() -> None:
    factor = lr_lambda(name="constant", total_steps=10, warmup_steps=2)
    assert [factor(s) for s in range(6)] == pytest.approx([0.5, 1.0, 1.0, 1.0, 1.0, 1.0])


def test_unknown_schedule() -> None:
    with pytest.raises(ConfigError, match="linear"):
        lr_lambda(name="linear", total_steps=10)


def test_build_scheduler_warmup_in_epochs() -> None:
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = build_scheduler(optimizer, name="cosine", total_steps=40, warmup_epochs=0.5, steps_per_epoch=8)
    lrs = []
    for _ in range(40):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[:5] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0])  # 0.5 epoch x 8 steps = 4 warm-up steps
    assert lrs[22] == pytest.approx(0.5)  # midway through the 36 decay steps
