"""One backbone, many heads: the model (``mobivision.multitask``), the task's routing (``tasks/multitask.py``) and the
combined evaluation (``mobivision.evaluation.multitask``), on random tensors."""

from __future__ import annotations

import math

import pytest
import torch

from mobivision import create_model, create_multitask, profile
from mobivision.errors import ConfigError
from mobivision.evaluation.classification import ClassificationEvaluator
from mobivision.evaluation.evaluator import Evaluator
from mobivision.evaluation.multitask import MultiTaskEvaluator
from mobivision.tasks.attributes import AttributeTask
from mobivision.tasks.multitask import MultiTask, take_rows

HEADS = {
    "det": {"kind": "detection", "num_classes": 3, "resolution": 96},
    "cls": {"kind": "classification", "num_classes": 5},
    "cls2": {"kind": "classification", "num_classes": 7},
    "attr": {"kind": "attributes", "num_attributes": 4},
    "geo": {"kind": "geo", "cells_per_partition": [3, 6]},
}
SHAPES = ["circle", "square", "triangle"]
ATTRIBUTES = ["Bangs", "Eyeglasses", "Smiling"]
META = {"resolution": 64, "mean": [0.5] * 3, "std": [0.5] * 3, "crop_pct": None}


def _count_calls(module: torch.nn.Module) -> list[int]:
    calls: list[int] = []
    module.register_forward_hook(lambda *args: calls.append(1))
    return calls


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    return torch.equal(a, b)


def test_multitask_model_runs_the_backbone_once_and_each_head_as_on_its_own() -> None:
    torch.manual_seed(0)
    model = create_multitask("mobilenet_v1", width_mult=0.25, heads=HEADS).eval()
    calls = _count_calls(model.backbone)
    images = torch.randn(2, 3, 96, 96)
    outputs = model(images)
    assert len(calls) == 1 and list(outputs) == list(HEADS)
    assert outputs["det"]["cls_logits"].shape[-1] == 3 and outputs["cls2"].shape == (2, 7)
    assert [x.shape[-1] for x in outputs["geo"]] == [3, 6] and outputs["attr"].shape == (2, 4)
    for name, head in model.heads.items():  # a head called alone runs the shared backbone: same outputs
        assert _equal(head(images), outputs[name]), name
    assert len(calls) == 1 + len(HEADS)
    # The backbone is saved once (no copy under a head) and has the detector's taps and the classifier's map.
    keys = list(model.state_dict())
    assert not [k for k in keys if k.startswith("heads.") and ".backbone." in k]
    assert model.backbone.out_features == ["Conv2d_11_pointwise", "Conv2d_13_pointwise"]
    assert all(head.backbone is model.backbone for head in model.heads.values())


