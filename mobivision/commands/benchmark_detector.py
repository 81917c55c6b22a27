"""``tools/benchmark.py detector``: SSDLite320 on MobileNetV1 and V3 (ours) against torchvision's SSDLite320-V3
with the same weights: latency at batch 1 with its post-processing share, and training images/s, interleaved
(``mobivision.timing.time_steps``).

``build_detectors`` and ``detector_train_step`` also serve ``benchmark training`` (its reference row).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import torch
from rich import box
from rich.console import Console
from rich.table import Table
from torch import nn

from mobivision.commands.cli import positive_int
from mobivision.profiling import count_parameters
from mobivision.timing import time_steps

INFERENCE_WARMUP, TRAIN_WARMUP = 3, 3


def add_detector_parser(commands: argparse._SubParsersAction) -> None:
    detector = commands.add_parser("detector", help="SSDLite320 V1/V3 vs torchvision's: latency, training images/s")
    detector.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's)")
    detector.add_argument("--repeats", type=positive_int, default=10, help="timed repeats per model (median)")
    detector.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    detector.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    detector.add_argument("--train-batch", type=positive_int, default=8, help="training batch size (default 8)")
    detector.add_argument("--bf16", action="store_true", help="bfloat16 autocast (GPU)")
    detector.add_argument("--channels-last", action="store_true", help="NHWC memory format for models and inputs")


DETECTOR_RESOLUTION = 320


def build_detectors() -> dict[str, nn.Module]:
    """torchvision's SSDLite320-V3 (random weights), ours on V3 with the same weights, ours on V1."""
    from torchvision.models.detection import ssdlite320_mobilenet_v3_large

    from mobivision import create_detector
    from mobivision.detection.torchvision_ssdlite import load_torchvision_ssdlite

    torchvision_model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=91)
    ours_v3 = create_detector("ssdlite", backbone="mobilenet_v3_large", num_classes=91)
    load_torchvision_ssdlite(ours_v3, torchvision_model.state_dict())
    ours_v1 = create_detector("ssdlite", backbone="mobilenet_v1", num_classes=91)
    return {"ours_v1": ours_v1, "ours_v3": ours_v3, "torchvision_v3": torchvision_model}


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - 0.5) / 0.5


def under_autocast(step: Callable[[], None], device: torch.device, bf16: bool) -> Callable[[], None]:
    """``step`` under bf16 autocast if asked."""

    def run() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            step()

    return run


def _detector_inference(name: str, model: nn.Module, x: torch.Tensor) -> tuple[Callable[[], None], Callable[[], None]]:
    """End-to-end step and post-processing-only step of one detector on images ``x`` in [0, 1]."""
    size = tuple(x.shape[-2:])
    with torch.inference_mode():
        if name == "torchvision_v3":
            from torchvision.models.detection.image_list import ImageList

            features = list(model.backbone(_normalise(x)).values())
            head = model.head(features)
            anchors = model.anchor_generator(ImageList(x, [size] * len(x)), features)

            def full() -> None:
                with torch.inference_mode():
                    model(list(x))

            def post() -> None:
                with torch.inference_mode():
                    model.postprocess_detections(head, anchors, [size] * len(x))

            return full, post
        outputs = model(_normalise(x))

    def full_ours() -> None:
        with torch.inference_mode():
            model.predict(model(_normalise(x)), size)

    def post_ours() -> None:
        with torch.inference_mode():
            model.predict(outputs, size)

    return full_ours, post_ours


def detector_targets(batch: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    targets = []
    for _ in range(batch):
        xy = torch.rand(4, 2, generator=generator) * 200
        wh = torch.rand(4, 2, generator=generator) * 100 + 20
        boxes = torch.cat([xy, xy + wh], dim=1)
        targets.append({"boxes": boxes, "labels": torch.randint(1, 91, (4,), generator=generator)})
    return targets


def _to(targets: list[dict[str, torch.Tensor]], device: torch.device) -> list[dict[str, torch.Tensor]]:
    return [{k: v.to(device) for k, v in t.items()} for t in targets]


def detector_train_step(name: str, model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    targets = _to(detector_targets(len(x)), x.device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        if name == "torchvision_v3":
            losses = model(list(x), targets)
            loss = losses["bbox_regression"] + losses["classification"]
        else:
            loss = model.loss(model(_normalise(x)), targets)["loss"]
        loss.backward()
        optimizer.step()

    return step


def run_detector(args: argparse.Namespace) -> dict[str, Any]:
    """Latency, post-processing share and training images/s of the three detectors, interleaved."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    models = {name: m.to(device, memory_format=memory_format).eval() for name, m in build_detectors().items()}
    x = torch.rand(1, 3, DETECTOR_RESOLUTION, DETECTOR_RESOLUTION, device=device)
    x = x.contiguous(memory_format=memory_format)
    full, post = {}, {}
    for name, model in models.items():
        full[name], post[name] = (under_autocast(s, device, args.bf16) for s in _detector_inference(name, model, x))
    latency = time_steps(full, warmup=INFERENCE_WARMUP, repeats=args.repeats, device=device).medians()
    postprocess = time_steps(post, warmup=INFERENCE_WARMUP, repeats=args.repeats, device=device).medians()
    for model in models.values():
        model.train()
    batch = torch.rand(args.train_batch, 3, DETECTOR_RESOLUTION, DETECTOR_RESOLUTION, device=device)
    batch = batch.contiguous(memory_format=memory_format)
    train = {name: under_autocast(detector_train_step(name, m, batch), device, args.bf16) for name, m in models.items()}
    train_seconds = time_steps(train, warmup=TRAIN_WARMUP, repeats=args.repeats, device=device).medians()
    rows = [
        {
            "model": name,
            "params": count_parameters(model),
            "latency_ms": 1e3 * latency[name],
            "postprocess_share": postprocess[name] / latency[name],
            "train_images_per_s": args.train_batch / train_seconds[name],
            "latency_vs_torchvision": latency[name] / latency["torchvision_v3"],
        }
        for name, model in models.items()
    ]
    return {
        "config": {
            "threads": torch.get_num_threads(),
            "repeats": args.repeats,
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "train_batch": args.train_batch,
            "bf16": args.bf16,
            "channels_last": args.channels_last,
        },
        "results": rows,
    }


def print_detector_report(report: dict[str, Any]) -> None:
    config = report["config"]
    table = Table(
        title=f"SSDLite320 @ {DETECTOR_RESOLUTION} on {config['device']}: latency batch 1, training batch "
        f"{config['train_batch']}, {config['threads']} threads, median of {config['repeats']}"
        f"{', bf16' if config['bf16'] else ''}{', channels_last' if config['channels_last'] else ''}",
        box=box.SIMPLE_HEAD,
    )
    for column in ("model", "params", "latency ms", "vs torchvision", "post-processing", "train images/s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in report["results"]:
        table.add_row(
            row["model"],
            f"{row['params'] / 1e6:.2f} M",
            f"{row['latency_ms']:.1f}",
            f"{row['latency_vs_torchvision']:.3f}",
            f"{100 * row['postprocess_share']:.1f}%",
            f"{row['train_images_per_s']:.1f}",
        )
    Console(width=max(Console().width, 130)).print(table)
