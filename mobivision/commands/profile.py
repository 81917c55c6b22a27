"""Profile the 16 TF-Slim MobileNetV1 width x resolution pairs against the published table.

The accuracy/cost trade-off of the MobileNets paper (arXiv 1704.04861, Sec. 4.2, Tables 6-7 and Fig. 4-5):
for each width multiplier (1.0, 0.75, 0.5, 0.25) and resolution (224, 192, 160, 128) this counts our
1001-class ``mobilenet_v1``'s multiply-adds and parameters, times batch-1 CPU inference, and prints them
next to TF-Slim's published figures and top-1. The logic is in ``mobivision.tfslim_table``.

Examples::

    python tools/profile_model.py                         # table with latency
    python tools/profile_model.py --no-latency --json     # machine-readable, no timing
    python tools/profile_model.py --plot chart.png        # MACs vs latency and vs top-1
    python tools/profile_model.py --budget-ms 10          # which pairs run in 10 ms, best top-1 first
    python tools/profile_model.py --budget-ms 10 --runtime fastest   # ... in the fastest installed runtime
    python tools/profile_model.py --detectors             # SSD/SSDLite presets beside their published size

Latency is the median batch-1 CPU time, by default in PyTorch eager. ``--runtime onnxruntime`` / ``openvino``
exports each of the 16 models to a temporary ONNX file and times it there (OpenVINO: f32 arithmetic);
``fastest`` is OpenVINO where it is installed, else ONNX Runtime. ``--threads`` sets the runtime's intra-op
threads too. The table title and each JSON row (``latency_runtime``) name the runtime that timed it.

``--detectors`` profiles every ``list_detectors()`` preset with 91 classes (COCO with TF's label map) at
its resolution, beside the published figures: the paper's SSD300-MobileNet (Table 13: 1.2 B mult-adds,
6.8 M parameters) and torchvision's SSDLite320-MobileNetV3-Large (0.583 G mult-adds, 3.44 M parameters).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from mobivision.commands.cli import positive_float, positive_int
from mobivision.profiling import LATENCY_RUNTIMES


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-latency", action="store_true", help="skip the CPU latency measurement")
    parser.add_argument("--threads", type=positive_int, help="torch and runtime CPU threads (default: theirs)")
    parser.add_argument(
        "--runtime",
        choices=(*LATENCY_RUNTIMES, "fastest"),
        default="torch",
        help="what times the models: torch eager (default), onnxruntime or openvino on an exported ONNX file, "
        "or fastest (openvino if installed, else onnxruntime)",
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="draw MACs vs latency and vs top-1 to PNG")
    parser.add_argument("--budget-ms", type=positive_float, metavar="MS", help="list pairs within this latency")
    parser.add_argument("--budget-mparams", type=positive_float, metavar="M", help="list pairs within M params")
    parser.add_argument("--detectors", action="store_true", help="profile the detector presets instead")
    return parser


# Published (multiply-adds in millions, parameters in millions) of the detectors we can compare.
PUBLISHED_DETECTORS = {
    "ssd300_mobilenet_v1": (1200.0, 6.8, "MobileNets paper, Table 13"),
    "ssdlite320_mobilenet_v3_large": (583.0, 3.44, "torchvision model card"),
}


def detector_rows() -> list[dict[str, Any]]:
    """MACs and parameters of each detector preset (91 classes) beside the published figures."""
    from mobivision import create_detector, detector_preset, list_detectors, profile

    rows = []
    for name in list_detectors():
        preset = detector_preset(name)
        model = create_detector(preset["head"], backbone=preset["backbone"], num_classes=91)
        cost = profile(model, preset["resolution"])
        mmacs, mparams, source = PUBLISHED_DETECTORS.get(name, (None, None, ""))
        rows.append(
            {
                "name": name,
                "resolution": preset["resolution"],
                "mmacs": cost.mmacs,
                "mparams": cost.mparams,
                "published_mmacs": mmacs,
                "published_mparams": mparams,
                "source": source,
            }
        )
    return rows


def print_detector_table(rows: list[dict[str, Any]]) -> None:
    table = Table(title="Detectors, 91 classes (MACs counted by PyTorch's FLOP counter)", box=box.SIMPLE_HEAD)
    for column in ("model", "input", "MACs (M)", "params (M)", "published MACs", "published params", "source"):
        table.add_column(column, justify="left" if column in ("model", "source") else "right")
    for row in rows:
        table.add_row(
            row["name"],
            str(row["resolution"]),
            f"{row['mmacs']:.0f}",
            f"{row['mparams']:.3f}",
            "-" if row["published_mmacs"] is None else f"{row['published_mmacs']:g}",
            "-" if row["published_mparams"] is None else f"{row['published_mparams']:g}",
            row["source"],
        )
    Console(width=max(Console().width, 130)).print(table)


def _pct(value: float) -> str:
    return f"{value:+.2f}%"


def print_table(rows: list[dict[str, Any]], *, title: str) -> None:
    """A rich table of the rows; notes are numbered and printed under it to keep the table narrow."""
    table = Table(
        title=title,
        caption="params diff: vs the exact 1001-class counts (TF-Slim's table rounds them)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
    )
    table.add_column("model", no_wrap=True)
    headers = ("MACs\n(M)", "params\n(M)", "CPU\nms", "TF-Slim\nMACs", "MACs\ndiff", "TF-Slim\nparams")
    for header in (*headers, "params\ndiff", "top-1", "note"):
        table.add_column(header, justify="right", no_wrap=True)
    notes = list(dict.fromkeys(row["note"] for row in rows if row["note"]))
    for row in rows:
        table.add_row(
            row["name"],
            f"{row['mmacs']:.2f}",
            f"{row['mparams']:.3f}",
            "-" if row["latency_ms"] is None else f"{row['latency_ms']:.1f}",
            f"{row['tfslim_mmacs']:g}",
            _pct(row["tfslim_macs_diff_pct"]),
            f"{row['tfslim_mparams']:g}",
            _pct(row["params_reference_diff_pct"]),
            f"{row['top1']:.1f}",
            f"[{notes.index(row['note']) + 1}]" if row["note"] else "",
        )
    console = Console()
    console.print(table)
    for number, note in enumerate(notes, start=1):
        console.print(f"\\[{number}] {note}", highlight=False)
    if not rows:
        console.print("No pair fits the budget.")


MACS_TICKS = (10, 20, 50, 100, 200, 500)


def plot_chart(rows: list[dict[str, Any]], path: Path) -> None:
    """MACs (log x) vs latency and vs TF-Slim top-1, one colour per width; bubble area follows parameters.

    Without measured latency only the top-1 panel is drawn.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    panels = [("latency_ms", "batch-1 CPU latency (ms)")] if rows[0]["latency_ms"] is not None else []
    panels.append(("top1", "TF-Slim ImageNet top-1 (%)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 5), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        for width in dict.fromkeys(row["width"] for row in rows):
            group = [row for row in rows if row["width"] == width]
            ax.scatter(
                [row["mmacs"] for row in group],
                [row[key] for row in group],
                s=[150 * row["mparams"] for row in group],
                alpha=0.6,
                label=f"width {width}",
            )
        for row in rows:
            ax.annotate(row["name"], (row["mmacs"], row[key]), fontsize=7, xytext=(5, 5), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xticks(MACS_TICKS, [str(tick) for tick in MACS_TICKS])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("multiply-adds (M, log scale)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper left", fontsize=8, markerscale=0.5)
    fig.suptitle("MobileNetV1 width x resolution (bubble area = parameters)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def resolve_runtime(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The runtime that times the models: ``fastest`` resolved, an unusable choice a usage error."""
    if args.runtime == "torch":
        return "torch"
    if args.no_latency:
        parser.error(f"--runtime {args.runtime} times the models; drop --no-latency")
    from mobivision.export import openvino_ir

    if args.runtime == "fastest":
        return "openvino" if openvino_ir.available() else "onnxruntime"
    if args.runtime == "openvino" and not openvino_ir.available():
        parser.error(f"--runtime openvino needs OpenVINO: {openvino_ir.INSTALL}")
    return args.runtime


def _timing(runtime: str, args: argparse.Namespace) -> str:
    """What the table's CPU ms column is, for its title."""
    if args.no_latency:
        return ""
    threads = "default threads" if args.threads is None else f"{args.threads} thread{'s' * (args.threads > 1)}"
    where = "PyTorch eager" if runtime == "torch" else f"{runtime} f32 on an exported ONNX file"
    return f"; CPU ms: batch 1, {where}, {threads}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.no_latency and args.budget_ms is not None:
        parser.error("--budget-ms needs latency; drop --no-latency")
    runtime = resolve_runtime(parser, args)
    if args.plot is not None and not args.plot.parent.is_dir():
        parser.error(f"--plot: folder {args.plot.parent} does not exist")
    if args.detectors:
        rows = detector_rows()
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print_detector_table(rows)
        return 0
    from mobivision.tfslim_table import fit_budget, profile_rows  # after parsing: argument errors are immediate

    rows = profile_rows(latency=not args.no_latency, threads=args.threads, runtime=runtime)
    if args.plot is not None:
        plot_chart(rows, args.plot)
    budget = args.budget_ms is not None or args.budget_mparams is not None
    if budget:
        rows = fit_budget(rows, max_latency_ms=args.budget_ms, max_mparams=args.budget_mparams)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        title = "Pairs within budget, best expected top-1 first" if budget else "MobileNetV1 vs TF-Slim table"
        print_table(rows, title=title + _timing(runtime, args))
    return 0
