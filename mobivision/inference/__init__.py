"""Use a trained model: ``predictor = mobivision.load("best.ckpt" or "model.onnx"); result = predictor("photo.jpg")``.

A checkpoint runs on PyTorch (its export graph), an exported ``.onnx`` (fp32 or INT8) on ONNX Runtime and an exported
OpenVINO IR ``.xml`` (fp32, fp16 weights or INT8) on OpenVINO, with numpy, Pillow and OpenCV only: loading and
predicting from an exported file imports neither torch nor Lightning. The same
images give the same results either way (pre-processing and decoding are shared). ARCHITECTURE.md, "Inference".
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

from mobivision.data.images import DEFAULT_MAX_IMAGE_MPX, check_max_image_mpx
from mobivision.errors import ConfigError, WeightFileError
from mobivision.inference.predictor import Predictor
from mobivision.inference.results import Attributes, Classes, Detections, HeadResult, Location, Result, Values

__all__ = [
    "Attributes",
    "Classes",
    "Detections",
    "HeadResult",
    "Location",
    "Predictor",
    "Result",
    "Values",
    "load",
    "resolve_checkpoint_path",
]


def resolve_checkpoint_path(path: str | Path) -> Path:
    """``path`` itself, unless it is a folder: then the best checkpoint of that run (``<run>/checkpoints/best.ckpt``)
    or of the newest run in that folder of runs (``runs/demo_geo``: run folders are named by their start time, so
    the last name is the newest)."""
    folder = Path(path)
    if not folder.is_dir():
        return folder
    best = Path("checkpoints") / "best.ckpt"
    if (folder / best).is_file():
        return folder / best
    runs = sorted(child for child in folder.iterdir() if (child / best).is_file())
    if not runs:
        raise WeightFileError(f"{folder}: a folder, but neither a run ({best}) nor a folder of runs")
    return runs[-1] / best


def load(
    path: str | Path,
    *,
    device: str = "cpu",
    batch_size: int = 16,
    threads: int | None = None,
    max_image_mpx: float = DEFAULT_MAX_IMAGE_MPX,
) -> Predictor:
    """A predictor for a task checkpoint (``.ckpt``; a run folder or a folder of runs: its newest run's best
    checkpoint), an exported ``.onnx`` or an exported OpenVINO IR (``.xml``, its ``.bin`` beside it; CPU, f32
    arithmetic). ``device``: ``cpu``, ``cuda``, ``cuda:1``... (checkpoints and ONNX); ``threads``: ONNX Runtime's
    intra-op or OpenVINO's inference threads (default: the runtime's choice); ``max_image_mpx``: larger images are
    refused (``ImageTooLargeError``), a file's from its header before it is decoded.

    Raises:
        ConfigError: ``device`` is not one of those forms, or names a GPU that is not there.
        WeightFileError: The file is missing, unreadable, or its metadata lacks what prediction needs.
    """
    from mobivision.inference.sessions import parse_device

    parse_device(device)  # its form, before anything is read; whether that GPU is there: the runtime's check
    options = {"batch_size": batch_size, "max_image_mpx": check_max_image_mpx(max_image_mpx)}
    path = resolve_checkpoint_path(path)
    if not path.is_file():
        raise WeightFileError(f"model file not found: {path}")
    if path.suffix == ".onnx":
        from mobivision.inference.runtimes import OnnxRuntime

        return Predictor(OnnxRuntime(path, device=device, threads=threads), **options)
    if path.suffix == ".xml":
        if device != "cpu":
            raise ConfigError(f"device {device!r}: an OpenVINO IR runs on the CPU here (device='cpu')")
        from mobivision.inference.runtimes import OpenVinoRuntime

        return Predictor(OpenVinoRuntime(path, threads=threads), **options)
    return Predictor(_checkpoint_runtime()(path, device=device), **options)


def _checkpoint_runtime() -> type:
    """The runtime of task checkpoints, registered by the training layer (entry point ``checkpoint`` of the group
    ``mobivision.runtimes``: ``mobivision.tasks.checkpoint_runtime.CheckpointRuntime``)."""
    found = [entry for entry in entry_points(group="mobivision.runtimes") if entry.name == "checkpoint"]
    if not found:
        raise WeightFileError(
            "no runtime for task checkpoints is registered (entry point 'checkpoint' of the group "
            "'mobivision.runtimes'): mobivision is not installed (pip install -e . from the repository)"
        )
    return found[0].load()
