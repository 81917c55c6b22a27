"""``Evaluator`` (mobivision/evaluation/evaluator.py) and the task evaluators: each image is scored once across
processes (first state wins), and each evaluator's metrics equal the metric functions on the same images."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mobivision.data.records import GeoTarget
from mobivision.evaluation.attributes import AttributeEvaluator, attribute_metrics, tune_thresholds
from mobivision.evaluation.classification import ClassificationEvaluator
from mobivision.evaluation.geo import GeoEvaluator, geo_metrics


def _batch(paths: list[str], target: object) -> dict:
    return {"meta": {"path": paths}, "target": target}


def test_classification_evaluator_scores_each_image_once_across_processes() -> None:
    generator = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(8, 7, generator=generator), torch.randint(0, 7, (8,), generator=generator)
    paths = [f"img{i}.png" for i in range(8)]
    ranks = [ClassificationEvaluator([str(c) for c in range(7)], keep_probabilities=False) for _ in range(2)]
    ranks[0].update(logits[:5], _batch(paths[:5], targets[:5]))
    # rank 1 got images 5-7 and, as DistributedSampler padding, image 0 again with other logits
    ranks[1].update(
        torch.cat([logits[5:], -logits[:1]]), _batch(paths[5:] + paths[:1], torch.cat([targets[5:], targets[:1]]))
    )
    metrics = ranks[0].compute([r.state() for r in ranks])
    top1 = (logits.argmax(1) == targets).double().mean()
    top5 = (logits.topk(5, dim=1).indices == targets[:, None]).any(1).double().mean()
    assert metrics["top1"] == pytest.approx(float(top1)) and metrics["top5"] == pytest.approx(float(top5))
    assert metrics["loss"] == pytest.approx(float(F.cross_entropy(logits, targets)), rel=1e-6)
    assert list(ranks[0].state()) == paths  # merged, in first-seen order


def test_attribute_evaluator_tunes_thresholds_on_validation_and_keeps_them() -> None:
    generator = torch.Generator().manual_seed(1)
    probabilities = torch.rand(40, 3, generator=generator)
    targets = (torch.rand(40, 3, generator=generator) < probabilities).float()
    targets[0, 1] = float("nan")
    evaluator = AttributeEvaluator(["a", "b", "c"], thresholds=torch.full((3,), 0.5), tune="accuracy")
    evaluator.update(probabilities, _batch([f"{i}" for i in range(40)], targets))
    metrics = evaluator.compute()
    tuned = tune_thresholds(probabilities, targets, criterion="accuracy")
    assert torch.equal(evaluator.thresholds, tuned)
    assert metrics == attribute_metrics(probabilities, targets, tuned).summary()


def test_geo_evaluator_reports_the_baseline_beside_the_model() -> None:
    truth = torch.tensor([[48.85, 2.35], [40.71, -74.0], [35.68, 139.69]], dtype=torch.float64)
    predicted = torch.tensor([[48.0, 2.0], [41.0, -74.0], [-33.9, 151.2]])
    evaluator = GeoEvaluator(baseline=(48.85, 2.35))
    target = GeoTarget(location=truth, cells=torch.zeros(3, 0, dtype=torch.long))
    evaluator.update((predicted, torch.zeros(3, 1)), _batch(["p", "n", "t"], target))
    metrics = evaluator.compute()
    expected = geo_metrics(predicted[:, 0].double(), predicted[:, 1].double(), truth[:, 0], truth[:, 1]).summary()
    assert {k: v for k, v in metrics.items() if not k.startswith("baseline_")} == expected
    assert metrics["baseline_acc_1km"] == pytest.approx(1 / 3) and "median_km" in evaluator.lower_is_better