def test_multitask_model_heads_share_the_backbones_batchnorm_and_take_its_weights(tmp_path) -> None:
    classifier = create_model("mobilenet_v1", width_mult=0.25, num_classes=10)
    weights = tmp_path / "weights.pth"
    torch.save(classifier.state_dict(), weights)
    model = create_multitask("mobilenet_v1", width_mult=0.25, pretrained=weights, heads=HEADS)
    for key, value in classifier.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    epsilons = {m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert epsilons == {1e-5}  # the detector's own layers follow the shared backbone, not the detector default


def test_create_multitask_refuses_unknown_or_missing_heads() -> None:
    with pytest.raises(ConfigError, match=r"heads\.x\.kind must be one of"):
        create_multitask("mobilenet_v1", heads={"x": {"kind": "segmentation"}})
    with pytest.raises(ConfigError, match="heads is empty"):
        create_multitask("mobilenet_v1", heads={})


def test_profile_reports_the_backbone_share_of_a_multitask_model() -> None:
    model = create_multitask("mobilenet_v1", width_mult=0.25, heads=HEADS)
    cost = profile(model, 96)
    backbone = profile(model.backbone, 96)
    assert cost.backbone_macs == backbone.macs and cost.backbone_params == backbone.params
    macs_share, params_share = cost.backbone_share
    assert 0 < macs_share < 1 and 0 < params_share < 1
    # One pass instead of five: cheaper than the heads as separate networks.
    separate = sum(profile(head, 96).macs for head in model.heads.values())
    assert cost.macs == pytest.approx(separate - (len(HEADS) - 1) * backbone.macs, rel=1e-6)


def _task(**heads) -> MultiTask:
    label_sets = {
        "shapes": {"target": {"class_names": SHAPES, "category_ids": [1, 2, 3]}},
        "faces": {
            "target": {"class_names": ["face"], "category_ids": [1]},
            "attributes": {"attribute_names": ATTRIBUTES, "positive_rate": [0.2, 0.3, 0.5]},
        },
    }
    backbone = {"name": "mobilenet_v1", "width_mult": 0.25}
    return MultiTask(
        heads=heads,
        label_sets=label_sets,
        backbone=backbone,
        optimizer={"name": "adamw", "lr": 1e-3},
        scheduler={"name": "constant"},
        data_meta=META,
    )


def _detection_batch(n: int, labeled: list[bool] | None = None) -> dict:
    batch = {
        "image": torch.randn(n, 3, 64, 64),
        "target": [{"boxes": torch.tensor([[4.0, 4.0, 40.0, 40.0]]), "labels": torch.tensor([1])} for _ in range(n)],
        "meta": [{"image_id": i, "path": f"{i}.jpg", "size": (64, 64), "input_size": (64, 64)} for i in range(n)],
    }
    if labeled is not None:
        batch["attributes"] = torch.randint(0, 2, (n, len(ATTRIBUTES))).float()
        batch["labeled"] = {"attributes": torch.tensor(labeled)}
    return batch


def test_a_training_step_runs_the_backbone_once_per_source_whatever_the_heads() -> None:
    torch.manual_seed(0)
    task = _task(
        shapes={"kind": "detection", "data": "shapes"},
        shapes2={"kind": "detection", "data": "shapes", "freeze": True},
        faces={"kind": "detection", "data": "faces"},
        attr={"kind": "attributes", "data": "faces", "labels": "attributes", "loss_weight": 0.5},
    )
    calls = _count_calls(task.model.backbone)
    head_calls = {name: _count_calls(head) for name, head in task.model.heads.items()}
    task.log = task.log_dict = lambda *args, **kwargs: None  # no trainer here
    batch = {"shapes": _detection_batch(2), "faces": _detection_batch(3, [True, True, True])}
    # shapes2 is frozen: no loss to compute, so its head does not run in training.
    loss = task.training_step(batch, 0)
    assert len(calls) == 2 and loss.requires_grad
    assert {name: len(c) for name, c in head_calls.items()} == {"shapes": 0, "shapes2": 0, "faces": 0, "attr": 0}


def test_images_without_a_heads_labels_are_left_out_of_its_loss() -> None:
    torch.manual_seed(0)
    task = _task(
        shapes={"kind": "detection", "data": "shapes"},  # its source has no batch in these steps
        faces={"kind": "detection", "data": "faces", "loss_weight": 0.0},
        attr={"kind": "attributes", "data": "faces", "labels": "attributes"},
    ).eval()
    losses = {}
    task.log = lambda *args, **kwargs: None
    task.log_dict = lambda values, **kwargs: losses.update(values)
    batch = _detection_batch(4, [True, False, True, False])
    batch["attributes"][1] = torch.tensor([7.0, 7.0, 7.0])  # an invalid "label": it must never be read
    total = task.training_step({"faces": batch}, 0)
    attr = task.head_tasks["attr"]
    assert isinstance(attr, AttributeTask)
    with torch.no_grad():
        alone = attr.model(batch["image"][[0, 2]])  # the labeled images alone through the same network
    expected = attr.loss(alone, {"image": batch["image"][[0, 2]], "target": batch["attributes"][[0, 2]]})["loss"]
    assert losses["train/attr/loss"] == pytest.approx(float(expected), abs=1e-6)
    assert float(total.detach()) == pytest.approx(float(expected), abs=1e-6)  # the detector weighs 0 here
    # No labeled image: the head takes no part in the step.
    losses.clear()
    task.training_step({"faces": _detection_batch(2, [False, False])}, 0)
    assert "train/attr/loss" not in losses and "train/faces/loss" in losses


def test_take_rows_selects_images_in_every_kind_of_batch_value() -> None:
    from mobivision.data.records import GeoTarget

    geo = GeoTarget(torch.arange(8.0).view(4, 2), torch.arange(4).view(4, 1))
    picked = take_rows({"t": torch.arange(4), "l": ["a", "b", "c", "d"], "g": geo}, [1, 3])
    assert picked["t"].tolist() == [1, 3] and picked["l"] == ["b", "d"]
    assert isinstance(picked["g"], GeoTarget) and picked["g"].cells.flatten().tolist() == [1, 3]


def test_head_configuration_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"task.heads.a: unknown keys \['weight'\]"):
        _task(a={"kind": "detection", "data": "shapes", "weight": 1})
    with pytest.raises(ConfigError, match=r"task.heads.a: missing \['data'\]"):
        _task(a={"kind": "detection"})
    with pytest.raises(ConfigError, match="no data source 'birds'"):
        _task(a={"kind": "detection", "data": "birds"}, b={"kind": "detection", "data": "faces"})
    with pytest.raises(ConfigError, match="has no label set 'cells'"):
        _task(a={"kind": "detection", "data": "shapes", "labels": "cells"}, b={"kind": "detection", "data": "faces"})
    with pytest.raises(ConfigError, match=r"data.sources \['faces'\]: no head learns from them"):
        _task(a={"kind": "detection", "data": "shapes"})
    with pytest.raises(ConfigError, match="did you mean 'detection'"):
        _task(a={"kind": "detections", "data": "shapes"}, b={"kind": "detection", "data": "faces"})
    with pytest.raises(ConfigError, match=r"task.heads.a \(classification\) cannot be built from label set 'target'"):
        _task(a={"kind": "classification", "data": "shapes"}, b={"kind": "detection", "data": "faces"})
    with pytest.raises(ConfigError, match="loss_weight must be a number >= 0"):
        _task(a={"kind": "detection", "data": "shapes", "loss_weight": -1}, b={"kind": "detection", "data": "faces"})


