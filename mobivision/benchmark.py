"""CPU speed of one network in several runtimes, measured in one interleaved run (``tools/benchmark.py``).

``interleaved_times`` is the clock every benchmark of the tool shares: the steps alternate (the order rotating
every repeat: ABC, BCA, CAB, ...) so that drift of a busy machine hits them alike.

``measure_latency`` is ``tools/benchmark.py latency``: batch-1 latency of a network in PyTorch eager, ONNX
Runtime fp32 and ONNX Runtime INT8 (static QDQ quantization calibrated on the images it is given), beside
timm's MobileNetV1 in eager and in ONNX Runtime, with the files' size on disk, multiply-adds and parameters.
The ONNX parts are ``mobivision.export``'s (``export_onnx``, ``quantize_int8``, ``onnx_session``): what is
timed is what a deployment runs. Torch and ONNX Runtime get the same number of threads (ORT: intra-op
threads, inter-op 1, all graph optimizations).
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mobivision.profiling import ModelCost, profile

# timm's MobileNetV1 of the same width (same network: same multiply-adds and parameters).
TIMM_PEERS = {1.0: "mobilenetv1_100", 1.25: "mobilenetv1_125"}
DEFAULT_TIMM_PEER = "mobilenetv1_100"
REFERENCE_ROW = "mobivision eager"
# Sleep before each timed call when there are worker threads: after a call ONNX Runtime's intra-op workers
# spin-wait for more work (measured: about 40 ms of a full core after each run with 2 threads) and OpenMP's
# a few ms; on a small machine that steals the cores the next runtime's threads need. One thread: no workers.
SETTLE_SECONDS = 0.1


def default_settle(threads: int) -> float:
    """``SETTLE_SECONDS`` with worker threads (``threads > 1``), else 0."""
    return SETTLE_SECONDS if threads > 1 else 0.0


CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")


def _rotated(names: list[str], repeat: int) -> list[str]:
    shift = repeat % len(names)
    return names[shift:] + names[:shift]


def interleaved_times(
    steps: dict[str, Callable[[], object]], *, warmup: int, repeats: int, settle: float = 0.0
) -> dict[str, list[float]]:
    """Seconds of each call of each step, the steps alternating and their order rotating every repeat.

    Rounds run ``ABC``, ``BCA``, ``CAB``, ...: each step takes every place in turn and none runs twice in a row
    (which would give it caches warmed by itself); with two steps this is ``AB``, ``BA``, ... ``settle``: seconds
    to sleep before each timed call, so that the worker threads of the previous step (OpenMP and ONNX Runtime
    spin-wait a while after their work) are idle when the clock starts.
    """
    names = list(steps)
    for repeat in range(warmup):
        for name in _rotated(names, repeat):
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for repeat in range(repeats):
        for name in _rotated(names, repeat):
            if settle > 0:
                time.sleep(settle)
            start = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - start)
    return times


def interleaved_medians(steps: dict[str, Callable[[], object]], *, warmup: int, repeats: int) -> dict[str, float]:
    """Median seconds of each step, measured by ``interleaved_times``."""
    times = interleaved_times(steps, warmup=warmup, repeats=repeats)
    return {name: statistics.median(values) for name, values in times.items()}


def onnx_files(path: str | Path) -> list[Path]:
    """An ONNX model file and the external-data files it names (weights over 2 GB, or the exporter's choice)."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    locations: dict[str, None] = {}
    tensors = list(model.graph.initializer)
    tensors += [a.t for node in model.graph.node for a in node.attribute if a.HasField("t")]
    for tensor in tensors:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entries = {entry.key: entry.value for entry in tensor.external_data}
            locations[entries["location"]] = None
    return [path, *(path.parent / location for location in locations)]


def files_size(files: Iterable[Path]) -> int:
    """Bytes on disk of ``files`` together."""
    return sum(Path(f).stat().st_size for f in files)


def cpu_flags() -> list[str]:
    """Which of the vector / int8 dot-product instruction sets that matter for ORT this CPU has (Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return [flag for flag in CPU_FLAGS if flag in flags]


def random_calibration(
    count: int, input_size: tuple[int, int], mean: Sequence[float], std: Sequence[float], *, seed: int = 0
) -> list[np.ndarray]:
    """``count`` batch-1 images of uniform random pixels in [0, 1], normalised like the model's inputs.

    Without a checkpoint there is no data to calibrate on; for latency the values do not matter.
    """
    generator = np.random.default_rng(seed)
    mean_ = np.asarray(mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std_ = np.asarray(std, dtype=np.float32).reshape(1, 3, 1, 1)
    return [
        ((generator.random((1, 3, *input_size), dtype=np.float32) - mean_) / std_).astype(np.float32)
        for _ in range(count)
    ]


@dataclass
class Runtime:
    """One thing to time: a call on a fixed batch-1 input, the files it loads and the network's cost."""

    name: str
    run: Callable[[], object]
    files: list[Path]
    cost: ModelCost
    details: dict[str, Any] = field(default_factory=dict)


def eager_runtime(name: str, model: nn.Module, x: torch.Tensor, file: Path, cost: ModelCost) -> Runtime:
    """``model`` in eval and inference mode; its state dict is written to ``file`` for the size on disk."""
    model.eval()
    torch.save(model.state_dict(), file)

    def run() -> None:
        with torch.inference_mode():
            model(x)

    return Runtime(name, run, [file], cost, {"engine": f"torch {torch.__version__}"})


def ort_runtime(name: str, path: Path, x: np.ndarray, cost: ModelCost, *, threads: int) -> Runtime:
    """An ONNX Runtime session of ``path`` (``mobivision.export.onnx_session``) on ``x``."""
    import onnxruntime as ort

    from mobivision.export import onnx_session

    session = onnx_session(path, threads=threads)
    feed = {session.get_inputs()[0].name: x}
    options = session.get_session_options()
    details = {
        "engine": f"onnxruntime {ort.__version__}",
        "providers": session.get_providers(),
        "intra_op_threads": options.intra_op_num_threads,
        "inter_op_threads": options.inter_op_num_threads,
        "graph_optimization_level": str(options.graph_optimization_level).rsplit(".", 1)[-1],
    }
    return Runtime(name, lambda: session.run(None, feed), onnx_files(path), cost, details)


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def latency_rows(runtimes: list[Runtime], *, warmup: int, repeats: int, settle: float = 0.0) -> list[dict[str, Any]]:
    """Time the runtimes interleaved; one row each with median / p90 ms, time ratio to the first, size, cost."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()  # no collection pause inside a timed call
    try:
        steps = {r.name: r.run for r in runtimes}
        times = interleaved_times(steps, warmup=warmup, repeats=repeats, settle=settle)
    finally:
        if enabled:
            gc.enable()
    reference = statistics.median(times[runtimes[0].name])
    rows = []
    for runtime in runtimes:
        median = statistics.median(times[runtime.name])
        rows.append(
            {
                "runtime": runtime.name,
                "median_ms": 1e3 * median,
                "p90_ms": 1e3 * _percentile(times[runtime.name], 90),
                "time_ratio": median / reference,
                "size_bytes": files_size(runtime.files),
                "files": [str(f) for f in runtime.files],
                "macs": runtime.cost.macs,
                "params": runtime.cost.params,
                **runtime.details,
            }
        )
    return rows


def _timm_peer(name: str, width: float) -> tuple[nn.Module | None, str, str]:
    """timm's MobileNetV1 (random weights) for the model ``name`` at ``width``; a note when none is built."""
    peer = TIMM_PEERS.get(width, DEFAULT_TIMM_PEER) if name == "mobilenet_v1" else DEFAULT_TIMM_PEER
    try:
        import timm
    except ImportError:
        return None, peer, "timm is not installed: no timm rows"
    return timm.create_model(peer, pretrained=False).eval(), peer, ""


@dataclass
class LatencyConfig:
    """What ``measure_latency`` times and how."""

    threads: int
    repeats: int = 50
    warmup: int = 10
    settle: float | None = None  # None: default_settle(threads)
    int8: bool = True
    timm: bool = True
    opset: int = 17
    per_channel: bool = True


def _onnx_runtimes(
    prefix: str, model: nn.Module, x: torch.Tensor, cost: ModelCost, out: Path, config: LatencyConfig, **export: Any
) -> tuple[Runtime, Path]:
    """``model`` exported to ``out / <prefix>_fp32.onnx`` and its ORT session; returns the runtime and the file."""
    from mobivision.export import export_onnx

    stem = prefix.split()[-1]
    path = export_onnx(model, out / f"{stem}_fp32.onnx", input_size=tuple(x.shape[-2:]), opset=config.opset, **export)
    return ort_runtime(f"{prefix} ORT fp32", path, x.numpy(), cost, threads=config.threads), path


def measure_latency(
    model: nn.Module,
    *,
    input_size: tuple[int, int],
    calibration: Iterable[np.ndarray],
    out_dir: str | Path,
    config: LatencyConfig,
    output_names: Sequence[str] = ("logits",),
    arch: tuple[str, float] = ("mobilenet_v1", 1.0),
) -> dict[str, Any]:
    """Batch-1 latency of ``model`` (eager, ORT fp32, ORT INT8) and of timm's peer (eager, ORT fp32).

    Writes ``mobivision.pt`` (state dict), ``mobivision_fp32.onnx``, ``mobivision_int8.onnx`` and the timm
    counterparts into ``out_dir``. ``calibration`` holds ``(1, 3, H, W)`` float32 inputs, already normalised.
    ``arch`` (name, width) picks timm's peer. Returns ``{"config", "rows", "notes", "files"}``, rows in table
    order; ``files`` names the fp32 and INT8 ONNX files of ``model``.
    """
    from mobivision.export import quantize_int8

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        model = model.eval()
        x = torch.randn(1, 3, *input_size, generator=torch.Generator().manual_seed(0))
        notes: list[str] = []
        cost = profile(model, input_size)
        runtimes = [eager_runtime(REFERENCE_ROW, model, x, out / "mobivision.pt", cost)]
        fp32_runtime, fp32 = _onnx_runtimes("mobivision", model, x, cost, out, config, output_names=list(output_names))
        runtimes.append(fp32_runtime)
        int8 = None
        if config.int8:
            int8 = quantize_int8(fp32, out / "mobivision_int8.onnx", calibration, per_channel=config.per_channel)
            runtimes.append(ort_runtime("mobivision ORT INT8", int8, x.numpy(), cost, threads=config.threads))
        peer_name = None
        if config.timm:
            peer, peer_name, note = _timm_peer(*arch)
            if peer is None:
                notes.append(note)
                peer_name = None
            else:
                peer_cost = profile(peer, input_size)
                prefix = f"timm {peer_name}"
                runtimes.append(eager_runtime(f"{prefix} eager", peer, x, out / f"{peer_name}.pt", peer_cost))
                runtimes.append(_onnx_runtimes(prefix, peer, x, peer_cost, out, config, output_names=["logits"])[0])
        load_before = _load_average()
        settle = default_settle(config.threads) if config.settle is None else config.settle
        rows = latency_rows(runtimes, warmup=config.warmup, repeats=config.repeats, settle=settle)
        report_config = {
            "input_size": list(input_size),
            "threads": config.threads,
            "torch_threads": torch.get_num_threads(),
            "repeats": config.repeats,
            "warmup": config.warmup,
            "settle_s": settle,
            "load_average_1min": [load_before, _load_average()],
            "opset": config.opset,
            "int8_per_channel": config.per_channel,
            "timm_model": peer_name,
            "torch": torch.__version__,
            "onnxruntime": _ort_version(),
            "cpus": os.cpu_count(),
            "cpu_flags": cpu_flags(),
        }
        files = {"fp32": str(fp32), "int8": None if int8 is None else str(int8)}
        return {"config": report_config, "rows": rows, "notes": notes, "files": files}
    finally:
        torch.set_num_threads(previous_threads)


def _load_average() -> float | None:
    """The machine's 1-minute load average (None where the OS has none): how busy it was while timing."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def _ort_version() -> str:
    import onnxruntime as ort

    return ort.__version__
