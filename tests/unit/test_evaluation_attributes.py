"""Attribute metrics against brute-force references written in plain Python, threshold search, reports."""

from __future__ import annotations

import csv
import itertools
import math
from fractions import Fraction
from pathlib import Path

import pytest
import torch

from mobivision.errors import ConfigError, DataError
from mobivision.evaluation.attributes import (
    attribute_metrics,
    average_precision,
    format_attribute_table,
    tune_thresholds,
    write_attribute_report,
)

NAN = math.nan


# ---- brute-force references (plain Python, one attribute at a time) ----


def _known(scores: list[float], labels: list[float]) -> list[tuple[float, int]]:
    return [(s, int(y)) for s, y in zip(scores, labels, strict=True) if not math.isnan(y)]


def ref_average_precision(scores: list[float], labels: list[float]) -> float:
    """AP = sum_k (R_k - R_{k-1}) P_k over the distinct scores taken as thresholds, highest first."""
    rows = _known(scores, labels)
    positives = sum(y for _, y in rows)
    if positives == 0:
        return NAN
    ap, previous_recall = Fraction(0), Fraction(0)
    for threshold in sorted({s for s, _ in rows}, reverse=True):
        selected = [y for s, y in rows if s >= threshold]
        precision = Fraction(sum(selected), len(selected))
        recall = Fraction(sum(selected), positives)
        ap += (recall - previous_recall) * precision
        previous_recall = recall
    return float(ap)


def ref_criterion(rows: list[tuple[float, int]], threshold: float, criterion: str) -> Fraction:
    tp = sum(1 for s, y in rows if y == 1 and s >= threshold)
    tn = sum(1 for s, y in rows if y == 0 and s < threshold)
    n_pos = sum(y for _, y in rows)
    n_neg = len(rows) - n_pos
    if criterion == "accuracy":
        return Fraction(tp + tn, len(rows))
    rates = ([Fraction(tp, n_pos)] if n_pos else []) + ([Fraction(tn, n_neg)] if n_neg else [])
    return sum(rates) / len(rates)


def ref_threshold(scores: list[float], labels: list[float], criterion: str) -> float:
    """Try every candidate; keep the best, then the closest to 0.5, then the smallest."""
    rows = _known(scores, labels)
    if not rows:
        return 0.5
    values = sorted({s for s, _ in rows})
    candidates = [values[0] - 1] + [(a + b) / 2 for a, b in itertools.pairwise(values)] + [values[-1] + 1]
    return min(candidates, key=lambda c: (-ref_criterion(rows, c, criterion), abs(c - 0.5), c))


def ref_rates(scores: list[float], labels: list[float], threshold: float) -> tuple[float, float, float]:
    """(accuracy, balanced accuracy, positive rate) by counting."""
    rows = _known(scores, labels)
    if not rows:
        return NAN, NAN, NAN
    correct = sum(1 for s, y in rows if (s >= threshold) == (y == 1))
    positives = sum(y for _, y in rows)
    return correct / len(rows), float(ref_criterion(rows, threshold, "balanced")), positives / len(rows)