def test_frozen_heads_and_backbone_are_out_of_the_optimizer_and_keep_batchnorm_statistics() -> None:
    task = MultiTask(
        heads={
            "a": {"kind": "detection", "data": "shapes", "freeze": True},
            "b": {"kind": "classification", "data": "faces", "lr_mult": 3.0},
        },
        label_sets={
            "shapes": {"target": {"class_names": SHAPES, "category_ids": [1, 2, 3]}},
            "faces": {"target": {"class_names": ["x", "y"]}},
        },
        freeze_backbone=True,
        backbone={"name": "mobilenet_v1", "width_mult": 0.25},
        optimizer={"name": "adamw", "lr": 1e-3},
        scheduler={"name": "constant"},
        data_meta=META,
    )
    task.setup("fit")
    groups = {g["name"]: g for g in task_parameter_groups(task)}
    assert set(groups) == {"b", "b_no_decay"}
    assert groups["b"]["lr"] == pytest.approx(3e-3)
    trained = {id(p) for g in groups.values() for p in g["params"]}
    assert trained == {id(p) for p in task.model.heads["b"].parameters()}
    task.train()
    task.on_train_batch_start(None, 0)  # Lightning's train() switched them back: they return to eval mode
    for module in (task.model.backbone, task.model.heads["a"]):
        assert all(not m.training for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d))
        assert not any(p.requires_grad for p in module.parameters())
    assert task.model.heads["b"].training


def task_parameter_groups(task: MultiTask) -> list[dict]:
    from mobivision.optim import parameter_groups

    return parameter_groups(task.optimizer_parts(), lr=1e-3, weight_decay=1e-4)


class _Fixed(Evaluator):
    """An evaluator whose rows are its metrics (for the combination test)."""

    def __init__(self, lower: frozenset[str] = frozenset()) -> None:
        super().__init__()
        self.lower_is_better = lower

    def update(self, predictions, batch) -> None:
        self.add("only", predictions)

    def _compute(self, rows):
        return dict(next(iter(rows.values())))


def test_the_score_is_the_declared_weighted_mean_of_the_heads_primary_metrics() -> None:
    parts = {"det": _Fixed(), "geo": _Fixed(frozenset({"median_km"})), "cls": _Fixed()}
    evaluator = MultiTaskEvaluator(
        parts, {"det": ("mAP", "max"), "geo": ("median_km", "min"), "cls": ("top1", "max")}, {"det": 2, "geo": 1}
    )
    parts["det"].update({"mAP": 0.4, "AP50": 0.6}, {})
    parts["geo"].update({"median_km": 100.0}, {})
    parts["cls"].update({"top1": 0.9}, {})
    metrics = evaluator.compute([evaluator.state()])
    assert metrics["det/mAP"] == 0.4 and metrics["det/AP50"] == 0.6 and metrics["cls/top1"] == 0.9
    assert metrics["score"] == pytest.approx((2 * 0.4 - 100.0) / 3)  # cls weighs 0; a min metric enters negated
    assert evaluator.lower_is_better == {"geo/median_km"}
    assert evaluator.summary_keys(metrics) == ["det/mAP", "geo/median_km", "cls/top1", "score"]
    assert "| det | mAP | 0.4000 | AP50 0.6000 |" in evaluator.table()


def test_head_evaluators_merge_every_process_like_a_single_tasks() -> None:
    """Two processes' states (a padded repeat of image b on the second): each image counted once per head."""
    names = ["x", "y"]
    evaluators = [
        MultiTaskEvaluator({"c": ClassificationEvaluator(names, keep_probabilities=False)}, {"c": ("top1", "max")}, {})
        for _ in range(2)
    ]
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    batches = [
        {"target": torch.tensor([0, 1]), "meta": {"path": ["a", "b"]}},
        {"target": torch.tensor([0, 1]), "meta": {"path": ["c", "b"]}},
    ]
    evaluators[0].parts["c"].update(logits[:2], batches[0])
    evaluators[1].parts["c"].update(logits[[2, 0]], batches[1])  # "b" again, with a wrong prediction
    metrics = evaluators[0].compute([e.state() for e in evaluators])
    assert metrics["c/top1"] == pytest.approx(1.0) and "score" not in metrics  # no head weighs in the score
    assert not math.isnan(metrics["c/loss"])
