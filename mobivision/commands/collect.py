"""Tabulate a sweep: one row per trained run, its cost and its main metric, and the paper's trade-off chart.

A run folder is any folder under the sweep with ``summary.json`` and ``config.yaml`` (what
``mobivision.tasks.runner.train`` writes); folders that look like runs (``config.yaml`` or Hydra's ``.hydra/``) but
have no ``summary.json`` failed or are still running and are reported as skipped. For each run:

- width multiplier, resolution and backbone name come from its resolved ``config.yaml``;
- multiply-adds and parameters are counted on the trained task's network (``task.model``, loaded from the best
  checkpoint) at the run's resolution with ``mobivision.profiling``, and batch-1 CPU latency is the median of
  ``latency_repeats`` timed forward passes. Every task's network takes one ``1 x 3 x H x W`` image: the
  classifier, the attribute and geo-cell heads, and the detector (box and class outputs before decoding);
- the metric (default: the run's monitored ``monitor.metric``) is read from the run's metrics CSV (after the
  ``metrics_<k>.csv`` kept by resumed fits) at the best checkpoint's validation: the first best value of the
  monitored metric, as ``ModelCheckpoint`` keeps it. The test value of the same name (``test/...``) comes from
  ``summary.json``, which tests the best checkpoint. Without a metrics CSV: the last validation in the summary.

``collect`` writes ``collect.md``, ``collect.csv`` and ``tradeoff.png`` (metric against multiply-adds on a log
axis, bubble area proportional to parameters, each bubble labelled ``width-resolution`` like the paper's
Fig. 4-5). Rows are sorted by multiply-adds.

Command line (``tools/collect.py``, ``mobivision collect``):

Tabulate a sweep: ``python tools/collect.py runs/<task>/multirun_<time>``.

Writes ``collect.md`` and ``collect.csv`` (one row per run, sorted by multiply-adds: width, resolution, MACs,
parameters, batch-1 CPU latency and the task's main metric, best validation and test) and ``tradeoff.png``
(the metric against multiply-adds on a log axis, bubble area = parameters, like the MobileNets paper's
Fig. 4-5) into ``--out`` (default: the sweep folder), and prints the Markdown table. Run folders without
``summary.json`` (failed or still running) are listed in one warning line.

Examples::

    python tools/collect.py runs/demo_classification/multirun_2025-01-01_12-00-00
    python tools/collect.py runs/demo_geo/multirun_... --out reports/geo --threads 1 --latency-repeats 50
    python tools/collect.py runs/demo/multirun_... --metric val/mAP_50 --no-latency
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mobivision.commands.cli import exit_code, positive_int
from mobivision.errors import MobivisionError

SUMMARY = "summary.json"
CONFIG = "config.yaml"
CSV_COLUMNS = (
    "run",
    "backbone",
    "width",
    "resolution",
    "macs",
    "params",
    "latency_ms",
    "metric",
    "mode",
    "val",
    "test",
    "val_source",
    "checkpoint",
)


class CollectError(MobivisionError):
    """Nothing to collect, or runs that cannot be tabulated together."""


@dataclass
class Collection:
    """The rows (sorted by multiply-adds), the skipped run folders and the files written."""

    rows: list[dict[str, Any]]
    skipped: list[Path]
    files: list[Path] = field(default_factory=list)
    metric: str = ""
    mode: str = "max"


def find_runs(sweep_dir: Path) -> tuple[list[Path], list[Path]]:
    """Run folders under ``sweep_dir`` (any depth, itself included): finished ones and those without summary.

    A finished run has ``summary.json`` and ``config.yaml``; a folder with ``config.yaml`` or a ``.hydra``
    folder but no ``summary.json`` is an unfinished run. Hidden folders (``.hydra``, ``.submitit``) are not runs.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise CollectError(f"sweep folder not found: {sweep_dir}")
    candidates = {sweep_dir}
    for name in (SUMMARY, CONFIG, ".hydra"):
        candidates.update(p.parent for p in sweep_dir.rglob(name))
    finished, unfinished = [], []
    for folder in sorted(candidates):
        if any(part.startswith(".") for part in folder.relative_to(sweep_dir).parts):
            continue
        has_summary, has_config = (folder / SUMMARY).is_file(), (folder / CONFIG).is_file()
        if has_summary and has_config:
            finished.append(folder)
        elif not has_summary and (has_config or (folder / ".hydra").is_dir()):
            unfinished.append(folder)
    return finished, unfinished


