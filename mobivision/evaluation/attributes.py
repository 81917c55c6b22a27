"""Attribute (multi-label) evaluation: per-attribute AP, tuned thresholds, accuracy, reports and the evaluator.

The MobileNets paper (Howard et al., 2017, Sec. 4.4, Table 12) reports face attributes by mean average
precision over the attributes; CelebA papers usually report mean accuracy at a decision threshold. Both are
computed here, per attribute, over the rows whose label is known (targets are float ``[N, A]`` with 1.0 =
present, 0.0 = absent, NaN = unknown). AP is torchmetrics' ``binary_average_precision`` (non-interpolated,
the same number as scikit-learn's ``average_precision_score``); this module adds the masking of unknown
labels, a per-attribute threshold search and the report files.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torchmetrics.functional.classification import binary_average_precision

from mobivision.errors import ConfigError, DataError
from mobivision.evaluation.classification import write_csv
from mobivision.evaluation.evaluator import Evaluator, image_keys

CRITERIA = ("accuracy", "balanced_accuracy")
REPORT_COLUMNS = ("attribute", "positive_rate", "average_precision", "accuracy", "balanced_accuracy", "threshold")
MARKDOWN_HEADER = ("attribute", "positives %", "AP %", "accuracy %", "balanced accuracy %", "threshold")


def _check_scores(probabilities: torch.Tensor, targets: torch.Tensor) -> None:
    """``[N, A]`` probabilities in [0, 1] and targets of the same shape holding only 0, 1 or NaN."""
    if probabilities.ndim != 2:
        raise DataError(f"probabilities must have shape [N, A], got {tuple(probabilities.shape)}")
    if targets.shape != probabilities.shape:
        raise DataError(f"targets have shape {tuple(targets.shape)} but probabilities {tuple(probabilities.shape)}")
    # torchmetrics silently applies a sigmoid to scores outside [0, 1]; logits passed by mistake would
    # give a plausible AP but meaningless thresholds, so they are refused here.
    if not bool(((probabilities >= 0) & (probabilities <= 1)).all()):
        raise DataError("probabilities must lie in [0, 1] (pass sigmoid(logits), not logits)")
    if not targets.is_floating_point():
        raise DataError(f"targets must be a float tensor (NaN = unknown), got {targets.dtype}")
    known = targets[~torch.isnan(targets)]
    if not bool(((known == 0) | (known == 1)).all()):
        raise DataError("targets must hold 1.0 (present), 0.0 (absent) or NaN (unknown) only")


def _check_thresholds(thresholds: torch.Tensor, num_attributes: int) -> torch.Tensor:
    thresholds = torch.as_tensor(thresholds, dtype=torch.float64).cpu()
    if thresholds.shape != (num_attributes,):
        raise ConfigError(
            f"thresholds must have shape [{num_attributes}] (one per attribute), got {tuple(thresholds.shape)}"
        )
    return thresholds


def average_precision(probabilities: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-attribute AP (float64 ``[A]``) over the rows with a known target; NaN for an attribute without
    any known positive (its AP is undefined)."""
    _check_scores(probabilities, targets)
    probabilities, targets = probabilities.detach().double().cpu(), targets.detach().cpu()
    result = torch.full((probabilities.shape[1],), math.nan, dtype=torch.float64)
    for a in range(probabilities.shape[1]):
        known = ~torch.isnan(targets[:, a])
        labels = targets[known, a].long()
        if labels.sum() > 0:
            result[a] = binary_average_precision(probabilities[known, a], labels).double()
    return result


