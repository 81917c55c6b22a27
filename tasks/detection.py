"""Object detection task: SSD / SSDLite on MobileNet (MobileNets paper Sec. 4.7; SSD; MobileNetV2 Sec. 6.3).

Training minimises the SSD loss; validation and test decode detections, map them back to original
image pixels and COCO category ids, and score them with pycocotools' COCOeval on exactly the images of
the split. Under several processes the detections are gathered, de-duplicated (DistributedSampler pads
the last batch by repeating images) and evaluated once, on rank 0; the metrics are then broadcast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from mobivision import create_detector
from mobivision.data.records import load_rgb
from mobivision.evaluation import coco_evaluate, format_per_class_table, merge_detections
from mobivision.visualize import draw_detections, image_grid
from tasks.base import TaskModule


def to_coco_results(
    detections: list[dict[str, torch.Tensor]], meta: list[dict[str, Any]], category_ids: list[int]
) -> list[dict[str, Any]]:
    """Detections in input pixels -> COCO result dicts in original image pixels (``[x, y, w, h]``).

    The evaluation transform is a plain resize, so boxes scale back by original size / input size.
    """
    results = []
    for detection, info in zip(detections, meta, strict=True):
        (orig_h, orig_w), (in_h, in_w) = info["size"], info["input_size"]
        scale = torch.tensor([orig_w / in_w, orig_h / in_h, orig_w / in_w, orig_h / in_h])
        boxes = detection["boxes"].float().cpu() * scale
        boxes[:, 2:] -= boxes[:, :2]
        for box, score, label in zip(
            boxes.tolist(), detection["scores"].tolist(), detection["labels"].tolist(), strict=True
        ):
            results.append(
                {
                    "image_id": info["image_id"],
                    "category_id": category_ids[label - 1],
                    "bbox": [round(v, 2) for v in box],
                    "score": round(score, 5),
                }
            )
    return results


class DetectionTask(TaskModule):
    """SSD-family detector; logs ``train/loss`` (+ ``loss_cls``, ``loss_box``) and ``val/mAP``, ``val/AP50``...

    Args:
        class_names: Foreground class names; contiguous label ``i + 1`` is ``class_names[i]`` (0 = background).
        category_ids: Dataset category id of each class (COCO's ids have gaps); kept in the checkpoint.
        head: ``ssd`` or ``ssdlite``.
        detector: Further ``create_detector`` options (``extra_depths``, ``anchors``, ``loss``, ``postprocess``).
        **See ``TaskModule`` for the shared arguments.**
    """

    def __init__(
        self,
        *,
        class_names: list[str],
        category_ids: list[int],
        head: str = "ssdlite",
        detector: dict[str, Any] | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.save_hyperparameters()
        self.class_names = list(class_names)
        self.category_ids = [int(c) for c in category_ids]
        options = dict(self.backbone_cfg)
        name = options.pop("name")
        resolution = int(self.data_meta.get("resolution", 320))
        self.model = create_detector(
            head,
            backbone=name,
            num_classes=len(self.class_names) + 1,
            resolution=resolution,
            **options,
            **dict(detector or {}),
        )
        self.model.pretrained_cfg.update(classes=self.class_names, category_ids=self.category_ids)
        self.example_input_array = torch.zeros(1, 3, resolution, resolution)
        self._results: list[dict[str, Any]] = []
        self.last_evaluation: dict[str, Any] = {}

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model(images)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        losses = self.model.loss(self(batch["image"]), batch["target"])
        size = len(batch["target"])
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=size)
        self.log_dict({f"train/{k}": losses[k] for k in ("loss_cls", "loss_box")}, batch_size=size)
        return losses["loss"]

    def detect(self, images: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Detections per image in input pixels (boxes, scores, 1-based labels)."""
        return self.model.predict(self(images), tuple(images.shape[-2:]))

    def _eval_step(self, batch: dict[str, Any], stage: str) -> list[dict[str, torch.Tensor]]:
        outputs = self(batch["image"])
        loss = self.model.loss(outputs, batch["target"])["loss"]
        self.log(f"{stage}/loss", loss, batch_size=len(batch["target"]), sync_dist=True)
        detections = self.model.predict(outputs, tuple(batch["image"].shape[-2:]))
        self._results += to_coco_results(detections, batch["meta"], self.category_ids)
        return detections

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, torch.Tensor]]:
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> list[dict[str, torch.Tensor]]:
        return self._eval_step(batch, "test")

    def on_validation_epoch_start(self) -> None:
        self._results = []

    on_test_epoch_start = on_validation_epoch_start

    def on_validation_epoch_end(self) -> None:
        self._evaluate("val", self.trainer.val_dataloaders)

    def on_test_epoch_end(self) -> None:
        self._evaluate("test", self.trainer.test_dataloaders)

    def _evaluate(self, stage: str, loader: Any) -> None:
        """Gather detections from all processes, evaluate once on rank 0, log the broadcast metrics."""
        if self.trainer.sanity_checking:
            return
        dataset = loader.dataset
        chunks = self.gather_from_processes(self._results)
        metrics: dict[str, Any] = {}
        if self.trainer.is_global_zero:
            results = merge_detections(chunks)
            metrics = coco_evaluate(dataset.coco_gt, results, image_ids=dataset.image_ids, per_class=stage == "test")
            paths = dict(zip(dataset.image_ids, (str(r.path) for r in dataset.records), strict=True))
            self.last_evaluation = {"stage": stage, "results": results, "metrics": metrics, "paths": paths}
        metrics = self.trainer.strategy.broadcast(metrics)
        names = {"AP": "mAP"}
        self.log_dict(
            {f"{stage}/{names.get(k, k)}": float(v) for k, v in metrics.items() if k != "per_class"},
            prog_bar=stage == "val",
            sync_dist=True,  # the broadcast values are equal on every rank; this only tells Lightning so
        )
        self._results = []

    def write_evaluation(self, output_dir: Path, split: str, *, picture_images: int = 8) -> list[Path]:
        """After a test run: ``results_<split>.json`` (COCO results), ``per_class_<split>.md`` and a picture
        ``predictions_<split>.jpg`` of the first images with their detections (score >= 0.3)."""
        if not self.last_evaluation:
            return []
        output_dir = Path(output_dir)
        results = self.last_evaluation["results"]
        written = [output_dir / f"results_{split}.json", output_dir / f"per_class_{split}.md"]
        written[0].write_text(json.dumps(results) + "\n")
        written[1].write_text(format_per_class_table(self.last_evaluation["metrics"]["per_class"]) + "\n")
        paths = self.last_evaluation["paths"]
        if paths:
            names = {c: n for c, n in zip(self.category_ids, self.class_names, strict=True)}
            pictures = []
            for image_id, path in list(paths.items())[:picture_images]:
                shown = [
                    {**r, "category_name": names[r["category_id"]]}
                    for r in results
                    if r["image_id"] == image_id and r["score"] >= 0.3
                ]
                pictures.append(draw_detections(load_rgb(Path(path)), shown, self.class_names))
            written.append(output_dir / f"predictions_{split}.jpg")
            image_grid(pictures).save(written[-1], quality=92)
        return written

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        return {"detections": self.detect(batch["image"]), "meta": batch["meta"]}