def _checkpoint(run_dir: Path, summary: dict[str, Any]) -> Path:
    """The best checkpoint; found in the run's own ``checkpoints/`` when the folder was moved or copied."""
    recorded = [Path(p) for p in (summary.get("best_checkpoint"), summary.get("last_checkpoint")) if p]
    candidates = [recorded[0]] if recorded else []
    candidates += [run_dir / "checkpoints" / p.name for p in recorded]
    candidates += [run_dir / "checkpoints" / "best.ckpt", run_dir / "checkpoints" / "last.ckpt"]
    for path in candidates:
        if path.is_file():
            return path
    raise CollectError(f"{run_dir}: no checkpoint (looked for {', '.join(str(p) for p in candidates)})")


def _metrics_csvs(run_dir: Path) -> list[Path]:
    """The run's metrics CSVs in logging order: those kept by earlier resumes (``metrics_<k>.csv``), then
    ``metrics.csv``; the CSV logger's folder ``csv/`` first, else any folder of the run."""
    for pattern in ("csv/metrics.csv", "**/metrics.csv"):
        current = next(iter(sorted(run_dir.glob(pattern))), None)
        if current is not None:
            kept = [p for p in current.parent.glob("metrics_*.csv") if p.stem.removeprefix("metrics_").isdigit()]
            return [*sorted(kept, key=lambda p: int(p.stem.removeprefix("metrics_"))), current]
    return []


def _float(text: str | None) -> float | None:
    if text is None or text == "":
        return None
    value = float(text)
    return None if math.isnan(value) else value


def best_validation(rows: list[dict[str, str]], *, monitor: str, mode: str, metric: str) -> float | None:
    """``metric`` in the first metrics-CSV row where ``monitor`` is best (``mode`` max or min), else None."""
    best_value, best_row = None, None
    for row in rows:
        value = _float(row.get(monitor))
        if value is None:
            continue
        if best_value is None or (value > best_value if mode == "max" else value < best_value):
            best_value, best_row = value, row
    return None if best_row is None else _float(best_row.get(metric))


def _test_name(metric: str) -> str:
    return "test/" + metric.split("/", 1)[-1]


def read_run(run_dir: Path, *, metric: str | None = None) -> dict[str, Any]:
    """What the run's own files say: configuration, metric values and checkpoint (no model is loaded)."""
    from omegaconf import OmegaConf

    run_dir = Path(run_dir)
    cfg = OmegaConf.load(run_dir / CONFIG)
    summary = json.loads((run_dir / SUMMARY).read_text())
    monitor = OmegaConf.select(cfg, "monitor.metric")
    mode = OmegaConf.select(cfg, "monitor.mode", default="max")
    metric = metric or monitor
    if not metric:
        raise CollectError(f"{run_dir}: config.yaml has no monitor.metric; name the metric with --metric")
    csv_paths = _metrics_csvs(run_dir)
    if csv_paths:
        logged: list[dict[str, str]] = []
        for path in csv_paths:
            with path.open(newline="") as f:
                logged += list(csv.DictReader(f))
        val = best_validation(logged, monitor=monitor or metric, mode=mode, metric=metric)
        val_source = f"{csv_paths[-1].relative_to(run_dir)} at best {monitor or metric}"
    else:
        val = summary.get("val", {}).get(metric)
        val_source = "summary.json (last validation)"
    return {
        "backbone": OmegaConf.select(cfg, "backbone.name"),
        "width": OmegaConf.select(cfg, "backbone.width_mult"),
        "resolution": OmegaConf.select(cfg, "data.resolution"),
        "metric": metric,
        "mode": mode,
        "val": val,
        "test": summary.get("test", {}).get(_test_name(metric)),
        "val_source": val_source,
        "logged": sorted(summary.get("val", {})),
        "checkpoint": _checkpoint(run_dir, summary),
    }


def measure_run(
    checkpoint: Path, resolution: int | None, *, latency_repeats: int | None, threads: int | None
) -> dict[str, Any]:
    """Multiply-adds, parameters and (``latency_repeats`` not None) CPU latency of a checkpoint's network.

    ``resolution`` None: the one recorded in the checkpoint (``data_meta``).
    """
    import torch

    from mobivision.profiling import measure_latency_ms, profile
    from mobivision.tasks.runner import load_task

    task = load_task(checkpoint)
    resolution = resolution or task.data_meta.get("resolution")
    if resolution is None:
        raise CollectError(f"{checkpoint}: no resolution in the run's config or the checkpoint")
    model = task.model.eval()
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        cost = profile(model, resolution)
        latency = None
        if latency_repeats is not None:
            latency = measure_latency_ms(model, resolution=resolution, repeats=latency_repeats)
    finally:
        torch.set_num_threads(previous_threads)
    return {"resolution": resolution, "macs": cost.macs, "params": cost.params, "latency_ms": latency}


