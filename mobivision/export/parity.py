"""Parity of an exported model with the PyTorch model: same inputs, outputs compared, a report.

An output passes when ``max |exported - pytorch| <= atol + rtol * max |pytorch|`` (the tolerance scales with
the output's magnitude, so outputs of a large value range are judged relative to it). The defaults
(``FP32_ATOL`` = 1e-4, ``FP32_RTOL`` = 1e-3) sit above what float32 runtimes were measured to differ by, which
comes from a different summation order and BatchNorm folded into the convolutions: ONNX Runtime vs PyTorch
3.5e-6 on MobileNetV1-1.0 logits at 224 px (largest logit 0.4), 1.8e-4 on SSDLite320-MobileNetV1 COCO class
logits (largest 3.1), 2e-6 on the test suite's tiny models; TorchScript reproduces PyTorch exactly. A wrong
graph (a missing layer, swapped channels, a wrong normalisation) differs by the output's own scale.

Detections after NMS are compared as sets per image (``compare_detections``): the same number of detections,
and each PyTorch detection matched to an exported one of the same label whose box and score are within
tolerance; near-equal scores may swap places in the ranking, so the order is not compared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from mobivision.errors import ExportError

FP32_ATOL = 1e-4
FP32_RTOL = 1e-3
BOX_ATOL = 1e-2  # pixels of the network input
SCORE_ATOL = 1e-4

Outputs = Sequence[np.ndarray]
Runner = Callable[[np.ndarray], Outputs]


@dataclass(frozen=True)
class OutputDiff:
    """One output's largest difference over all inputs and the tolerance it was held to."""

    name: str
    max_abs_diff: float
    tolerance: float
    ok: bool
    note: str = ""


@dataclass
class ParityReport:
    """What ``verify_parity`` found: per output the worst difference, and the inputs it was measured on."""

    format: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[OutputDiff] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outputs)

    @property
    def max_abs_diff(self) -> float:
        return max((o.max_abs_diff for o in self.outputs), default=0.0)

    def summary(self) -> str:
        """One line: ``max diff 3.1e-07 (tol 1.0e-04)`` or the failing outputs."""
        failing = [o for o in self.outputs if not o.ok]
        if failing:
            return "FAILED: " + "; ".join(
                f"{o.name} {o.max_abs_diff:.3g} > {o.tolerance:.3g} {o.note}" for o in failing
            )
        worst = max(self.outputs, key=lambda o: o.max_abs_diff / max(o.tolerance, 1e-30), default=None)
        if worst is None:
            return "no outputs compared"
        notes = "".join(f"; {o.note}" for o in self.outputs if o.note)
        return f"max diff {worst.max_abs_diff:.2g} (tol {worst.tolerance:.2g}, {worst.name}){notes}"

    def table(self) -> str:
        lines = [f"{self.format} vs PyTorch on {', '.join(self.inputs) or 'no inputs'}:"]
        lines += [
            f"  {o.name:<20} max |diff| {o.max_abs_diff:.3g}  tolerance {o.tolerance:.3g}  "
            f"{'ok' if o.ok else 'FAILED'}{'  ' + o.note if o.note else ''}"
            for o in self.outputs
        ]
        return "\n".join(lines)

    def raise_if_failed(self) -> ParityReport:
        if not self.ok:
            raise ExportError(f"{self.format} output differs from PyTorch beyond tolerance\n{self.table()}")
        return self


def compare_outputs(
    reference: Outputs, actual: Outputs, names: Sequence[str], *, atol: float = FP32_ATOL, rtol: float = FP32_RTOL
) -> list[OutputDiff]:
    """Per output: shape check, then ``max |actual - reference|`` against ``atol + rtol * max |reference|``."""
    if len(reference) != len(actual):
        return [OutputDiff("outputs", float("inf"), 0.0, False, f"{len(actual)} outputs, expected {len(reference)}")]
    diffs = []
    for name, ref, out in zip(names, reference, actual, strict=True):
        ref, out = np.asarray(ref), np.asarray(out)
        if ref.shape != out.shape:
            diffs.append(OutputDiff(name, float("inf"), 0.0, False, f"shape {out.shape}, expected {ref.shape}"))
            continue
        scale = float(np.abs(ref).max()) if ref.size else 0.0
        tolerance = atol + rtol * scale
        diff = float(np.abs(out.astype(np.float64) - ref.astype(np.float64)).max()) if ref.size else 0.0
        diffs.append(OutputDiff(name, diff, tolerance, bool(diff <= tolerance)))
    return diffs


