"""``tools/benchmark.py training``: training images/s of our two COCO detectors, model only and end to end.

The detectors of ``configs/experiment/ssdlite320_mobilenet_v3_large_coco.yaml`` and ``ssd300_mobilenet_v1_coco.yaml``
(81 classes), beside torchvision's ``ssdlite320_mobilenet_v3_large`` (eager, the reference rate):

- model only: a synthetic batch already on the device (4 boxes per image), one SGD step (forward, SSD loss,
  backward, update) per call, median of ``--repeats`` after untimed warm-up steps (which also compile), for each
  variant: ``eager``, ``channels_last``, ``bf16`` (autocast), ``compile`` (``--compile-mode``; ``reduce-overhead``
  is CUDA graphs) and their combinations;
- end to end: the same step, on the same model, fed by ``DetectionDataModule``'s training loader over ``--images``
  real-size JPEGs (640x480) with ``--workers`` persistent workers, pinned memory on CUDA and copies with
  ``non_blocking``, the loader emitting floats or uint8 (``normalize_on_device``: normalised on the device by
  ``normalize_uint8``). One untimed epoch starts the workers, then ``--epochs`` timed epochs. The data-bound
  share is ``1 - end-to-end rate / model-only rate`` of the same model and variant.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich import box
from rich.console import Console
from rich.table import Table
from torch import nn

from mobivision import create_detector
from mobivision.commands.benchmark_coco import write_split
from mobivision.commands.benchmark_detector import build_detectors, detector_targets, detector_train_step
from mobivision.commands.benchmark_pipeline import RECIPES, Recipe, write_photo_jpegs
from mobivision.commands.cli import positive_int
from mobivision.data.transforms import normalization_table, normalize_uint8
from mobivision.tasks.runner import COMPILE_MODES
from mobivision.timing import median_seconds, time_steps

NUM_CLASSES = 81
WARMUP_STEPS = 3
VARIANTS = {  # name: (channels_last, bf16, compile)
    "eager": (False, False, False),
    "channels_last": (True, False, False),
    "bf16": (False, True, False),
    "compile": (False, False, True),
    "bf16+channels_last": (True, True, False),
    "bf16+channels_last+compile": (True, True, True),
}
MODELS = {"ssdlite320_mobilenet_v3_large": RECIPES[1], "ssd300_mobilenet_v1": RECIPES[0]}
REFERENCE = "torchvision ssdlite320_mobilenet_v3_large"
Batch = tuple[torch.Tensor, list[dict[str, torch.Tensor]]]
Step = Callable[[torch.Tensor, list[dict[str, torch.Tensor]]], None]


def variant_list(text: str) -> list[str]:
    """``--variants``: comma-separated names of ``VARIANTS``."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    return names


