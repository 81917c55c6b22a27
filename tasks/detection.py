"""Object detection task: SSD / SSDLite on MobileNet (MobileNets paper Sec. 4.7; SSD; MobileNetV2 Sec. 6.3).

Training minimises the SSD loss; validation and test decode detections, map them back to original image pixels
and COCO category ids, and score them with pycocotools' COCOeval on exactly the images of the split
(``mobivision.evaluation.coco.CocoEvaluator``: under several processes the detections are gathered, each image
kept once, evaluated on rank 0 and the metrics broadcast).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, ClassVar

import torch

from mobivision import create_detector
from mobivision.evaluation.coco import CocoEvaluator, check_engine
from mobivision.evaluation.evaluator import Evaluator
from mobivision.export import SSDRawOutputs, SSDWithNMS, compare_detections
from mobivision.export.graphs import ExportGraph
from mobivision.factory import detector_taps
from mobivision.tasks.base import LabelNeeds, PrimaryMetric, TaskModule, describe_value


class DetectionTask(TaskModule):
    """SSD-family detector; logs ``train/loss`` (+ ``loss_cls``, ``loss_box``) and ``val/mAP``, ``val/AP50``...

    Args:
        class_names: Foreground class names; contiguous label ``i + 1`` is ``class_names[i]`` (0 = background).
        category_ids: Dataset category id of each class (COCO's ids have gaps); kept in the checkpoint.
        head: ``ssd`` or ``ssdlite``.
        detector: Further ``create_detector`` options (``extra_depths``, ``anchors``, ``loss``, ``postprocess``).
        coco_engine: The COCOeval implementation of validation and test: ``faster_coco_eval`` (C++, default) or
            ``pycocotools`` (the reference; same numbers).
        **See ``TaskModule`` for the shared arguments.**
    """

    kind: ClassVar[str] = "detection"
    decoder: ClassVar[str] = "mobivision.inference.decode:decode_detection"
    primary_metric: ClassVar[PrimaryMetric] = PrimaryMetric("mAP", "max")
    default_resolution: ClassVar[int] = 320
    label_kind: ClassVar[str] = "detection"
    # one class is enough: a detector tells objects from background
    label_needs: ClassVar[LabelNeeds] = LabelNeeds(1, "class", "classes", "a detector")

    @classmethod
    def backbone_taps(cls, arch: str) -> tuple[str, ...]:
        return detector_taps(arch)

    def __init__(
        self,
        *,
        class_names: list[str],
        category_ids: list[int],
        head: str = "ssdlite",
        detector: dict[str, Any] | None = None,
        coco_engine: str = "faster_coco_eval",
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.save_hyperparameters()
        check_engine(coco_engine)
        self.coco_engine = coco_engine
        self.class_names = list(class_names)
        self.category_ids = [int(c) for c in category_ids]
        options = dict(self.backbone_cfg)
        name = options.pop("name")
        self.model = create_detector(
            head,
            backbone=name,
            num_classes=len(self.class_names) + 1,
            resolution=self.input_size[0],
            **options,
            **dict(detector or {}),
        )
        self.model.pretrained_cfg.update(classes=self.class_names, category_ids=self.category_ids)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model(images)

    def loss(self, outputs: dict[str, torch.Tensor], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        losses = self.model.loss(outputs, batch["target"])
        return {k: losses[k] for k in ("loss", "loss_cls", "loss_box")}

    def detect(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Detections per image in input pixels (boxes, scores, 1-based labels)."""
        return self.model.predict(self(images), tuple(images.shape[-2:]))

    def graph_outputs_from(self, outputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        return tuple(outputs[name] for name in SSDRawOutputs.output_names)

    def evaluate_outputs(
        self, evaluator: Evaluator, outputs: dict[str, torch.Tensor], batch: dict[str, Any]
    ) -> dict[str, torch.Tensor]:
        """Detections into the evaluator; the loss is logged."""
        self.update_evaluator(evaluator, self.graph_outputs_from(outputs), batch)
        return {"loss": self.model.loss(outputs, batch["target"])["loss"]}

    # --- protocol ------------------------------------------------------------------------------------------

    def make_evaluator(self, dataset: Any, stage: str) -> CocoEvaluator:
        """COCOeval against the split's annotation file; the per-class table on test."""
        return CocoEvaluator(
            dataset.annotation_file,
            category_ids=self.category_ids,
            class_names=self.class_names,
            per_class=stage == "test",
            engine=self.coco_engine,
        )

    def update_evaluator(self, evaluator: Evaluator, outputs: Sequence[torch.Tensor], batch: dict[str, Any]) -> None:
        """``outputs``: the raw graph's ``cls_logits``, ``bbox_regression``, ``anchors``."""
        raw = dict(zip(SSDRawOutputs.output_names, outputs, strict=True))
        evaluator.update(self.model.predict(raw, tuple(batch["image"].shape[-2:])), batch)

    def export_graphs(self) -> dict[str, ExportGraph]:
        """The raw outputs (decoding left to the runtime) and the graph with decoding and NMS inside."""
        score = "sigmoid" if self.model.loss_options.classification == "focal" else "softmax"
        raw = {
            "cls_logits": f"[B, A, C] class logits per anchor, C = background + classes (score: {score}, drop "
            "column 0)",
            "bbox_regression": "[B, A, 4] box offsets (dx, dy, dw, dh) relative to the anchors, scaled by "
            "box_coder_weights (Faster R-CNN coder)",
            "anchors": "[A, 4] anchors xyxy in input pixels (constant of the export resolution)",
        }
        nms = {
            "boxes": "[B, K, 4] xyxy in input pixels, best first; rows past num_detections are zero",
            "scores": "[B, K] scores",
            "labels": "[B, K] int64 1-based labels (class_names[label - 1]); 0 past num_detections",
            "num_detections": "[B] int64 detections per image",
        }
        return {
            "model": ExportGraph(SSDRawOutputs(self.model), list(SSDRawOutputs.output_names), raw),
            "nms": ExportGraph(
                SSDWithNMS(self.model, self.input_size), list(SSDWithNMS.output_names), nms, compare_detections
            ),
        }

    def export_metadata(self) -> dict[str, Any]:
        model = self.model
        return {
            "class_names": self.class_names,
            "category_ids": self.category_ids,
            "box_coder_weights": list(model.loss_options.box_coder_weights),
            "score_function": "sigmoid" if model.loss_options.classification == "focal" else "softmax",
            "postprocess": asdict(model.postprocess_options),
            "boxes": "xyxy in input pixels; scale x by original width / input width, y likewise",
        }

    @property
    def crop_pct(self) -> None:
        """Detectors see the whole image resized: no crop."""
        return None

    def describe_target(self, target: Any) -> str:
        boxes = sum(len(t.get("boxes", [])) for t in target)
        return (
            f"{len(target)} images, {boxes} boxes ({', '.join(sorted(target[0]))})"
            if target
            else describe_value(target)
        )
