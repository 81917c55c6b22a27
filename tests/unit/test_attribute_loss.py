"""Attribute loss: masked BCE, distillation from a teacher, positive weights and decisions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mobivision.errors import ConfigError, DataError
from mobivision.heads.attributes import attribute_loss, positive_weight

NAN = math.nan


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _bce(s: float, y: float, pos_weight: float = 1.0) -> float:
    return -(pos_weight * y * math.log(_sigmoid(s)) + (1 - y) * math.log(1 - _sigmoid(s)))


def _distill(s: float, t: float, temperature: float) -> float:
    return temperature**2 * _bce(s / temperature, _sigmoid(t / temperature))


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(16, 5, generator=generator) * 3
    targets = (torch.rand(16, 5, generator=generator) < 0.3).float()
    teacher = torch.randn(16, 5, generator=generator) * 3
    return logits, targets, teacher


@pytest.mark.parametrize("with_pos_weight", [False, True])
@pytest.mark.parametrize("with_teacher", [False, True])
def test_equals_plain_bce_when_teacher_weight_is_zero(with_pos_weight: bool, with_teacher: bool) -> None:
    logits, targets, teacher = _data()
    pos_weight = torch.tensor([0.5, 1.0, 2.0, 7.0, 30.0]) if with_pos_weight else None
    out = attribute_loss(
        logits, targets, pos_weight=pos_weight, teacher_logits=teacher if with_teacher else None, temperature=3.0
    )
    expected = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight)
    assert torch.equal(out["loss"], expected)
    assert torch.equal(out["bce"], expected)
    if with_teacher:
        assert out["distill"] > 0
    else:
        assert out["distill"] == 0


def test_pos_weight_scales_the_positive_term() -> None:
    out = attribute_loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), pos_weight=torch.tensor([3.0, 3.0]))
    # positive: 3 * log 2, negative: log 2 (pos_weight does not touch negatives)
    assert out["loss"].item() == pytest.approx((3 * math.log(2) + math.log(2)) / 2)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_full_teacher_weight_is_pure_distillation(temperature: float) -> None:
    logits, targets, teacher = _data(1)
    targets[0, 0] = NAN  # an unknown label changes nothing when only the teacher counts
    out = attribute_loss(logits, targets, teacher_logits=teacher, teacher_weight=1.0, temperature=temperature)
    expected = temperature**2 * F.binary_cross_entropy_with_logits(
        logits / temperature, torch.sigmoid(teacher / temperature)
    )
    torch.testing.assert_close(out["loss"], expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(out["distill"], expected, rtol=1e-6, atol=0)
    # and the labels do not matter at all
    flipped = attribute_loss(logits, 1 - targets, teacher_logits=teacher, teacher_weight=1.0, temperature=temperature)
    torch.testing.assert_close(flipped["loss"], out["loss"], rtol=1e-6, atol=0)


def test_mixed_loss_matches_hand_computation() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    teacher = torch.tensor([[1.0, 2.0], [-3.0, 0.0]])
    w, t = 0.25, 2.0
    out = attribute_loss(logits, targets, teacher_logits=teacher, teacher_weight=w, temperature=t)
    elements = [(2.0, 1.0, 1.0), (-1.0, 0.0, 2.0), (0.5, 0.0, -3.0), (3.0, 1.0, 0.0)]
    expected = sum((1 - w) * _bce(s, y) + w * _distill(s, q, t) for s, y, q in elements) / 4
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)
    assert out["bce"].item() == pytest.approx(sum(_bce(s, y) for s, y, _ in elements) / 4, rel=1e-6)
    assert out["distill"].item() == pytest.approx(sum(_distill(s, q, t) for s, _, q in elements) / 4, rel=1e-6)


def test_gradient_descent_with_full_teacher_weight_reaches_the_teacher() -> None:
    teacher = torch.tensor([[3.0, -2.0, 0.5], [-4.0, 1.0, 0.0]])
    targets = torch.tensor([[0.0, 1.0, NAN], [1.0, NAN, 0.0]])  # contradict the teacher on purpose
    student = torch.zeros_like(teacher, requires_grad=True)
    optimizer = torch.optim.SGD([student], lr=20.0)
    for _ in range(1500):
        optimizer.zero_grad()
        attribute_loss(student, targets, teacher_logits=teacher, teacher_weight=1.0, temperature=2.0)["loss"].backward()
        optimizer.step()
    torch.testing.assert_close(student.detach(), teacher, atol=1e-3, rtol=0)


def test_teacher_is_a_constant() -> None:
    logits, targets, teacher = _data(2)
    logits.requires_grad_(True)
    teacher.requires_grad_(True)
    attribute_loss(logits, targets, teacher_logits=teacher, teacher_weight=0.5, temperature=2.0)["loss"].backward()
    assert teacher.grad is None
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_unknown_targets_are_left_out_without_teacher() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]], requires_grad=True)
    targets = torch.tensor([[1.0, NAN], [NAN, 0.0]])
    out = attribute_loss(logits, targets, pos_weight=torch.tensor([2.0, 5.0]))
    expected = (_bce(2.0, 1.0, 2.0) + _bce(3.0, 0.0, 5.0)) / 2
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)
    assert out["bce"].item() == pytest.approx(expected, rel=1e-6)
    assert out["distill"].item() == 0
    out["loss"].backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad[0, 1] == 0 and logits.grad[1, 0] == 0
    assert logits.grad[0, 0] < 0 and logits.grad[1, 1] > 0


def test_unknown_targets_take_only_the_teacher_term() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]], requires_grad=True)
    targets = torch.tensor([[1.0, NAN], [NAN, 0.0]])
    teacher = torch.tensor([[1.0, 2.0], [-3.0, 0.0]])
    w, t = 0.25, 2.0
    out = attribute_loss(logits, targets, teacher_logits=teacher, teacher_weight=w, temperature=t)
    labelled = [(2.0, 1.0, 1.0), (3.0, 0.0, 0.0)]
    unlabelled = [(-1.0, 2.0), (0.5, -3.0)]
    expected = (
        sum((1 - w) * _bce(s, y) + w * _distill(s, q, t) for s, y, q in labelled)
        + sum(_distill(s, q, t) for s, q in unlabelled)
    ) / 4
    assert out["loss"].item() == pytest.approx(expected, rel=1e-6)
    assert out["bce"].item() == pytest.approx((_bce(2.0, 1.0) + _bce(3.0, 0.0)) / 2, rel=1e-6)
    all_distill = [_distill(s, q, t) for s, _, q in labelled] + [_distill(s, q, t) for s, q in unlabelled]
    assert out["distill"].item() == pytest.approx(sum(all_distill) / 4, rel=1e-6)
    out["loss"].backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    # the unlabelled student logit (-1) is pulled towards the teacher (2): gradient is negative
    assert logits.grad[0, 1] < 0 and logits.grad[1, 0] > 0


def test_all_unknown_without_teacher_gives_zero_with_a_gradient_path() -> None:
    logits = torch.randn(3, 4, requires_grad=True)
    out = attribute_loss(logits, torch.full((3, 4), NAN))
    assert out["loss"].item() == 0 and out["bce"].item() == 0 and out["distill"].item() == 0
    out["loss"].backward()
    assert logits.grad is not None and torch.equal(logits.grad, torch.zeros(3, 4))


def test_positive_weight_from_rates() -> None:
    weights = positive_weight(torch.tensor([0.25, 0.5, 0.9, 0.0, 1.0]), max_weight=50.0)
    torch.testing.assert_close(weights, torch.tensor([3.0, 1.0, 1 / 9, 50.0, 1 / 50]))
    assert positive_weight([0.0, 1.0]).tolist() == pytest.approx([100.0, 0.01])
    # from label statistics with unknowns: attribute 0 has 1 positive of 4 known, attribute 1 has 2 of 2
    targets = torch.tensor([[1.0, 1.0], [0.0, NAN], [0.0, 1.0], [0.0, NAN], [NAN, NAN]])
    known = ~torch.isnan(targets)
    rates = torch.where(known, targets, 0).sum(0) / known.sum(0)
    torch.testing.assert_close(positive_weight(rates), torch.tensor([3.0, 0.01]))


@pytest.mark.parametrize("rate", [-0.1, 1.5, NAN])
def test_positive_weight_rejects_bad_rates(rate: float) -> None:
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        positive_weight([0.5, rate])


def test_positive_weight_rejects_bad_max_weight() -> None:
    with pytest.raises(ConfigError, match="max_weight"):
        positive_weight([0.5], max_weight=0.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"teacher_weight": -0.1, "teacher_logits": torch.zeros(2, 3)}, "teacher_weight"),
        ({"teacher_weight": 1.5, "teacher_logits": torch.zeros(2, 3)}, "teacher_weight"),
        ({"teacher_weight": 0.5}, "needs teacher_logits"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -2.0}, "temperature"),
        ({"temperature": math.inf}, "temperature"),
        ({"teacher_logits": torch.zeros(2, 4)}, "teacher logits have shape"),
        ({"pos_weight": torch.ones(4)}, "pos_weight"),
    ],
)
def test_attribute_loss_rejects_bad_configuration(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        attribute_loss(torch.zeros(2, 3), torch.zeros(2, 3), **kwargs)


def test_attribute_loss_rejects_mismatched_targets() -> None:
    with pytest.raises(DataError, match="targets have shape"):
        attribute_loss(torch.zeros(2, 3), torch.zeros(3, 2))
