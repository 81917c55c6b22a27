"""Tabulate a sweep: ``python tools/collect.py runs/<task>/multirun_<time>``.

Writes ``collect.md`` and ``collect.csv`` (one row per run, sorted by multiply-adds: width, resolution, MACs,
parameters, batch-1 CPU latency and the task's main metric, best validation and test) and ``tradeoff.png``
(the metric against multiply-adds on a log axis, bubble area = parameters, like the MobileNets paper's
Fig. 4-5) into ``--out`` (default: the sweep folder), and prints the Markdown table. Run folders without
``summary.json`` (failed or still running) are listed in one warning line. The logic is in ``tasks.collect``.

Examples::

    python tools/collect.py runs/demo_classification/multirun_2025-01-01_12-00-00
    python tools/collect.py runs/demo_geo/multirun_... --out reports/geo --threads 1 --latency-repeats 50
    python tools/collect.py runs/demo/multirun_... --metric val/mAP_50 --no-latency
"""

from __future__ import annotations

import _toolpath  # noqa: F401 (must come first, see tools/_toolpath.py)

import argparse
import sys
from pathlib import Path

from mobivision.cli import exit_code, positive_int


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
    from tasks.collect import SUMMARY, collect  # after parsing: argument errors are immediate

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


if __name__ == "__main__":
    sys.exit(main())
