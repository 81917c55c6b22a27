"""ONNX export with a dynamic batch axis and the model's pre-processing in the file's metadata.

Two exporters of ``torch.onnx`` are available:

- ``"torchscript"`` (default): the TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``). It
  honours any opset from 11 (``opset=17`` gives an opset-17 file), exports a network in about a second and
  maps custom autograd functions with a ``symbolic`` (the detectors' in-graph ``NonMaxSuppression``). PyTorch
  2.14 marks it deprecated (a ``DeprecationWarning``, silenced here) but keeps it.
- ``"dynamo"``: the ``torch.export``-based exporter, PyTorch's default since 2.9. On this project's networks it
  takes 20-40 s per export on a 2-core machine and implements opset 18 and newer only: asked for 17 it tries
  a version conversion, which fails on MobileNet's graph, and writes opset 18 anyway. Not used for the NMS
  graph (its custom function has no onnxscript translation).

Metadata are ONNX ``metadata_props`` (string keys and values; non-string values are stored as JSON), read back
with ``read_metadata``. ``onnx_session`` opens a written file for its check (CPU; ``mobivision.inference.sessions``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mobivision.errors import ExportError, WeightFileError
from mobivision.inference import sessions

EXPORTERS = ("torchscript", "dynamo")
INPUT_NAME = "images"
MIN_OPSET = {"torchscript": 11, "dynamo": 18}


def _example(input_size: tuple[int, int], batch: int) -> torch.Tensor:
    height, width = (int(v) for v in input_size)
    return torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(0))


def _batched_outputs(model: nn.Module, example: torch.Tensor, output_names: Sequence[str]) -> list[str]:
    """The outputs whose first axis is the batch (the others, such as a detector's anchors, are constants)."""
    with torch.no_grad():
        outputs = model(example)
    outputs = outputs if isinstance(outputs, list | tuple) else (outputs,)
    if len(outputs) != len(output_names):
        raise ExportError(f"the model returns {len(outputs)} outputs but {len(output_names)} names were given")
    return [name for name, out in zip(output_names, outputs, strict=True) if out.ndim and out.shape[0] == len(example)]


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    input_size: tuple[int, int],
    opset: int = 17,
    dynamic_batch: bool = True,
    output_names: list[str],
    metadata: Mapping[str, Any] | None = None,
    exporter: str = "torchscript",
    doc_string: str | None = None,
) -> Path:
    """Export ``model`` (in eval mode) taking ``images [B, 3, H, W]`` float32 to ONNX at ``path``.

    Args:
        model: Returns one tensor or a tuple of tensors, named ``output_names`` in order.
        input_size: ``(height, width)`` of the input.
        opset: ONNX opset (``torchscript`` exporter: >= 11; ``dynamo``: >= 18).
        dynamic_batch: Make the batch axis of the input and of every batched output symbolic (``batch``).
        metadata: Written into the file's ``metadata_props`` (values that are not strings as JSON), plus
            ``opset``, ``input_name`` and ``output_names``.
        exporter: ``torchscript`` or ``dynamo`` (module docstring).
        doc_string: The graph's description.

    Raises:
        ExportError: The exporter failed or the file does not pass ``onnx.checker``.
    """
    import onnx

    if exporter not in EXPORTERS:
        raise ExportError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    if opset < MIN_OPSET[exporter]:
        raise ExportError(f"the {exporter} exporter needs opset >= {MIN_OPSET[exporter]}, got {opset}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    example = _example(input_size, 2)
    # An eager forward first also fills first-use caches (a detector's anchors) with real tensors before tracing.
    batched = _batched_outputs(model, example, output_names)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if exporter == "torchscript":
                axes = {name: {0: "batch"} for name in [INPUT_NAME, *batched]} if dynamic_batch else None
                torch.onnx.export(
                    model,
                    (example,),
                    str(path),
                    dynamo=False,
                    input_names=[INPUT_NAME],
                    output_names=list(output_names),
                    dynamic_axes=axes,
                    opset_version=opset,
                    do_constant_folding=True,
                )
            else:
                shapes = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
                torch.onnx.export(
                    model,
                    (example,),
                    str(path),
                    dynamo=True,
                    input_names=[INPUT_NAME],
                    output_names=list(output_names),
                    dynamic_shapes=shapes,
                    opset_version=opset,
                    verbose=False,
                )
    except Exception as exc:
        raise ExportError(
            f"ONNX export ({exporter} exporter, opset {opset}) failed: {type(exc).__name__}: {exc}"
        ) from exc
    proto = onnx.load(str(path))
    written_opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset)
    entries = {
        **dict(metadata or {}),
        "opset": written_opset,
        "input_name": INPUT_NAME,
        "output_names": list(output_names),
        "exporter": f"torch.onnx ({exporter}) {torch.__version__}",
    }
    set_metadata(proto, entries)
    if doc_string:
        proto.doc_string = doc_string
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{path}: the exported graph is not valid ONNX: {exc}") from exc
    onnx.save(proto, str(path))
    return path


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def set_metadata(proto: Any, entries: Mapping[str, Any]) -> None:
    """Add or replace ``metadata_props`` of an ``onnx.ModelProto`` (values that are not strings as JSON)."""
    current = {p.key: p.value for p in proto.metadata_props}
    current.update({str(k): _text(v) for k, v in entries.items()})
    del proto.metadata_props[:]
    for key, value in current.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict of strings (JSON values are not decoded)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def onnx_session(path: str | Path, *, threads: int | None = None) -> Any:
    """An exported file opened for its check (``mobivision.inference.sessions.onnx_session``, CPU): a file that is
    missing or that ONNX Runtime cannot load is a failed export.

    Raises:
        ExportError: The file is missing or ONNX Runtime cannot load it.
    """
    try:
        return sessions.onnx_session(path, threads=threads)
    except WeightFileError as exc:
        raise ExportError(str(exc)) from exc
