"""``MultiTaskEvaluator``: one evaluator per head of a multi-task model, and the combined score that picks its
checkpoints."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mobivision.evaluation.evaluator import Evaluator


class MultiTaskEvaluator(Evaluator):
    """The heads' own evaluators by head name; metrics come out as ``<head>/<metric>`` plus ``score``.

    ``score`` is the declared combination of the heads' primary metrics: ``sum(w_h * m_h) / sum(w_h)`` over the
    heads with a weight ``w_h > 0``, where a lower-is-better metric enters negated. The heads are fed directly (the
    task routes each head's outputs to ``parts[head]``); ``update`` is not used.

    Args:
        parts: ``{head: evaluator}``.
        primary: ``{head: (its primary metric name, "max" or "min")}``.
        weights: ``{head: weight}`` of the score (a head missing here weighs 0).
    """

    def __init__(
        self, parts: Mapping[str, Evaluator], primary: Mapping[str, tuple[str, str]], weights: Mapping[str, float]
    ):
        super().__init__()
        self.parts = dict(parts)
        self.primary = dict(primary)
        self.weights = {head: float(weights.get(head, 0.0)) for head in self.parts}
        self.rank_zero_only = any(part.rank_zero_only for part in self.parts.values())
        self.metrics: dict[str, float] = {}
        engines = [f"{head}: {part.computed_by}" for head, part in self.parts.items() if part.computed_by]
        self.computed_by = "; ".join(engines) or None
        self.lower_is_better = frozenset(
            f"{head}/{name}" for head, part in self.parts.items() for name in part.lower_is_better
        )

    def table(self) -> str:
        """The last ``compute`` as a Markdown table, one row per head, and the score."""
        rows = ["| head | primary metric | value | other metrics |", "| ---- | ---- | ----: | ---- |"]
        for head in self.parts:
            name = self.primary[head][0]
            values = {k.split("/", 1)[1]: v for k, v in self.metrics.items() if k.startswith(f"{head}/")}
            others = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if k != name)
            rows.append(f"| {head} | {name} | {values.get(name, float('nan')):.4f} | {others} |")
        if "score" in self.metrics:
            rows.append(f"| (score) | weighted mean | {self.metrics['score']:.4f} | |")
        return "\n".join(rows)

    def summary_keys(self, metrics: dict[str, float]) -> list[str]:
        """Each head's primary metric, then the score."""
        keys = [f"{head}/{name}" for head, (name, _) in self.primary.items()] + ["score"]
        return [key for key in keys if key in metrics]

    def update(self, predictions: Any, batch: dict[str, Any]) -> None:
        raise TypeError("a MultiTaskEvaluator is fed per head: update parts[head]")

    def _compute(self, rows: dict[Hashable, Any]) -> dict[str, float]:
        raise TypeError("a MultiTaskEvaluator computes per head")

    def state(self) -> dict[str, dict[Hashable, Any]]:
        return {head: part.state() for head, part in self.parts.items()}

    def compute(self, states: Sequence[dict[str, Any]] | None = None) -> dict[str, float]:
        metrics: dict[str, float] = {}
        for head, part in self.parts.items():
            values = part.compute(None if states is None else [state[head] for state in states])
            metrics |= {f"{head}/{name}": float(value) for name, value in values.items()}
        terms = []
        for head, weight in self.weights.items():
            name, mode = self.primary[head]
            if weight > 0 and f"{head}/{name}" in metrics:
                terms.append((weight, (-1.0 if mode == "min" else 1.0) * metrics[f"{head}/{name}"]))
        if terms:
            metrics["score"] = sum(w * v for w, v in terms) / sum(w for w, _ in terms)
        self.metrics = metrics
        return metrics

    def write_report(self, output_dir: Path, split: str) -> list[Path]:
        """``heads_<split>.md`` (one row per head: its primary metric, then the others) and each head's own reports
        in ``output_dir/<head>/``."""
        table = Path(output_dir) / f"heads_{split}.md"
        table.write_text(self.table() + "\n")
        files: list[Path] = [table]
        for head, part in self.parts.items():
            folder = Path(output_dir) / head
            folder.mkdir(parents=True, exist_ok=True)
            files += part.write_report(folder, split)
        return files
