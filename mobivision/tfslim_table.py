"""The published MobileNetV1 cost and accuracy figures, and our counts checked against them.

Data: the 16 rows of TF-Slim's ``mobilenet_v1.md`` checkpoint table (ImageNet, 1001-class logits; width
multiplier x input resolution, M multiply-adds, M parameters, top-1, top-5), the exact 1001-class
parameter counts, and the multiply-adds the MobileNets paper (arXiv 1704.04861) prints: Table 6 (width
multiplier, Sec. 4.2), Table 7 (resolution multiplier, Sec. 4.2) and Table 10 (Stanford Dogs, Sec. 4.3).

The TF-Slim table disagrees with the paper in five rows, and ``profile_rows`` says so instead of hiding it:

- all four 0.75 rows are about 2.6% below the paper. TF-Slim prints 317 M for 0.75-224 where the paper's
  Table 6 prints 325 M and Table 10 prints 239 M for 0.75-192 (TF-Slim: 233 M). TF-Slim's other 0.75 rows
  are its own 317 scaled by resolution, so the whole width carries the same offset;
- 0.25-192 is printed as 34 M, but the table's own 0.25-224 row (41 M, also the paper's Table 6) scaled by
  ``(192 / 224) ** 2`` gives 30.1 M. All layers of the network scale exactly with the input area at these
  resolutions (each is a multiple of 32), apart from the small logits layer.

Those rows are checked against the paper-derived figure; every other row against TF-Slim's. A multiply-add
count matches its reference within 1%, or within 0.5 M because the table rounds to whole millions (0.25-128:
13.57 M printed as 14). Parameters are checked against the exact counts within 0.5% (the table's rounded
4.24 / 2.59 / 1.34 / 0.47 are shown for information).

Latency (``profile_rows(latency=True)``) is the median batch-1 CPU time in one of
``mobivision.profiling.LATENCY_RUNTIMES``: PyTorch eager, or each model exported to a temporary ONNX file and
run by ONNX Runtime or OpenVINO (f32); every row names it in ``latency_runtime``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from mobivision.factory import create_model
from mobivision.profiling import LATENCY_RUNTIMES, measure_exported_latency_ms, measure_latency_ms, profile

NUM_CLASSES = 1001  # TF-Slim's logits: class 0 is "background".
MACS_REL_TOL = 0.01
MACS_ABS_TOL_M = 0.5  # the table rounds multiply-adds to whole millions
PARAMS_REL_TOL = 0.005


@dataclass(frozen=True)
class TFSlimRow:
    """One TF-Slim checkpoint: width multiplier, input resolution and its published figures."""

    width: float
    resolution: int
    mmacs: float
    mparams: float
    top1: float
    top5: float

    @property
    def name(self) -> str:
        """Label in the paper's style, e.g. ``"0.75-224"``."""
        return f"{self.width}-{self.resolution}"


@dataclass(frozen=True)
class Reference:
    """A published multiply-add figure (M) and where it comes from."""

    mmacs: float
    source: str


TFSLIM_TABLE: tuple[TFSlimRow, ...] = (
    TFSlimRow(1.0, 224, 569, 4.24, 70.9, 89.9),
    TFSlimRow(1.0, 192, 418, 4.24, 70.0, 89.2),
    TFSlimRow(1.0, 160, 291, 4.24, 68.0, 87.7),
    TFSlimRow(1.0, 128, 186, 4.24, 65.2, 85.8),
    TFSlimRow(0.75, 224, 317, 2.59, 68.4, 88.2),
    TFSlimRow(0.75, 192, 233, 2.59, 67.2, 87.3),
    TFSlimRow(0.75, 160, 162, 2.59, 65.3, 86.0),
    TFSlimRow(0.75, 128, 104, 2.59, 62.1, 83.9),
    TFSlimRow(0.5, 224, 150, 1.34, 63.3, 84.9),
    TFSlimRow(0.5, 192, 110, 1.34, 61.7, 83.6),
    TFSlimRow(0.5, 160, 77, 1.34, 59.1, 81.9),
    TFSlimRow(0.5, 128, 49, 1.34, 56.3, 79.4),
    TFSlimRow(0.25, 224, 41, 0.47, 49.8, 74.2),
    TFSlimRow(0.25, 192, 34, 0.47, 47.7, 72.3),
    TFSlimRow(0.25, 160, 21, 0.47, 45.5, 70.3),
    TFSlimRow(0.25, 128, 14, 0.47, 41.5, 66.3),
)

