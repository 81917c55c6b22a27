"""TorchScript export by tracing (``torch.jit.trace``), for C++ applications on libtorch.

PyTorch 2.14 deprecates TorchScript: ``torch.jit.trace``, ``save`` and ``load`` emit a ``FutureWarning``
("switch to torch.compile or torch.export"); they still work and the warnings are silenced here. A traced
graph keeps the batch axis symbolic (reshapes are recorded from the input's shape), so any batch size runs;
the spatial size is the traced one where the graph holds constants of it (a detector's anchors).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mobivision.errors import ExportError


def export_torchscript(model: nn.Module, path: str | Path, *, input_size: tuple[int, int]) -> Path:
    """Trace ``model`` (eval mode) on a ``[2, 3, H, W]`` example and save it to ``path``.

    Raises:
        ExportError: Tracing or saving failed.
        OSError: The file cannot be written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = (int(v) for v in input_size)
    example = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(0))
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            model.eval()(example)  # fill first-use caches (a detector's anchors) eagerly, see mobile.warm_up
            traced = torch.jit.trace(model.eval(), (example,), check_trace=False, strict=False)
            with path.open("wb") as file:  # written by Python: a refused or failed write is the OSError it is
                torch.jit.save(traced, file)
    except OSError:
        raise
    except Exception as exc:
        raise ExportError(f"TorchScript export failed: {type(exc).__name__}: {exc}") from exc
    return path


def load_torchscript(path: str | Path) -> Any:
    """A saved TorchScript module (CPU), its deprecation warning silenced."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"TorchScript file not found: {path}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:
            raise ExportError(f"cannot load TorchScript file {path}: {type(exc).__name__}: {exc}") from exc


def torchscript_runner(path: str | Path):
    """The saved module as a function of a numpy batch returning a list of numpy outputs."""
    module = load_torchscript(path)

    def run(images: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            outputs = module(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)))
        outputs = outputs if isinstance(outputs, list | tuple) else (outputs,)
        return [o.numpy() for o in outputs]

    return run