def _match_image(
    ref: tuple[np.ndarray, np.ndarray, np.ndarray], out: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> tuple[float, float, int]:
    """Greedy matching of one image's detections (``boxes, scores, labels``): the worst box and score differences
    and the number of reference detections without a same-label partner."""
    ref_boxes, ref_scores, ref_labels = (np.asarray(a, dtype=np.float64) for a in ref)
    out_boxes, out_scores, out_labels = (np.asarray(a, dtype=np.float64) for a in out)
    free = np.ones(len(out_boxes), dtype=bool)
    worst_box = worst_score = 0.0
    unmatched = 0
    for box, score, label in zip(ref_boxes, ref_scores, ref_labels, strict=True):
        candidates = np.flatnonzero(free & (out_labels == label))
        if not len(candidates):
            unmatched += 1
            continue
        distance = np.abs(out_boxes[candidates] - box).max(1) + np.abs(out_scores[candidates] - score)
        best = candidates[int(distance.argmin())]
        free[best] = False
        worst_box = max(worst_box, float(np.abs(out_boxes[best] - box).max()))
        worst_score = max(worst_score, float(abs(out_scores[best] - score)))
    return worst_box, worst_score, unmatched


def compare_detections(
    reference: Outputs,
    actual: Outputs,
    names: Sequence[str] = ("boxes", "scores", "labels", "num_detections"),
    *,
    box_atol: float = BOX_ATOL,
    score_atol: float = SCORE_ATOL,
) -> list[OutputDiff]:
    """Padded detections ``(boxes [B, K, 4], scores [B, K], labels [B, K], num_detections [B])`` compared per
    image as sets (module docstring)."""
    ref_boxes, ref_scores, ref_labels, ref_count = (np.asarray(a) for a in reference)
    out_boxes, out_scores, out_labels, out_count = (np.asarray(a) for a in actual)
    count_diff = int(np.abs(ref_count.astype(np.int64) - out_count.astype(np.int64)).max()) if ref_count.size else 0
    worst_box = worst_score = 0.0
    unmatched = 0
    for i in range(len(ref_count)):
        n, m = int(ref_count[i]), int(out_count[i])
        box, score, missing = _match_image(
            (ref_boxes[i, :n], ref_scores[i, :n], ref_labels[i, :n]),
            (out_boxes[i, :m], out_scores[i, :m], out_labels[i, :m]),
        )
        worst_box, worst_score, unmatched = max(worst_box, box), max(worst_score, score), unmatched + missing
    total = int(ref_count.sum())
    count_note = f"{int(out_count.sum())} detections (PyTorch {total}) on {len(ref_count)} images"
    return [
        OutputDiff(names[0], worst_box, box_atol, worst_box <= box_atol),
        OutputDiff(names[1], worst_score, score_atol, worst_score <= score_atol),
        OutputDiff(
            names[2],
            float(unmatched),
            0.0,
            not unmatched,
            f"{unmatched} without a same-label match" if unmatched else "",
        ),
        OutputDiff(names[3], float(count_diff), 0.0, count_diff == 0, count_note),
    ]


def torch_runner(model: torch.nn.Module) -> Runner:
    """``model`` in eval mode as a function of a numpy batch returning a list of numpy outputs."""
    model = model.eval()

    def run(images: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            outputs = model(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)))
        outputs = outputs if isinstance(outputs, list | tuple) else (outputs,)
        return [o.detach().cpu().numpy() for o in outputs]

    return run


def verify_parity(
    reference: Runner,
    exported: Runner,
    inputs: Iterable[tuple[str, np.ndarray]],
    output_names: Sequence[str],
    *,
    format: str,
    compare: Callable[[Outputs, Outputs, Sequence[str]], list[OutputDiff]] | None = None,
) -> ParityReport:
    """Run ``reference`` (PyTorch) and ``exported`` on each ``(description, batch)`` of ``inputs`` and keep, per
    output, the worst difference (``compare``: ``compare_outputs`` with the fp32 tolerances by default).
    Does not raise: call ``report.raise_if_failed()``."""
    compare = compare or compare_outputs
    report = ParityReport(format)
    worst: dict[str, OutputDiff] = {}
    notes: dict[str, list[str]] = {}
    for description, batch in inputs:
        report.inputs.append(f"{description} {list(np.shape(batch))}")
        for diff in compare(reference(batch), exported(batch), output_names):
            old = worst.get(diff.name)
            if old is None or (old.ok and not diff.ok) or (old.ok == diff.ok and diff.max_abs_diff > old.max_abs_diff):
                worst[diff.name] = diff
            if diff.note:
                notes.setdefault(diff.name, []).append(f"{description}: {diff.note}")
    report.outputs = [replace(d, note=" / ".join(notes.get(d.name, []))) for d in worst.values()]
    return report