# Exact parameter counts with 1001-class logits, in millions.
EXACT_MPARAMS: dict[float, float] = {1.0: 4.233, 0.75: 2.586, 0.5: 1.332, 0.25: 0.470}

# Multiply-adds (M) printed in the paper, keyed by (width, resolution).
PAPER_MMACS: dict[tuple[float, int], Reference] = {
    (1.0, 224): Reference(569, "paper Tables 6-7 (569)"),
    (0.75, 224): Reference(325, "paper Table 6 (325)"),
    (0.5, 224): Reference(149, "paper Table 6 (149)"),
    (0.25, 224): Reference(41, "paper Table 6 (41)"),
    (1.0, 192): Reference(418, "paper Table 7 (418)"),
    (1.0, 160): Reference(290, "paper Table 7 (290)"),
    (1.0, 128): Reference(186, "paper Table 7 (186)"),
    (0.75, 192): Reference(239, "paper Table 10 (239)"),
}


def _scaled(mmacs: float, resolution: int, *, source: str) -> Reference:
    """A 224-pixel figure scaled to ``resolution`` by the input area."""
    value = mmacs * (resolution / 224) ** 2
    return Reference(value, f"{source} ({mmacs:g} x ({resolution}/224)^2 = {value:.1f})")


# The five TF-Slim rows that contradict the paper, with the figure they are checked against instead.
TFSLIM_INCONSISTENT: dict[tuple[float, int], Reference] = {
    (0.75, 224): PAPER_MMACS[0.75, 224],
    (0.75, 192): PAPER_MMACS[0.75, 192],
    (0.75, 160): _scaled(325, 160, source="paper Table 6 scaled"),
    (0.75, 128): _scaled(325, 128, source="paper Table 6 scaled"),
    (0.25, 192): _scaled(41, 192, source="its own 0.25-224 row and paper Table 6 scaled"),
}


def macs_reference(row: TFSlimRow) -> Reference:
    """The multiply-add figure a row is checked against: the paper's where TF-Slim contradicts it."""
    return TFSLIM_INCONSISTENT.get((row.width, row.resolution), Reference(row.mmacs, f"TF-Slim table ({row.mmacs:g})"))


def inconsistency_note(row: TFSlimRow) -> str:
    """Why TF-Slim's figure for this row is not the reference, or ``""`` for a consistent row."""
    reference = TFSLIM_INCONSISTENT.get((row.width, row.resolution))
    return f"TF-Slim table inconsistent with {reference.source}" if reference else ""


def macs_match(mmacs: float, reference_mmacs: float) -> bool:
    """Within 1%, or within the table's rounding to whole millions."""
    return abs(mmacs - reference_mmacs) <= max(MACS_REL_TOL * reference_mmacs, MACS_ABS_TOL_M)


def params_match(mparams: float, reference_mparams: float) -> bool:
    """Within 0.5% of the exact count."""
    return abs(mparams - reference_mparams) <= PARAMS_REL_TOL * reference_mparams


def relative_diff_pct(value: float, reference: float) -> float:
    """``100 * (value - reference) / reference``."""
    return 100.0 * (value - reference) / reference


def _row_dict(
    row: TFSlimRow, *, macs: int, params: int, latency_ms: float | None, latency_runtime: str | None
) -> dict[str, Any]:
    mmacs, mparams = macs / 1e6, params / 1e6
    reference = macs_reference(row)
    exact_mparams = EXACT_MPARAMS[row.width]
    paper = PAPER_MMACS.get((row.width, row.resolution))
    return {
        "name": row.name,
        "width": row.width,
        "resolution": row.resolution,
        "macs": macs,
        "mmacs": mmacs,
        "params": params,
        "mparams": mparams,
        "latency_ms": latency_ms,
        "latency_runtime": latency_runtime,
        "tfslim_mmacs": row.mmacs,
        "tfslim_macs_diff_pct": relative_diff_pct(mmacs, row.mmacs),
        "tfslim_mparams": row.mparams,
        "tfslim_params_diff_pct": relative_diff_pct(mparams, row.mparams),
        "paper_mmacs": paper.mmacs if paper else None,
        "top1": row.top1,
        "top5": row.top5,
        "macs_reference": reference.source,
        "macs_reference_mmacs": reference.mmacs,
        "macs_reference_diff_pct": relative_diff_pct(mmacs, reference.mmacs),
        "macs_ok": macs_match(mmacs, reference.mmacs),
        "params_reference": "exact 1001-class count",
        "params_reference_mparams": exact_mparams,
        "params_reference_diff_pct": relative_diff_pct(mparams, exact_mparams),
        "params_ok": params_match(mparams, exact_mparams),
        "note": inconsistency_note(row),
    }