def collect_rows(
    run_dirs: list[Path],
    *,
    sweep_dir: Path,
    metric: str | None = None,
    latency_repeats: int | None = 20,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """One row per run, sorted by multiply-adds (then width, resolution)."""
    runs = {run_dir: read_run(run_dir, metric=metric) for run_dir in run_dirs}
    metrics = sorted({run["metric"] for run in runs.values()})
    if len(metrics) > 1:
        raise CollectError(f"the runs monitor different metrics ({', '.join(metrics)}); choose one with --metric")
    if all(run["val"] is None and run["test"] is None for run in runs.values()):
        logged = sorted({name for run in runs.values() for name in run["logged"]})
        raise CollectError(f"no run logged {metrics[0]}; validation metrics logged: {', '.join(logged) or 'none'}")
    rows = []
    for run_dir, run in runs.items():
        cost = measure_run(run["checkpoint"], run["resolution"], latency_repeats=latency_repeats, threads=threads)
        relative = run_dir.relative_to(sweep_dir).as_posix()
        rows.append({"run": relative if relative != "." else run_dir.name, **run, **cost})
        rows[-1]["checkpoint"] = str(run["checkpoint"])
    return sorted(rows, key=lambda r: (r["macs"], r["width"] or 0, r["resolution"] or 0))


def label(row: dict[str, Any]) -> str:
    """The paper's name of a width x resolution pair, e.g. ``"0.25-128"``."""
    return f"{row['width']}-{row['resolution']}"


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def markdown_table(rows: list[dict[str, Any]], *, metric: str, mode: str) -> str:
    """The result table in Markdown: one line per run."""
    test = _test_name(metric)
    better = "higher" if mode == "max" else "lower"
    header = [
        "run",
        "backbone",
        "width",
        "resolution",
        "MACs (M)",
        "params (M)",
        "CPU ms",
        f"{metric} (best)",
        test,
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * 7) + "|"]
    for row in rows:
        cells = [
            row["run"],
            str(row["backbone"]),
            str(row["width"]),
            str(row["resolution"]),
            f"{row['macs'] / 1e6:.2f}",
            f"{row['params'] / 1e6:.3f}",
            _fmt(row["latency_ms"], ".2f"),
            _fmt(row["val"], ".4f"),
            _fmt(row["test"], ".4f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n{better} {metric} is better; MACs: multiply-adds for one image.\n"


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row[k] for k in CSV_COLUMNS})