def _random_data(seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores on a 0.05 grid (many ties), ~20% unknown labels, and the awkward attributes: 5 has no
    known row, 6 no known positive, 7 no known negative, 8 a single known row."""
    generator = torch.Generator().manual_seed(seed)
    n, a = 80, 9
    labels = (torch.rand(n, a, generator=generator) < 0.35).double()
    noise = torch.rand(n, a, generator=generator)
    probabilities = ((0.35 * labels + 0.65 * noise) * 20).round() / 20  # informative but overlapping
    labels[torch.rand(n, a, generator=generator) < 0.2] = NAN
    labels[:, 5] = NAN
    labels[:, 6] = torch.where(torch.isnan(labels[:, 6]), NAN, 0.0)
    labels[:, 7] = torch.where(torch.isnan(labels[:, 7]), NAN, 1.0)
    labels[:, 8] = NAN
    labels[3, 8] = 1.0
    return probabilities.float(), labels.float()


def _columns(probabilities: torch.Tensor, targets: torch.Tensor) -> list[tuple[list[float], list[float]]]:
    return [(probabilities[:, a].double().tolist(), targets[:, a].tolist()) for a in range(probabilities.shape[1])]


def _assert_same(actual: torch.Tensor, expected: list[float], tol: float = 1e-12) -> None:
    assert actual.shape == (len(expected),)
    for a, (x, y) in enumerate(zip(actual.tolist(), expected, strict=True)):
        if math.isnan(y):
            assert math.isnan(x), f"attribute {a}: expected NaN, got {x}"
        else:
            assert x == pytest.approx(y, abs=tol), f"attribute {a}"


# ---- metrics against the references ----


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_average_precision_matches_the_definition(seed: int) -> None:
    probabilities, targets = _random_data(seed)
    expected = [ref_average_precision(s, y) for s, y in _columns(probabilities, targets)]
    assert math.isnan(expected[5]) and math.isnan(expected[6]) and expected[7] == 1.0
    _assert_same(average_precision(probabilities, targets), expected, tol=1e-6)


def test_average_precision_with_ties_on_a_hand_example() -> None:
    # scores 0.9 (pos), 0.5 (pos), 0.5 (neg), 0.1 (neg), unknown 0.95: thresholds 0.9 -> P=1, R=1/2;
    # 0.5 -> P=2/3, R=1 (the tie counts as one step); AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    probabilities = torch.tensor([[0.9], [0.5], [0.5], [0.1], [0.95]])
    targets = torch.tensor([[1.0], [1.0], [0.0], [0.0], [NAN]])
    assert average_precision(probabilities, targets).item() == pytest.approx(5 / 6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("criterion", ["accuracy", "balanced_accuracy"])
@pytest.mark.parametrize("seed", [7, 8, 9])
def test_tuned_thresholds_match_brute_force(criterion: str, seed: int, dtype: torch.dtype) -> None:
    probabilities, targets = _random_data(seed)
    probabilities = probabilities.to(dtype)
    expected = [ref_threshold(s, y, criterion) for s, y in _columns(probabilities, targets)]
    thresholds = tune_thresholds(probabilities, targets, criterion=criterion)
    assert thresholds.dtype == dtype
    assert thresholds.tolist() == torch.tensor(expected, dtype=dtype).tolist()
    assert thresholds[5] == 0.5  # no known row
    # attribute 7 has only positives: predicting everything positive is the only perfect choice
    assert thresholds[7] < probabilities[:, 7].min()


def test_tuning_on_unknown_free_data_scores_at_least_as_well_as_any_grid_threshold() -> None:
    generator = torch.Generator().manual_seed(3)
    targets = (torch.rand(200, 3, generator=generator) < 0.2).float()
    probabilities = (0.3 * targets + 0.7 * torch.rand(200, 3, generator=generator)).clamp(0, 1)
    thresholds = tune_thresholds(probabilities, targets)
    best = attribute_metrics(probabilities, targets, thresholds).accuracy
    for grid in torch.linspace(0, 1, 101):
        other = attribute_metrics(probabilities, targets, grid.repeat(3)).accuracy
        assert (best >= other).all()


def test_threshold_between_adjacent_floats_keeps_the_split() -> None:
    # the float32 midpoint of two neighbouring floats rounds onto one of them; it must not be the lower one
    low = torch.tensor(0.3)
    high = torch.nextafter(low, torch.tensor(1.0))
    for first, second in ((low, high), (high, torch.nextafter(high, torch.tensor(1.0)))):
        probabilities = torch.stack([first, second]).view(2, 1)
        targets = torch.tensor([[0.0], [1.0]])
        threshold = tune_thresholds(probabilities, targets)
        assert threshold.dtype == torch.float32
        assert (probabilities >= threshold).flatten().tolist() == [False, True]
        assert attribute_metrics(probabilities, targets, threshold).accuracy.item() == 1.0


def test_tie_break_prefers_the_candidate_closest_to_one_half() -> None:
    # accuracy 2/3 at -0.9 (all positive) and at 0.675; the in-range threshold wins
    probabilities = torch.tensor([[0.1], [0.45], [0.9]])
    targets = torch.tensor([[1.0], [0.0], [1.0]])
    assert tune_thresholds(probabilities, targets).tolist() == [pytest.approx(0.675)]
    # accuracy 3/4 at 0.3 ({0.4, 0.5, 0.6} positive) and at 0.55 ({0.6} positive): 0.55 is closer to 0.5
    probabilities = torch.tensor([[0.2], [0.4], [0.5], [0.6], [0.9], [0.95]])
    targets = torch.tensor([[0.0], [1.0], [0.0], [1.0], [NAN], [NAN]])
    assert tune_thresholds(probabilities, targets).item() == pytest.approx(0.55)
    # the mirror image: accuracy 3/4 at 0.45 and at 0.7: now the lower one is closer
    probabilities = torch.tensor([[0.8], [0.6], [0.5], [0.4]])
    targets = torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    assert tune_thresholds(probabilities, targets).item() == pytest.approx(0.45)
    # accuracy 3/4 at 0.25 and at 0.75, both exactly 0.25 away from 0.5: the smaller one
    probabilities = torch.tensor([[0.125], [0.375], [0.625], [0.875]])
    targets = torch.tensor([[0.0], [1.0], [0.0], [1.0]])
    assert tune_thresholds(probabilities, targets).item() == 0.25


def test_balanced_accuracy_criterion_favours_the_rare_class() -> None:
    # 1 positive among 6: accuracy is best (5/6) predicting everything negative, i.e. above the maximum
    # (0.6 + 1); balanced accuracy takes the positive at 0.4 (TPR 1, TNR 3/5) with the threshold 0.35.
    probabilities = torch.tensor([[0.1], [0.2], [0.3], [0.4], [0.5], [0.6]])
    targets = torch.tensor([[0.0], [0.0], [0.0], [1.0], [0.0], [0.0]])
    assert tune_thresholds(probabilities, targets).item() == pytest.approx(1.6)
    assert tune_thresholds(probabilities, targets, criterion="balanced_accuracy").item() == pytest.approx(0.35)


def test_attribute_metrics_match_counting() -> None:
    probabilities, targets = _random_data()
    thresholds = tune_thresholds(probabilities, targets)
    thresholds[0] = float(probabilities[0, 0])  # a threshold equal to a score decides "present"
    metrics = attribute_metrics(probabilities, targets, thresholds)
    expected = [
        ref_rates(s, y, t) for (s, y), t in zip(_columns(probabilities, targets), thresholds.tolist(), strict=True)
    ]
    _assert_same(metrics.accuracy, [e[0] for e in expected])
    _assert_same(metrics.balanced_accuracy, [e[1] for e in expected])
    _assert_same(metrics.positive_rate, [e[2] for e in expected])
    assert metrics.positive_rate[6] == 0 and metrics.positive_rate[7] == 1 and metrics.positive_rate[8] == 1
    ap = [ref_average_precision(s, y) for s, y in _columns(probabilities, targets)]
    _assert_same(metrics.average_precision, ap, tol=1e-6)
    assert torch.equal(metrics.thresholds, thresholds.double())

    defined_ap = [v for v in ap if not math.isnan(v)]
    assert len(defined_ap) == 7
    assert metrics.mean_ap == pytest.approx(sum(defined_ap) / len(defined_ap), abs=1e-6)
    accuracies = [e[0] for e in expected if not math.isnan(e[0])]
    balanced = [e[1] for e in expected if not math.isnan(e[1])]
    assert metrics.mean_accuracy == pytest.approx(sum(accuracies) / len(accuracies))
    assert metrics.mean_balanced_accuracy == pytest.approx(sum(balanced) / len(balanced))
    assert metrics.summary("val/") == {
        "val/mAP": metrics.mean_ap,
        "val/mean_acc": metrics.mean_accuracy,
        "val/balanced_acc": metrics.mean_balanced_accuracy,
    }


def test_balanced_accuracy_on_a_hand_example() -> None:
    # attribute 0: TP 1 of 2 positives, TN 2 of 2 negatives -> 3/4; attribute 1: only negatives, TN 1 of 3
    probabilities = torch.tensor([[0.9, 0.9], [0.2, 0.8], [0.1, 0.1], [0.3, NAN]]).nan_to_num(0.0)
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, NAN]])
    metrics = attribute_metrics(probabilities, targets, torch.tensor([0.5, 0.5]))
    assert metrics.balanced_accuracy.tolist() == pytest.approx([0.75, 1 / 3])
    assert metrics.accuracy.tolist() == pytest.approx([0.75, 1 / 3])


# ---- reports ----


def test_report_files(tmp_path: Path) -> None:
    probabilities = torch.tensor([[0.9, 0.2], [0.6, 0.7], [0.3, 0.4], [0.1, 0.8]])
    targets = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, NAN], [0.0, 1.0]])
    thresholds = torch.tensor([0.5, 0.55])
    names = ["Smiling", "Eyeglasses"]
    images = ["000001.jpg", "000002.jpg", "000003.jpg", "000004.jpg"]
    files = write_attribute_report(
        tmp_path,
        "val",
        probabilities=probabilities,
        targets=targets,
        thresholds=thresholds,
        attribute_names=names,
        images=images,
    )
    assert [f.name for f in files] == ["per_attribute_val.md", "per_attribute_val.csv", "predictions_val.csv"]

    # Smiling: positives 2/4; AP: 0.9 pos (P1 R1/2), 0.6 neg, 0.3 pos (P2/3 R1) -> 5/6; acc 2/4;
    # Eyeglasses (3 known): positives 2/3; AP 1; acc 3/3 at 0.55; balanced 1
    lines = files[0].read_text().splitlines()
    assert lines[0] == "| attribute | positives % | AP % | accuracy % | balanced accuracy % | threshold |"
    assert lines[2] == "| Smiling | 50.0 | 83.3 | 50.0 | 50.0 | 0.500 |"
    assert lines[3] == "| Eyeglasses | 66.7 | 100.0 | 100.0 | 100.0 | 0.550 |"
    assert lines[4] == "| mean | 58.3 | 91.7 | 75.0 | 75.0 |  |"
    assert len(lines) == 5

    with open(files[1]) as f:
        rows = list(csv.DictReader(f))
    assert [r["attribute"] for r in rows] == ["Smiling", "Eyeglasses", "mean"]
    assert float(rows[0]["average_precision"]) == pytest.approx(5 / 6)
    assert float(rows[1]["positive_rate"]) == pytest.approx(2 / 3)
    assert float(rows[1]["threshold"]) == pytest.approx(0.55)
    assert float(rows[2]["average_precision"]) == pytest.approx((5 / 6 + 1) / 2)
    assert float(rows[2]["accuracy"]) == pytest.approx(0.75) and rows[2]["threshold"] == ""

    with open(files[2]) as f:
        predictions = list(csv.DictReader(f))
    assert list(predictions[0]) == ["image", "Smiling", "Eyeglasses"]
    assert [p["image"] for p in predictions] == images
    assert [float(p["Eyeglasses"]) for p in predictions] == pytest.approx([0.2, 0.7, 0.4, 0.8])


def test_table_marks_undefined_values() -> None:
    probabilities = torch.tensor([[0.9, 0.2], [0.6, 0.7]])
    targets = torch.tensor([[0.0, NAN], [0.0, NAN]])
    metrics = attribute_metrics(probabilities, targets, torch.tensor([0.5, 0.5]))
    lines = format_attribute_table(metrics, ["a", "b"]).splitlines()
    assert lines[2] == "| a | 0.0 | – | 0.0 | 0.0 | 0.500 |"
    assert lines[3] == "| b | – | – | – | – | 0.500 |"
    assert lines[4] == "| mean | 0.0 | – | 0.0 | 0.0 |  |"


# ---- validation ----


def test_rejects_bad_inputs(tmp_path: Path) -> None:
    probabilities, targets = torch.rand(4, 2), torch.zeros(4, 2)
    with pytest.raises(DataError, match="targets have shape"):
        average_precision(probabilities, torch.zeros(4, 3))
    with pytest.raises(DataError, match=r"shape \[N, A\]"):
        tune_thresholds(torch.rand(4), torch.zeros(4))
    with pytest.raises(DataError, match="not logits"):
        average_precision(probabilities * 4 - 2, targets)
    with pytest.raises(DataError, match="NaN"):
        attribute_metrics(probabilities, torch.full((4, 2), 0.5), torch.tensor([0.5, 0.5]))
    with pytest.raises(DataError, match="float tensor"):
        average_precision(probabilities, torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ConfigError, match="one per attribute"):
        attribute_metrics(probabilities, targets, torch.tensor([0.5, 0.5, 0.5]))
    with pytest.raises(ConfigError, match="unknown criterion"):
        tune_thresholds(probabilities, targets, criterion="f1")
    report = {"probabilities": probabilities, "targets": targets, "thresholds": torch.tensor([0.5, 0.5])}
    with pytest.raises(ConfigError, match="3 attribute names for 2 attributes"):
        write_attribute_report(tmp_path, "val", **report, attribute_names=["a", "b", "c"], images=list("wxyz"))
    with pytest.raises(ConfigError, match="unique"):
        write_attribute_report(tmp_path, "val", **report, attribute_names=["a", "a"], images=list("wxyz"))
    with pytest.raises(DataError, match="3 image names for 4 rows"):
        write_attribute_report(tmp_path, "val", **report, attribute_names=["a", "b"], images=list("xyz"))