def add_training_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("training", help="training images/s of our COCO detectors: model only, end to end")
    default_device = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default_device, help=f"cpu or cuda (default {default_device})")
    parser.add_argument("--batch", type=positive_int, default=64, help="training batch size (default 64)")
    parser.add_argument("--variants", type=variant_list, default=list(VARIANTS), help="comma-separated (default all)")
    parser.add_argument("--compile-mode", choices=COMPILE_MODES, default="default", help="torch.compile mode")
    parser.add_argument("--repeats", type=positive_int, default=10, help="timed model-only steps (median)")
    parser.add_argument("--images", type=positive_int, default=512, help="real-size JPEGs for end to end")
    parser.add_argument("--workers", type=positive_int, default=8, help="DataLoader workers (default 8)")
    parser.add_argument("--epochs", type=positive_int, default=2, help="timed end-to-end epochs (default 2)")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads (default 1 on CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")


def synthetic_batch(batch: int, resolution: int, device: torch.device) -> Batch:
    """Random images and 4 boxes per image, as ``tools/benchmark.py detector`` trains on, with labels in 1..80."""

    targets = [
        {"boxes": t["boxes"].to(device), "labels": ((t["labels"] - 1) % (NUM_CLASSES - 1) + 1).to(device)}
        for t in detector_targets(batch)
    ]
    return torch.rand(batch, 3, resolution, resolution, device=device), targets


def train_step(model: nn.Module, variant: str, device: torch.device) -> Step:
    """One SGD step of our detector on (normalised images, targets) under the variant's memory format and dtype."""
    channels_last, bf16, _ = VARIANTS[variant]
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def step(images: torch.Tensor, targets: list[dict[str, torch.Tensor]]) -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model.loss(model(images.contiguous(memory_format=memory_format)), targets)["loss"]
        loss.backward()
        optimizer.step()

    return step


def build_model(name: str, variant: str, device: torch.device, compile_mode: str) -> nn.Module:
    """A fresh detector of the preset ``name`` in training mode, in the variant's memory format, compiled if asked."""
    channels_last, _, compiled = VARIANTS[variant]
    model = create_detector(name, num_classes=NUM_CLASSES).to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if compiled:
        model.compile(mode=compile_mode)
    return model


def reference_rate(batch: Batch, device: torch.device, repeats: int) -> float:
    """torchvision's SSDLite320-V3 in eager: training images/s on the same images (91 classes, its own transform)."""

    model = build_detectors()["torchvision_v3"].to(device).train()
    step = detector_train_step("torchvision_v3", model, batch[0])
    return len(batch[0]) / median_seconds(step, warmup=WARMUP_STEPS, repeats=repeats, device=device)


def model_only_rates(steps: dict[str, Step], batch: Batch, device: torch.device, repeats: int) -> dict[str, float]:
    """Images/s of each variant's step on one batch already on the device, interleaved."""
    calls = {variant: (lambda s=step: s(*batch)) for variant, step in steps.items()}
    seconds = time_steps(calls, warmup=WARMUP_STEPS, repeats=repeats, device=device).medians()
    return {variant: len(batch[0]) / value for variant, value in seconds.items()}


def write_jpeg_split(folder: Path, count: int, seed: int) -> Path:
    """A COCO annotation file of ``count`` real-size JPEGs under ``folder/train`` (images without a box dropped)."""
    rng = np.random.default_rng(seed)
    annotation_file = write_split(folder, "train", count + count // 10 + 5, 7.3, rng)
    kept = set(write_photo_jpegs(annotation_file, folder / "train", count, rng))
    data = json.loads(annotation_file.read_text())
    data["images"] = [image for image in data["images"] if image["id"] in kept]
    data["annotations"] = [ann for ann in data["annotations"] if ann["image_id"] in kept]
    annotation_file.write_text(json.dumps(data))
    return annotation_file


def train_loader(
    recipe: Recipe, annotation_file: Path, *, batch: int, workers: int, pin_memory: bool, normalize_on_device: bool
) -> Iterable[dict[str, Any]]:
    """``DetectionDataModule``'s training loader for the recipe over the split (persistent workers)."""
    from mobivision.tasks.detection_data import DetectionDataModule

    mean, std = recipe.mean_std
    datamodule = DetectionDataModule(
        root=str(annotation_file.parent),
        splits={"train": {"annotations": annotation_file.name, "images": "train"}},
        recipe=recipe.name,
        resolution=recipe.resolution,
        batch_size=batch,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=True,
        mean=list(mean),
        std=list(std),
        normalize_on_device=normalize_on_device,
    )
    datamodule.setup("fit")
    return datamodule.train_dataloader()


def device_batch(batch: dict[str, Any], device: torch.device, table: torch.Tensor) -> Batch:
    """A loader batch copied with ``non_blocking`` and, if uint8, normalised on the device."""
    images = batch["image"].to(device, non_blocking=True)
    if images.dtype == torch.uint8:
        images = normalize_uint8(images, table)
    targets = [{k: t[k].to(device, non_blocking=True) for k in ("boxes", "labels")} for t in batch["target"]]
    return images, targets


def end_to_end_rate(
    step: Step, loader: Iterable[dict[str, Any]], table: torch.Tensor, device: torch.device, epochs: int
) -> float:
    """Images/s over ``epochs`` timed epochs after an untimed one that starts the persistent workers."""
    images: list[int] = []  # per epoch, the untimed one first

    def epoch() -> None:
        images.append(0)
        for batch in loader:
            step(*device_batch(batch, device, table))
            images[-1] += len(batch["image"])

    timings = time_steps({"epoch": epoch}, warmup=1, repeats=epochs, device=device)
    return sum(images[1:]) / sum(timings.samples["epoch"])


def measure_model(name: str, args: argparse.Namespace, device: torch.device, annotation_file: Path) -> list[dict]:
    """Model-only and end-to-end rows of one detector, every variant."""
    recipe = MODELS[name]
    steps = {v: train_step(build_model(name, v, device, args.compile_mode), v, device) for v in args.variants}
    model_only = model_only_rates(steps, synthetic_batch(args.batch, recipe.resolution, device), device, args.repeats)
    rows = [{"model": name, "variant": v, "loader": "-", "images_per_s": rate} for v, rate in model_only.items()]
    table = normalization_table(*recipe.mean_std).to(device)
    for loader_dtype in ("float32", "uint8"):
        loader = train_loader(
            recipe,
            annotation_file,
            batch=args.batch,
            workers=args.workers,
            pin_memory=device.type == "cuda",
            normalize_on_device=loader_dtype == "uint8",
        )
        for variant, step in steps.items():
            rate = end_to_end_rate(step, loader, table, device, args.epochs)
            rows.append({
                "model": name, "variant": variant, "loader": loader_dtype, "images_per_s": rate,
                "data_bound_share": 1 - rate / model_only[variant],
            })  # fmt: skip
    return rows


def run_training(args: argparse.Namespace) -> dict[str, Any]:
    """Reference rate, then each detector's rows; rates relative to the reference."""
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads or 1)
    torch.manual_seed(args.seed)
    reference = reference_rate(synthetic_batch(args.batch, 320, device), device, args.repeats)
    with tempfile.TemporaryDirectory(prefix="mobivision-training-") as folder:
        annotation_file = write_jpeg_split(Path(folder), args.images, args.seed)
        rows = [row for name in MODELS for row in measure_model(name, args, device, annotation_file)]
    for row in rows:
        row["vs_reference"] = row["images_per_s"] / reference
    return {
        "config": {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "batch": args.batch,
            "repeats": args.repeats,
            "images": args.images,
            "workers": args.workers,
            "epochs": args.epochs,
            "compile_mode": args.compile_mode,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
        },
        "reference": {"model": REFERENCE, "variant": "eager", "images_per_s": reference},
        "results": rows,
    }


def print_training_report(report: dict[str, Any]) -> None:
    config = report["config"]
    table = Table(
        title=f"Training images/s on {config['device']}, batch {config['batch']}: model only (median of "
        f"{config['repeats']}) and end to end ({config['images']} JPEGs 640x480, {config['workers']} workers, "
        f"{config['epochs']} epochs), {config['threads']} threads, compile mode {config['compile_mode']}",
        box=box.SIMPLE_HEAD,
    )
    for column in ("model", "variant", "loader", "images/s", "vs reference", "data-bound"):
        table.add_column(column, justify="right" if column in ("images/s", "vs reference", "data-bound") else "left")
    reference = report["reference"]
    table.add_row(reference["model"], "eager", "-", f"{reference['images_per_s']:.1f}", "1.000", "-")
    for row in report["results"]:
        share = row.get("data_bound_share")
        table.add_row(
            row["model"],
            row["variant"],
            row["loader"],
            f"{row['images_per_s']:.1f}",
            f"{row['vs_reference']:.3f}",
            "-" if share is None else f"{100 * share:.1f}%",
        )
    Console(width=max(Console().width, 150)).print(table)
    print("loader '-': model only, batch already on the device; float32 / uint8: end to end, the loader emitting "
          "normalised floats or uint8 normalised on the device; data-bound = 1 - end to end / model only")  # fmt: skip
