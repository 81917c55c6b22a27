"""``CheckpointRuntime``: a task checkpoint run as ``mobivision.load`` runs an exported file (the training layer's
part of the inference API).

The task's export graph, the same graph ``tools/export.py`` writes, on ``device``; its metadata is what an export
would write (``TaskModule.file_metadata``), checked as a file's is. Registered as the entry point ``checkpoint`` of
the group ``mobivision.runtimes`` (``pyproject.toml``), which ``mobivision.load`` asks: the library below this layer
imports nothing of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mobivision.errors import ConfigError
from mobivision.inference.metadata import check_metadata
from mobivision.inference.sessions import parse_device
from mobivision.tasks.runner import load_task


class CheckpointRuntime:
    """A task checkpoint: ``metadata``, ``side_data`` and ``run(batch)`` as the exported files' runtimes have them."""

    def __init__(self, path: Path, *, device: str = "cpu") -> None:
        self.device = torch_device(device)
        task = load_task(path).eval()
        graph = task.export_graphs()["model"]
        self.metadata = json.loads(json.dumps(task.file_metadata(graph, checkpoint=path)))  # as a file stores them
        self.output_names = list(graph.output_names)
        check_metadata(path, self.metadata, self.output_names, source="checkpoint")
        self.module = graph.module.eval().to(self.device)
        self.side_data = _side_data(task)

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            outputs = self.module(torch.from_numpy(batch).to(self.device))
        outputs = outputs if isinstance(outputs, tuple | list) else (outputs,)
        arrays = [o.float().cpu().numpy() for o in outputs]
        return dict(zip(self.output_names, arrays, strict=True))


def _side_data(task: Any) -> dict[str, Any]:
    """Each head's ``side_data()`` (what an export writes beside the file), for the heads that declare a side file."""
    heads = getattr(task, "head_tasks", None) or {task.kind: task}
    return {name: head.side_data() for name, head in heads.items() if head.side_file}


def torch_device(device: str) -> Any:
    """``torch.device(device)`` for a device that is there (``parse_device``'s forms), else a ``ConfigError``."""
    gpu = parse_device(device)
    if gpu is None:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r}: no CUDA GPU is visible here (torch.cuda.is_available() is False); use device='cpu'"
        )
    count = torch.cuda.device_count()
    if gpu >= count:
        visible = "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
        raise ConfigError(
            f"device {device!r}: no such GPU; {count} CUDA GPU{'s' * (count > 1)} visible here ({visible})"
        )
    return torch.device(device)