def plot_tradeoff(rows: list[dict[str, Any]], path: Path, *, metric: str, mode: str) -> str:
    """The paper's trade-off chart: metric vs multiply-adds (M, log x), bubble area ∝ parameters.

    The test value is plotted when every run has one, else the best validation value; returns which key.
    One colour per width multiplier; each bubble is labelled ``width-resolution``.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    key = "test" if rows and all(row["test"] is not None for row in rows) else "val"
    name = _test_name(metric) if key == "test" else f"{metric} (best)"
    points = [row for row in rows if row[key] is not None]
    fig = Figure(figsize=(7, 5), dpi=100)
    ax = fig.add_subplot()
    largest = max((row["params"] for row in points), default=1)
    widths = list(dict.fromkeys(row["width"] for row in points))
    for width in sorted(widths, key=lambda w: (w is None, w)):
        group = [row for row in points if row["width"] == width]
        ax.scatter(
            [row["macs"] / 1e6 for row in group],
            [row[key] for row in group],
            s=[1200 * row["params"] / largest for row in group],
            alpha=0.55,
            edgecolors="black",
            linewidths=0.5,
            label=f"width {width}",
        )
    for row in points:
        ax.annotate(label(row), (row["macs"] / 1e6, row[key]), fontsize=8, xytext=(6, 6), textcoords="offset points")
    ax.set_xscale("log")
    ticks = FuncFormatter(lambda value, _: f"{value:g}")
    ax.xaxis.set_major_formatter(ticks)
    ax.xaxis.set_minor_formatter(ticks)
    ax.tick_params(axis="x", which="both", labelsize=8)
    if len(points) > 1:
        low, high = min(r["macs"] for r in points) / 1e6, max(r["macs"] for r in points) / 1e6
        ax.set_xlim(low / 1.4, high * 1.4)
        values = [r[key] for r in points]
        spread = (max(values) - min(values)) or abs(max(values)) or 1.0
        ax.set_ylim(min(values) - 0.15 * spread, max(values) + 0.2 * spread)
    ax.set_xlabel("multiply-adds (M, log scale)")
    ax.set_ylabel(f"{name} ({'higher' if mode == 'max' else 'lower'} is better)")
    backbones = ", ".join(dict.fromkeys(str(row["backbone"]) for row in points))
    ax.set_title(f"{backbones}: width x resolution (bubble area = parameters)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if points:
        legend = ax.legend(loc="best", fontsize=8, markerscale=0.4)
        legend.set_alpha(0.8)
    fig.tight_layout()
    fig.savefig(path)
    return key


def collect(
    sweep_dir: Path,
    *,
    out_dir: Path | None = None,
    metric: str | None = None,
    latency_repeats: int | None = 20,
    threads: int | None = None,
) -> Collection:
    """Find the runs under ``sweep_dir``, tabulate them and write ``collect.md``, ``collect.csv``, ``tradeoff.png``.

    Args:
        sweep_dir: A multirun folder (or any folder holding run folders at any depth).
        out_dir: Where the three files go (default ``sweep_dir``; created if missing).
        metric: Validation metric to report (default: each run's ``monitor.metric``, which must agree).
        latency_repeats: Timed forward passes per run for the CPU latency median; None skips the latency.
        threads: ``torch.set_num_threads`` while measuring (restored afterwards); None keeps torch's.

    Raises:
        CollectError: No such folder, no finished run in it, or runs that monitor different metrics.
    """
    sweep_dir = Path(sweep_dir)
    finished, skipped = find_runs(sweep_dir)
    if not finished:
        unfinished = f" ({len(skipped)} without {SUMMARY})" if skipped else ""
        raise CollectError(f"no finished run (folder with {SUMMARY} and {CONFIG}) under {sweep_dir}{unfinished}")
    rows = collect_rows(finished, sweep_dir=sweep_dir, metric=metric, latency_repeats=latency_repeats, threads=threads)
    out_dir = Path(out_dir) if out_dir is not None else sweep_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    metric, mode = rows[0]["metric"], rows[0]["mode"]
    md, table_csv, chart = out_dir / "collect.md", out_dir / "collect.csv", out_dir / "tradeoff.png"
    title = f"# Sweep {sweep_dir.resolve().name}: {len(rows)} runs\n\n"
    latency_note = (
        f"CPU ms: batch-1 median of {latency_repeats} forward passes, {threads or 'torch default'} thread(s).\n"
        if latency_repeats is not None
        else "CPU latency not measured.\n"
    )
    md.write_text(title + markdown_table(rows, metric=metric, mode=mode) + latency_note)
    write_csv(rows, table_csv)
    plot_tradeoff(rows, chart, metric=metric, mode=mode)
    return Collection(rows=rows, skipped=skipped, files=[md, table_csv, chart], metric=metric, mode=mode)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, metavar="SWEEP_DIR", help="multirun folder (runs at any depth)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="where the table and chart go (default: SWEEP_DIR)")
    parser.add_argument("--metric", help="validation metric to report, e.g. val/top5 (default: monitor.metric)")
    parser.add_argument("--latency-repeats", type=positive_int, default=20, metavar="N", help="timed passes (20)")
    parser.add_argument("--threads", type=positive_int, help="torch CPU threads for the latency (default: torch's)")
    parser.add_argument("--no-latency", action="store_true", help="skip the CPU latency measurement")
    return parser


def run(args: argparse.Namespace) -> None:
    result = collect(
        args.sweep_dir,
        out_dir=args.out,
        metric=args.metric,
        latency_repeats=None if args.no_latency else args.latency_repeats,
        threads=args.threads,
    )
    if result.skipped:
        names = ", ".join(str(p.relative_to(args.sweep_dir)) for p in result.skipped)
        reason = f"without {SUMMARY} (failed or still running)"
        print(f"warning: skipped {len(result.skipped)} run folder(s) {reason}: {names}", file=sys.stderr)
    print(result.files[0].read_text(), end="")
    print("wrote " + ", ".join(str(f) for f in result.files), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return exit_code(lambda: run(args))