def _counts(scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct sorted scores and the number of positives / negatives at each of them."""
    values, inverse = torch.unique(scores, sorted=True, return_inverse=True)
    positives = torch.zeros(len(values), dtype=torch.long).index_add_(0, inverse, labels)
    negatives = torch.zeros(len(values), dtype=torch.long).index_add_(0, inverse, 1 - labels)
    return values, positives, negatives


def tune_thresholds(probabilities: torch.Tensor, targets: torch.Tensor, *, criterion: str = "accuracy") -> torch.Tensor:
    """Per-attribute threshold (``[A]``, CPU, in the dtype of ``probabilities``) maximising ``criterion`` on
    the known rows, deciding ``p >= threshold``.

    Candidates: the midpoints between consecutive distinct scores, plus ``min - 1`` (everything positive)
    and ``max + 1`` (everything negative). The end candidates lie a whole unit outside the scores so that
    they keep meaning "always" / "never" on new data, and, being farther than any midpoint from 0.5, never
    win a tie against a threshold inside the score range. Ties in the criterion go to the candidate closest
    to 0.5, then to the smaller one. An attribute without known rows gets 0.5. The search runs in float64;
    a midpoint that rounds onto the lower score when cast back is replaced by the upper score, so the
    returned threshold splits the tuning scores exactly as the chosen candidate does.

    ``criterion``: ``"accuracy"`` or ``"balanced_accuracy"`` (mean of TPR and TNR; the available rate when
    only one class is known).
    """
    # Hand-written because torchmetrics has no threshold search: its binned/exact PR and ROC curves give
    # the thresholds at the scores themselves (not midpoints) and no accuracy per threshold. One sort and
    # cumulative sums per attribute give the confusion counts at every candidate in O(N log N).
    if criterion not in CRITERIA:
        raise ConfigError(f"unknown criterion {criterion!r}; expected one of {', '.join(CRITERIA)}")
    _check_scores(probabilities, targets)
    dtype = probabilities.dtype if probabilities.is_floating_point() else torch.float32
    probabilities, targets = probabilities.detach().double().cpu(), targets.detach().cpu()
    thresholds = torch.full((probabilities.shape[1],), 0.5, dtype=dtype)
    for a in range(probabilities.shape[1]):
        known = ~torch.isnan(targets[:, a])
        if not bool(known.any()):
            continue
        values, pos, neg = _counts(probabilities[known, a], targets[known, a].long())
        lower, upper = values[:-1], values[1:]
        middle = (lower + upper) / 2
        candidates = torch.cat([values[:1] - 1, middle, values[-1:] + 1])
        # Rounding may put the midpoint of two adjacent floats on the lower one, which would then count as
        # positive; the upper one gives the same split. (The ends stay outside the scores in any dtype.)
        cast = middle.to(dtype)
        cast = torch.where(cast.double() > lower, cast, upper.to(dtype))
        returned = torch.cat([candidates[:1].to(dtype), cast, candidates[-1:].to(dtype)])
        # Candidate k predicts positive exactly the distinct scores with index >= k.
        zero = torch.zeros(1, dtype=torch.long)
        false_negatives = torch.cat([zero, pos.cumsum(0)])
        true_negatives = torch.cat([zero, neg.cumsum(0)])
        n_pos, n_neg = int(pos.sum()), int(neg.sum())
        true_positives = n_pos - false_negatives
        # Integer scores so that equal criteria compare equal (no rounding can split a tie).
        if criterion == "accuracy":
            score = true_positives + true_negatives
        elif n_neg == 0:
            score = true_positives
        elif n_pos == 0:
            score = true_negatives
        else:  # balanced accuracy * 2 * n_pos * n_neg
            score = true_positives * n_neg + true_negatives * n_pos
        best = score == score.max()
        distance = torch.where(best, (candidates - 0.5).abs(), torch.inf)
        # argmin returns the first minimum, i.e. the smaller of two candidates equally close to 0.5.
        thresholds[a] = returned[int(distance.argmin())]
    return thresholds


@dataclass(frozen=True)
class AttributeMetrics:
    """Per-attribute metrics (float64 ``[A]`` tensors, as fractions in [0, 1]; NaN where undefined)."""

    accuracy: torch.Tensor
    balanced_accuracy: torch.Tensor
    average_precision: torch.Tensor
    positive_rate: torch.Tensor
    thresholds: torch.Tensor

    @property
    def mean_accuracy(self) -> float:
        """Mean over the attributes with known rows."""
        return float(self.accuracy.nanmean())

    @property
    def mean_balanced_accuracy(self) -> float:
        """Mean over the attributes with known rows."""
        return float(self.balanced_accuracy.nanmean())

    @property
    def mean_ap(self) -> float:
        """mAP over the attributes whose AP is defined (at least one known positive)."""
        return float(self.average_precision.nanmean())

    def summary(self, prefix: str = "") -> dict[str, float]:
        return {
            f"{prefix}mAP": self.mean_ap,
            f"{prefix}mean_acc": self.mean_accuracy,
            f"{prefix}balanced_acc": self.mean_balanced_accuracy,
        }


def attribute_metrics(
    probabilities: torch.Tensor, targets: torch.Tensor, thresholds: torch.Tensor | Sequence[float]
) -> AttributeMetrics:
    """Accuracy, balanced accuracy, AP and positive rate of each attribute over its known rows, deciding
    ``p >= threshold``. An attribute without known rows has NaN everywhere (and no AP without a known
    positive); balanced accuracy with one known class is that class's rate."""
    _check_scores(probabilities, targets)
    thresholds = _check_thresholds(thresholds, probabilities.shape[1])
    probabilities, targets = probabilities.detach().double().cpu(), targets.detach().cpu()
    known = ~torch.isnan(targets)
    positive, negative = known & (targets == 1), known & (targets == 0)
    predicted = probabilities >= thresholds
    n_known, n_pos, n_neg = known.sum(0).double(), positive.sum(0).double(), negative.sum(0).double()
    true_pos = (predicted & positive).sum(0).double()
    true_neg = (~predicted & negative).sum(0).double()
    tpr = true_pos / n_pos  # NaN when no known positive
    tnr = true_neg / n_neg
    return AttributeMetrics(
        accuracy=(true_pos + true_neg) / n_known,
        balanced_accuracy=torch.stack([tpr, tnr]).nanmean(0),
        average_precision=average_precision(probabilities, targets),
        positive_rate=n_pos / n_known,
        thresholds=thresholds,
    )


def _percent(value: float) -> str:
    return "–" if math.isnan(value) else f"{100 * value:.1f}"


def _full(value: float) -> object:
    return "" if math.isnan(value) else value


def _rows(metrics: AttributeMetrics, attribute_names: Sequence[str]) -> list[tuple[str, float, float, float, float]]:
    """(name, positive rate, AP, accuracy, balanced accuracy) per attribute, then the mean row."""
    columns = (metrics.positive_rate, metrics.average_precision, metrics.accuracy, metrics.balanced_accuracy)
    rows = [(name, *(float(column[a]) for column in columns)) for a, name in enumerate(attribute_names)]
    mean_rate = float(metrics.positive_rate.nanmean())
    rows.append(("mean", mean_rate, metrics.mean_ap, metrics.mean_accuracy, metrics.mean_balanced_accuracy))
    return rows


def _check_names(metrics: AttributeMetrics, attribute_names: Sequence[str]) -> None:
    if len(attribute_names) != len(metrics.thresholds):
        raise ConfigError(f"{len(attribute_names)} attribute names for {len(metrics.thresholds)} attributes")


def format_attribute_table(metrics: AttributeMetrics, attribute_names: Sequence[str]) -> str:
    """Markdown table: one row per attribute (percentages with one decimal, threshold with three), then
    a ``mean`` row (mean positive rate, mAP, mean accuracy, mean balanced accuracy; no threshold)."""
    _check_names(metrics, attribute_names)
    lines = ["| " + " | ".join(MARKDOWN_HEADER) + " |", "|---" + "|--:" * (len(MARKDOWN_HEADER) - 1) + "|"]
    thresholds = [f"{float(t):.3f}" for t in metrics.thresholds] + [""]
    for (name, *values), threshold in zip(_rows(metrics, attribute_names), thresholds, strict=True):
        lines.append("| " + " | ".join([name, *map(_percent, values), threshold]) + " |")
    return "\n".join(lines) + "\n"


def write_attribute_report(
    output_dir: Path,
    split: str,
    *,
    probabilities: torch.Tensor,
    targets: torch.Tensor,
    thresholds: torch.Tensor | Sequence[float],
    attribute_names: Sequence[str],
    images: Sequence[str],
) -> list[Path]:
    """Write ``per_attribute_<split>.md`` (table of ``format_attribute_table``), ``per_attribute_<split>.csv``
    (the same rows as fractions at full precision; undefined values empty) and ``predictions_<split>.csv``
    (image, then the probability of each attribute, 5 decimals) into ``output_dir``; returns the paths in
    that order."""
    output_dir = Path(output_dir)
    metrics = attribute_metrics(probabilities, targets, thresholds)
    _check_names(metrics, attribute_names)
    if len(set(attribute_names)) != len(attribute_names) or "image" in attribute_names:
        raise ConfigError("attribute names must be unique and not 'image' (they name CSV columns)")
    if len(images) != probabilities.shape[0]:
        raise DataError(f"{len(images)} image names for {probabilities.shape[0]} rows of probabilities")

    markdown = output_dir / f"per_attribute_{split}.md"
    markdown.write_text(format_attribute_table(metrics, attribute_names))
    threshold_cells: list[object] = [float(t) for t in metrics.thresholds] + [""]
    summary_rows = [
        dict(zip(REPORT_COLUMNS, [name, *map(_full, values), threshold], strict=True))
        for (name, *values), threshold in zip(_rows(metrics, attribute_names), threshold_cells, strict=True)
    ]
    predictions = [
        {"image": image, **{name: round(p, 5) for name, p in zip(attribute_names, row, strict=True)}}
        for image, row in zip(images, probabilities.detach().double().cpu().tolist(), strict=True)
    ]
    return [
        markdown,
        write_csv(output_dir / f"per_attribute_{split}.csv", summary_rows, REPORT_COLUMNS),
        write_csv(output_dir / f"predictions_{split}.csv", predictions, ["image", *attribute_names]),
    ]


class AttributeEvaluator(Evaluator):
    """Mean AP, mean and balanced accuracy of attribute probabilities at per-attribute thresholds.

    Ground truth: each batch's ``target`` (float ``[B, A]``, NaN = unknown). With ``tune`` (validation) the
    thresholds are first tuned on the split for ``tune``'s criterion; ``thresholds`` then holds them.
    """

    def __init__(self, attribute_names: Sequence[str], *, thresholds: torch.Tensor, tune: str | None = None) -> None:
        super().__init__()
        self.attribute_names = list(attribute_names)
        self.thresholds = thresholds
        self.tune = tune

    def update(self, predictions: torch.Tensor, batch: dict[str, Any]) -> None:
        """``predictions``: ``[B, A]`` probabilities."""
        rows = zip(predictions.detach().float().cpu(), batch["target"].cpu(), strict=True)
        for key, row in zip(image_keys(batch), rows, strict=True):
            self.add(key, row)

    def _columns(self) -> tuple[torch.Tensor, torch.Tensor]:
        probabilities, targets = zip(*self._rows.values(), strict=True)
        return torch.stack(probabilities), torch.stack(targets)

    def _compute(self, rows: dict[Hashable, Any]) -> dict[str, float]:
        probabilities, targets = self._columns()
        if self.tune is not None:
            self.thresholds = tune_thresholds(probabilities, targets, criterion=self.tune)
        return attribute_metrics(probabilities, targets, self.thresholds).summary()

    def write_report(self, output_dir: Path, split: str) -> list[Path]:
        """The per-attribute table (Markdown + CSV) and every image's probabilities."""
        if not self._rows:
            return []
        probabilities, targets = self._columns()
        return write_attribute_report(
            output_dir,
            split,
            probabilities=probabilities,
            targets=targets,
            thresholds=self.thresholds,
            attribute_names=self.attribute_names,
            images=[str(k) for k in self._rows],
        )
