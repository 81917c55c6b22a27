"""What a runtime needs from a model's metadata, checked once where it is read (``check_metadata``).

Every runtime (``OnnxRuntime``, ``OpenVinoRuntime``, the training layer's ``CheckpointRuntime``) calls
``check_metadata`` on the entries it read and the graph's output names before a ``Predictor`` uses them, so a file
whose metadata is partial (a plain ONNX model, an ONNX file whose metadata a tool rewrote, a plug-in task that leaves
out an entry) is one ``WeightFileError`` naming the file, every missing or malformed entry and how such a file is
made, instead of a ``KeyError`` from deep inside pre-processing or decoding.

What is required: the entries every model is pre-processed and decoded with (``SHARED``), and per head the entries
and graph outputs its decoder declares it reads (``decode.reads`` beside each decoder: no table of kinds here). A
multi-task model's heads are under ``heads``, each with its ``kind`` (and ``decoder``), its outputs named
``<head>.<output>`` in the graph. A decoder that declares nothing (a plug-in's may not) is not checked beyond its
head's ``kind``.

Torch-free, as decode.py: the ONNX and OpenVINO paths import no torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from mobivision.errors import WeightFileError
from mobivision.inference import decode

SHARED = ("task_kind", "input_size", "mean", "std")
POSTPROCESS_ENTRIES = ("score_threshold", "topk_candidates", "nms_iou", "max_detections")
HOW_MADE = {
    "onnx": "a mobivision ONNX file is written by tools/export.py CHECKPOINT --out DIR from a trained checkpoint",
    "openvino": "a mobivision OpenVINO IR is written by tools/export.py CHECKPOINT --formats openvino --out DIR",
    "checkpoint": "the task's export_metadata() must provide them (the entries tools/export.py writes)",
}
MULTITASK_KIND = "multitask"


def check_metadata(path: Path, metadata: Mapping[str, Any], output_names: Iterable[str], *, source: str) -> None:
    """Raise ``WeightFileError`` unless ``metadata`` holds what a ``Predictor`` reads, for every head, and the
    graph has the outputs each head's decoder reads.

    ``source``: ``onnx``, ``openvino`` or ``checkpoint`` (what the message says about how a complete file is made).
    """
    how = HOW_MADE[source]
    if not any(key in metadata for key in SHARED):
        what = "its runtime info (section 'mobivision')" if source == "openvino" else "its metadata"
        raise WeightFileError(
            f"{path}: not a mobivision export: {what} has none of {', '.join(SHARED)} (found: "
            f"{_names(metadata) or 'no entries'}); {how}"
        )
    outputs = list(output_names)
    problems = _problems(metadata, SHARED, "")
    if "heads" in metadata:
        heads = metadata["heads"]
        if not isinstance(heads, Mapping) or not heads or not all(isinstance(h, Mapping) for h in heads.values()):
            problems.append(f"heads is {_short(heads)}, expected a mapping of head name -> its entries")
        else:
            for name, entries in heads.items():
                own = [o[len(name) + 1 :] for o in outputs if o.startswith(f"{name}.")]
                problems += [f"head {name!r}: {p}" for p in _head_problems(entries, own, entries.get("kind"))]
    elif metadata.get("task_kind") == MULTITASK_KIND:
        problems.append(f"missing heads (a {MULTITASK_KIND} model's entries per head)")
    elif _is_text(metadata.get("task_kind")):
        problems += _head_problems(metadata, outputs, metadata["task_kind"])
    if problems:
        raise WeightFileError(f"{path}: incomplete mobivision metadata: {'; '.join(problems)}; {how}")


def _head_problems(entries: Mapping[str, Any], outputs: Sequence[str], kind: Any) -> list[str]:
    """What a head's decoder reads (its ``reads`` declaration) that its entries or its graph outputs lack."""
    if not _is_text(kind):
        kinds = sorted(e.name for e in entry_points(group="mobivision.tasks") if e.name != MULTITASK_KIND)
        return [f"missing kind (one of {', '.join(kinds)} or a plug-in's)"]
    try:
        reads = getattr(decode.decoder_for({"kind": kind, **entries}), "reads", None)
    except WeightFileError:  # a plug-in that is not installed: the predictor names its decoder
        return []
    if reads is None:
        return []
    required, wanted_outputs = reads.entries, reads.outputs
    if reads.or_outputs and all(o in outputs for o in reads.or_outputs):
        required = tuple(e for e in required if e not in reads.or_entries)
        wanted_outputs = reads.or_outputs
    problems = _problems(entries, required, f" (the {kind} decoder reads them)")
    absent = [o for o in wanted_outputs if o not in outputs]
    if absent:
        problems.append(
            f"the graph lacks the output{'s' * (len(absent) > 1)} {', '.join(absent)} the {kind} decoder reads "
            f"(outputs: {', '.join(outputs) or 'none'})"
        )
    return problems


def _problems(entries: Mapping[str, Any], required: Sequence[str], why: str) -> list[str]:
    """The ``required`` keys ``entries`` lacks, and those whose values ``VALUES`` refuses."""
    missing = [key for key in required if key not in entries]
    problems = [f"missing {', '.join(missing)}{why}"] if missing else []
    for key in required:
        if key in entries and key in VALUES and not VALUES[key][0](entries[key], entries):
            problems.append(f"{key} is {_short(entries[key])}, expected {VALUES[key][1]}")
    return problems


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _numbers(value: Any, count: int | None = None) -> bool:
    """``value`` is a list of finite numbers (``count`` of them)."""
    return (
        isinstance(value, list)
        and (count is None or len(value) == count)
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    )


VALUES: dict[str, tuple[Callable[[Any, Mapping[str, Any]], bool], str]] = {
    "task_kind": (lambda v, _: _is_text(v), "a name such as 'classification'"),
    "input_size": (
        lambda v, _: _numbers(v, 2) and all(isinstance(x, int) and x > 0 for x in v),
        "[height, width], two integers > 0",
    ),
    "mean": (lambda v, _: _numbers(v, 3), "three numbers (R, G, B)"),
    "std": (lambda v, _: _numbers(v, 3) and all(x != 0 for x in v), "three numbers != 0 (R, G, B)"),
    "class_names": (lambda v, _: isinstance(v, list), "a list of names"),
    "attribute_names": (lambda v, _: isinstance(v, list), "a list of names"),
    "attribute_thresholds": (
        lambda v, e: _numbers(v, len(e["attribute_names"]) if isinstance(e.get("attribute_names"), list) else None),
        "one number per attribute name",
    ),
    "category_ids": (lambda v, _: isinstance(v, list), "a list of ids"),
    "score_function": (lambda v, _: v in ("sigmoid", "softmax"), "'sigmoid' or 'softmax'"),
    "box_coder_weights": (lambda v, _: _numbers(v, 4), "four numbers"),
    "postprocess": (
        lambda v, _: isinstance(v, Mapping) and all(key in v for key in POSTPROCESS_ENTRIES),
        f"a mapping with {', '.join(POSTPROCESS_ENTRIES)}",
    ),
}


def _names(metadata: Mapping[str, Any]) -> str:
    keys = sorted(metadata)
    return ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