def _latency_ms(model: torch.nn.Module, resolution: int, *, runtime: str, threads: int | None) -> float:
    """Batch-1 latency of ``model`` in ``runtime`` (``torch``: eager; else exported to ONNX and run there)."""
    if runtime == "torch":
        return measure_latency_ms(model, resolution=resolution)
    return measure_exported_latency_ms(model, resolution=resolution, runtime=runtime, threads=threads)


def profile_rows(*, latency: bool, threads: int | None, runtime: str = "torch") -> list[dict[str, Any]]:
    """Profile the 16 TF-Slim width x resolution pairs of our 1001-class ``mobilenet_v1``.

    Args:
        latency: Also measure the median batch-1 CPU latency (``latency_ms`` is None otherwise).
        threads: ``torch.set_num_threads`` while profiling (restored afterwards), and the intra-op threads of
            ONNX Runtime / OpenVINO; None keeps torch's current count and the runtime's default.
        runtime: What times the models (``mobivision.profiling.LATENCY_RUNTIMES``): ``torch`` (eager),
            ``onnxruntime`` or ``openvino`` (each model exported to a temporary ONNX file).

    Returns:
        One dict per row of ``TFSLIM_TABLE``, in its order: our multiply-adds and parameters, latency and the
        runtime that measured it (``latency_runtime``, None without latency), TF-Slim's figures with relative
        differences, the reference each count was checked against (``macs_reference``, ``params_reference``),
        whether it matched (``macs_ok``, ``params_ok``) and a ``note`` for the rows where the TF-Slim table
        contradicts the paper.
    """
    if runtime not in LATENCY_RUNTIMES:
        raise ValueError(f"runtime must be one of {LATENCY_RUNTIMES}, got {runtime!r}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        rows = []
        for width in dict.fromkeys(row.width for row in TFSLIM_TABLE):
            model = create_model("mobilenet_v1", width_mult=width, num_classes=NUM_CLASSES).eval()
            for row in (r for r in TFSLIM_TABLE if r.width == width):
                cost = profile(model, row.resolution)
                latency_ms = _latency_ms(model, row.resolution, runtime=runtime, threads=threads) if latency else None
                rows.append(
                    _row_dict(
                        row,
                        macs=cost.macs,
                        params=cost.params,
                        latency_ms=latency_ms,
                        latency_runtime=runtime if latency else None,
                    )
                )
        return rows
    finally:
        torch.set_num_threads(previous_threads)


def fit_budget(
    rows: list[dict[str, Any]], *, max_latency_ms: float | None = None, max_mparams: float | None = None
) -> list[dict[str, Any]]:
    """Rows within a latency and/or parameter budget, best expected top-1 first (a model picker).

    Args:
        rows: Output of ``profile_rows``.
        max_latency_ms: Largest acceptable batch-1 latency; rows must have been timed.
        max_mparams: Largest acceptable parameter count, in millions.

    Returns:
        The fitting rows sorted by TF-Slim top-1, highest first.

    Raises:
        ValueError: A latency budget was given for rows without latency.
    """
    if max_latency_ms is not None and any(row["latency_ms"] is None for row in rows):
        raise ValueError("a latency budget needs measured latencies")
    fitting = [
        row
        for row in rows
        if (max_latency_ms is None or row["latency_ms"] <= max_latency_ms)
        and (max_mparams is None or row["mparams"] <= max_mparams)
    ]
    return sorted(fitting, key=lambda row: row["top1"], reverse=True)
