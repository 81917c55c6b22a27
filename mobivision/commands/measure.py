"""Re-run the README's Measured rows that take minutes, and print them as the README's table.

``make measure`` (``python tools/measure.py``) trains the demos from scratch on their embedded synthetic data, each
as a user runs it (``tools/train.py experiment=<demo>`` in a fresh folder, data written on first use), and reads
their test metrics back from ``summary.json``; exports each demo checkpoint to ONNX, OpenVINO IR (fp32 and fp16
weights) and TorchScript, parity checked; profiles the 16 MobileNetV1 pairs against TF-Slim's table; times
MobileNetV1-1.0-224 in every runtime (``tools/benchmark.py latency``). It prints the machine, the date and the
command, then one Markdown row per measurement in the README's ``| what | figure |`` format, ready to paste.

Rows that take longer stay out and the README says how they were measured: the detection demo (``make demo``,
about 7 minutes here; ``--demos demo`` adds it), COCO-scale evaluation, DDP and GPU rows.

Usage::

    python tools/measure.py [--demos demo_classification,...] [--work DIR] [--threads 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mobivision.commands.cli import exit_code, positive_int
from mobivision.errors import MobivisionError
from mobivision.machine import cpu_description

DEMOS = ("demo_classification", "demo_fine_grained", "demo_attributes", "demo_geo", "demo_multitask")
ALL_DEMOS = ("demo", *DEMOS)
PARITY_FORMATS = ("onnx", "openvino", "openvino-fp16", "torchscript")


def machine() -> str:
    """CPU model and instruction sets, cores, memory and the versions that matter for the figures."""
    import onnxruntime
    import torch

    cpu = cpu_description()
    memory = next((line.split()[1] for line in _read("/proc/meminfo").splitlines() if "MemTotal" in line), None)
    gib = f", {int(memory) / 2**20:.0f} GiB" if memory else ""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores{gib}, {gpu}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}"
    )


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def _command(name: str, *args: str, cwd: Path, threads: int) -> subprocess.CompletedProcess[str]:
    """``mobivision <name> args`` (as ``tools/<tool>.py`` runs it) in ``cwd`` with ``threads`` OpenMP threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "mobivision.commands.main", name, *args]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise MobivisionError(f"mobivision {name} {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


# --- demos ------------------------------------------------------------------------------------------------


def train_demo(name: str, work: Path, threads: int) -> dict[str, Any]:
    """Train ``experiment=name`` in its own folder under ``work``; its summary, with the wall time added. A demo
    that finished in ``work`` before (its ``wall_s.txt`` written) is read back, not trained again."""
    folder = work / name
    wall = folder / "wall_s.txt"
    if not wall.is_file():
        shutil.rmtree(folder, ignore_errors=True)  # an unfinished earlier attempt
        folder.mkdir(parents=True)
        start = time.perf_counter()
        _command("train", f"experiment={name}", cwd=folder, threads=threads)
        wall.write_text(f"{time.perf_counter() - start:.1f}\n")
    (summary_path,) = sorted(folder.glob("runs/*/*/summary.json"))
    return json.loads(summary_path.read_text()) | {"wall_s": float(wall.read_text())}


SECONDARY = ("AP75", "APs", "APm", "APl", "AR", "top5", "baseline_acc")  # metrics the row leaves out


def _metric_text(metrics: dict[str, float]) -> str:
    """``top1 0.992, mean_class_acc 0.992`` from ``test/...`` metrics: losses, COCO's size and recall breakdown,
    top-5 and the geo baseline's shares left out (the baseline's median error stays)."""
    shown = []
    for key, value in metrics.items():
        name = key.removeprefix("test/")
        if "loss" in name or name.rpartition("/")[2].startswith(SECONDARY):
            continue
        shown.append(f"{name} {value:.1f}" if name.endswith("_km") else f"{name} {value:.3f}")
    return ", ".join(shown)


def _weakest_class(summary: dict[str, Any]) -> str:
    """``; weakest class spot_back_blue 0.955`` from the run's per-class table, where it has one."""
    path = Path(summary["output_dir"]) / "per_class_test.csv"
    if not path.is_file():
        return ""
    with open(path) as f:
        rows = list(csv.DictReader(f))
    weakest = min(rows, key=lambda row: float(row["accuracy"]))
    return f"; {len(rows)} classes, the weakest {weakest['class']} {float(weakest['accuracy']):.3f}"


def _chance_text(summary: dict[str, Any]) -> str:
    """``; chance 0.167`` or ``; chance: mAP 0.217, mean_acc 0.783`` (where the task reports its chance level)."""
    chance = summary.get("chance")
    if chance is None:
        return ""
    if isinstance(chance, dict):
        return "; chance: " + ", ".join(f"{key} {value:.3f}" for key, value in chance.items())
    return f"; chance {chance:.3f}"


def demo_row(name: str, summary: dict[str, Any]) -> tuple[str, str]:
    what = f"`python tools/train.py experiment={name}` (fresh folder, data written first)"
    figure = (
        f"test: {_metric_text(summary['test'])}{_weakest_class(summary)}{_chance_text(summary)}; "
        f"**{_minutes(summary['wall_s'])}** wall"
    )
    return what, figure


# --- parity, profile, latency -----------------------------------------------------------------------------


def parity_row(summaries: dict[str, dict[str, Any]], work: Path, threads: int) -> tuple[str, str]:
    """Every demo checkpoint exported to ``PARITY_FORMATS``; the largest difference to PyTorch per format."""
    from mobivision.commands.export import export_task
    from mobivision.export import openvino_ir
    from mobivision.tasks.runner import load_task

    formats = [f for f in PARITY_FORMATS if not f.startswith("openvino") or openvino_ir.available()]
    parts = []
    for name, summary in summaries.items():
        task = load_task(summary["best_checkpoint"]).eval()
        result = export_task(task, work / name / "export", formats=formats, threads=threads)
        diffs = ", ".join(f"{row.format} {row.parity.max_abs_diff:.1e}" for row in result.rows if row.parity)
        parts.append(f"{name}: {diffs}")
    return f"export parity of the demo checkpoints (max abs difference to PyTorch; {', '.join(formats)})", "; ".join(
        parts
    )


def profile_row(work: Path, threads: int) -> tuple[str, str]:
    """The 16 pairs against TF-Slim's table, and MobileNetV1-1.0-224's latency in eager and the fastest runtime."""
    rows = {}
    for runtime in ("torch", "fastest"):
        args = ("--json", "--threads", str(threads), "--runtime", runtime)
        done = _command("profile", *args, cwd=work, threads=threads)
        rows[runtime] = {row["name"]: row for row in json.loads(done.stdout)}
    table_rows = list(rows["torch"].values())
    matching = [row for row in table_rows if row["macs_ok"] and row["params_ok"]]
    worst = max(table_rows, key=lambda row: abs(row["tfslim_macs_diff_pct"]))
    flagged = sum(bool(row["note"]) for row in table_rows)
    big = {runtime: table["1.0-224"] for runtime, table in rows.items()}
    fastest = big["fastest"]["latency_runtime"]
    return (
        f"`tools/profile_model.py --json --threads {threads}` (and `--runtime fastest`)",
        f"{len(matching)} of {len(table_rows)} pairs match their reference MACs and parameters (TF-Slim's table, "
        f"or the paper in the {flagged} rows where the table contradicts it); largest difference to the table's "
        f"printed MACs {worst['tfslim_macs_diff_pct']:+.2f}% ({worst['name']}); "
        f"MobileNetV1-1.0-224 batch 1: eager {big['torch']['latency_ms']:.1f} ms, {fastest} "
        f"{big['fastest']['latency_ms']:.1f} ms",
    )


def latency_row(work: Path, threads: int) -> tuple[str, str]:
    """``tools/benchmark.py latency`` on MobileNetV1-1.0-224: every runtime's median and the summary."""
    report_path = work / "latency.json"
    args = ("latency", "--model", "mobilenet_v1", "--width", "1.0", "--resolution", "224")
    options = ("--threads", str(threads), "--repeats", "50", "--json", str(report_path))
    _command("benchmark", *args, *options, cwd=work, threads=threads)
    report = json.loads(report_path.read_text())
    medians = ", ".join(
        f"{row['runtime'].removeprefix('mobivision ')} {row['median_ms']:.2f}" for row in report["rows"]
    )
    summary = report["summary"]
    speedups = ", ".join(f"{runtime} {value:.2f}x" for runtime, value in summary["int8_speedup"].items())
    return (
        f"`tools/benchmark.py {' '.join(args)} --threads {threads} --repeats 50` (median ms)",
        f"{medians}; fastest **{summary['fastest']['runtime']}**; INT8 over the same runtime's fp32: {speedups}",
    )


# --- the table --------------------------------------------------------------------------------------------


def measure(demos: list[str], work: Path, threads: int) -> list[tuple[str, str]]:
    rows = []
    summaries = {}
    for name in demos:
        print(f"training {name} ...", file=sys.stderr, flush=True)
        summaries[name] = train_demo(name, work, threads)
        rows.append(demo_row(name, summaries[name]))
    print("exporting, profiling, timing ...", file=sys.stderr, flush=True)
    if summaries:
        rows.append(parity_row(summaries, work, threads))
    rows.append(profile_row(work, threads))
    rows.append(latency_row(work, threads))
    return rows


def table(rows: list[tuple[str, str]], *, threads: int, command: str) -> str:
    today = datetime.date.today().isoformat()
    lines = [
        f"Measured on {today} by `{command}` ({threads} threads) on: {machine()}",
        "",
        "| what | figure |",
        "|---|---|",
    ]
    lines += [f"| {what} | {figure} |" for what, figure in rows]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--demos", default=",".join(DEMOS), help=f"comma-separated, from {','.join(ALL_DEMOS)} (default: all but demo)"
    )
    parser.add_argument(
        "--work", type=Path, help="folder for the runs, kept; demos finished there are reused (default: temporary)"
    )
    parser.add_argument("--threads", type=positive_int, default=2, help="threads of every run (default 2)")
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    args.demos = [d.strip() for d in args.demos.split(",") if d.strip()]
    unknown = [d for d in args.demos if d not in ALL_DEMOS]
    if unknown:
        parser.error(f"--demos: unknown {unknown}; choose from {','.join(ALL_DEMOS)}")
    return args


def run(args: argparse.Namespace, argv: list[str]) -> None:
    command = " ".join(["python tools/measure.py", *argv])
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        text = table(measure(args.demos, args.work, args.threads), threads=args.threads, command=command)
    else:
        with tempfile.TemporaryDirectory(prefix="mobivision-measure-") as folder:
            text = table(measure(args.demos, Path(folder), args.threads), threads=args.threads, command=command)
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    return exit_code(lambda: run(args, argv))
