"""Batch-1 CPU latency of one network across runtimes, measured in one interleaved run (``tools/benchmark.py latency``).

``measure_latency`` times the network in PyTorch eager, ONNX Runtime fp32 and, where OpenVINO is installed, OpenVINO
on the same fp32 ONNX file (f32 arithmetic; and, where the CPU has native bf16, OpenVINO's default precision there:
bf16), then INT8: ONNX Runtime's static QDQ quantization, an OpenVINO IR quantized by NNCF (both calibrated on the
images it is given) and OpenVINO on ONNX Runtime's QDQ file. Beside it timm's MobileNetV1 of the same width, the
same network (equal multiply-adds and parameters), in eager, ONNX Runtime and OpenVINO fp32; where timm has no such
width there are no peer rows. Each row has the files' size on disk, multiply-adds, parameters, the GFLOP/s achieved
(2 x multiply-adds / median) and its time relative to eager and to the fastest row; ``latency_summary`` names the
fastest row, the recommended CPU path (our fastest row) and each runtime's INT8 speed-up over its fp32. The files
are ``mobivision.export``'s (``export_onnx``, ``quantize_int8``, ``openvino_ir.quantize_openvino``) and the calls
``mobivision.profiling``'s (``onnxruntime_call``, ``openvino_call``): what is timed is what a deployment runs; the
clock is ``mobivision.timing.time_steps``. Torch, ONNX Runtime and OpenVINO get the same number of threads (ORT:
intra-op threads, inter-op 1, all graph optimizations; OpenVINO: ``INFERENCE_NUM_THREADS``, latency hint).
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mobivision.machine import cpu_description, cpu_flags
from mobivision.profiling import ModelCost, onnxruntime_call, openvino_call, profile
from mobivision.timing import time_steps

# timm's plain MobileNetV1 at width N / 100 (``mobilenetv1_100h`` has an extra head convolution: another network).
TIMM_MOBILENET_V1 = re.compile(r"mobilenetv1_(\d+)")
OURS = "mobivision"
REFERENCE_ROW = f"{OURS} eager"
BF16_ROW = f"{OURS} OpenVINO bf16 (default)"
# Sleep before each timed call when there are worker threads: after a call ONNX Runtime's intra-op workers
# spin-wait for more work (measured: about 40 ms of a full core after each run with 2 threads) and OpenMP's
# a few ms; on a small machine that steals the cores the next runtime's threads need. One thread: no workers.
SETTLE_SECONDS = 0.1


def default_settle(threads: int) -> float:
    """``SETTLE_SECONDS`` with worker threads (``threads > 1``), else 0."""
    return SETTLE_SECONDS if threads > 1 else 0.0


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
    """An ONNX Runtime session of ``path`` (``mobivision.profiling.onnxruntime_call``) on ``x``."""
    import onnxruntime as ort

    run, session = onnxruntime_call(path, x, threads=threads)
    options = session.get_session_options()
    details = {
        "engine": f"onnxruntime {ort.__version__}",
        "providers": session.get_providers(),
        "intra_op_threads": options.intra_op_num_threads,
        "inter_op_threads": options.inter_op_num_threads,
        "graph_optimization_level": str(options.graph_optimization_level).rsplit(".", 1)[-1],
    }
    return Runtime(name, run, onnx_files(path), cost, details)


def openvino_runtime(
    name: str, path: Path, x: np.ndarray, cost: ModelCost, *, threads: int, precision: str | None = "f32"
) -> Runtime:
    """``path`` (ONNX file or IR) compiled by OpenVINO (``mobivision.profiling.openvino_call``) on ``x``;
    ``precision`` None: OpenVINO's default for the CPU."""
    import openvino as ov

    from mobivision.export.openvino_ir import bin_file

    run, compiled = openvino_call(path, x, threads=threads, precision=precision)
    details = {
        "engine": f"openvino {ov.__version__}",
        "inference_precision": compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name(),
        "inference_threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
    }
    files = [path, bin_file(path)] if path.suffix == ".xml" else onnx_files(path)
    return Runtime(name, run, files, cost, details)


def openvino_has_bf16() -> bool:
    """Whether OpenVINO's CPU plugin has native bf16 here (then bf16 is its default inference precision)."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def latency_rows(runtimes: list[Runtime], *, warmup: int, repeats: int, settle: float = 0.0) -> list[dict[str, Any]]:
    """Time the runtimes interleaved; one row each with median / p90 ms, time ratio to the first and to the fastest,
    GFLOP/s achieved (2 x multiply-adds / median), size and cost."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()  # no collection pause inside a timed call
    try:
        steps = {r.name: r.run for r in runtimes}
        timings = time_steps(steps, warmup=warmup, repeats=repeats, settle=settle)
    finally:
        if enabled:
            gc.enable()
    medians = timings.medians()
    reference, fastest = medians[runtimes[0].name], min(medians.values())
    return [
        {
            "runtime": runtime.name,
            "median_ms": 1e3 * medians[runtime.name],
            "p90_ms": 1e3 * timings.p90(runtime.name),
            "time_ratio": medians[runtime.name] / reference,
            "time_vs_fastest": medians[runtime.name] / fastest,
            "gflop_per_s": 2 * runtime.cost.macs / medians[runtime.name] / 1e9,
            "size_bytes": files_size(runtime.files),
            "files": [str(f) for f in runtime.files],
            "macs": runtime.cost.macs,
            "params": runtime.cost.params,
            **runtime.details,
        }
        for runtime in runtimes
    ]


# Per runtime, the two rows whose time ratio is its INT8 speed-up: (fp32 row, INT8 row).
INT8_PAIRS = {
    "ONNX Runtime": (f"{OURS} ORT fp32", f"{OURS} ORT INT8"),
    "OpenVINO": (f"{OURS} OpenVINO fp32", f"{OURS} OpenVINO INT8"),
}


def latency_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest row, the recommended CPU path (our fastest row) and, per runtime with both rows, the INT8
    speed-up (fp32 median / INT8 median: above 1, INT8 is faster)."""
    medians = {row["runtime"]: row["median_ms"] for row in rows}
    fastest = min(rows, key=lambda row: row["median_ms"])
    ours = min((row for row in rows if row["runtime"].startswith(OURS)), key=lambda row: row["median_ms"])
    speedups = {
        runtime: medians[fp32] / medians[int8]
        for runtime, (fp32, int8) in INT8_PAIRS.items()
        if fp32 in medians and int8 in medians
    }
    return {
        "fastest": {"runtime": fastest["runtime"], "median_ms": fastest["median_ms"]},
        "recommended_cpu_path": {
            "runtime": ours["runtime"],
            "median_ms": ours["median_ms"],
            "time_vs_fastest": ours["time_vs_fastest"],
        },
        "int8_speedup": speedups,
    }


def timm_mobilenet_v1_widths() -> dict[float, str]:
    """timm's MobileNetV1 models by width multiplier (``mobilenetv1_100``: 1.0); ImportError without timm."""
    import timm

    matches = (TIMM_MOBILENET_V1.fullmatch(name) for name in timm.list_models("mobilenetv1_*"))
    return {int(match.group(1)) / 100: match.string for match in matches if match}


def timm_peer_name(name: str, width: float) -> tuple[str | None, str]:
    """timm's model of the same architecture and width as ours (``name`` at ``width``), or None and why not."""
    if name != "mobilenet_v1":
        return None, f"timm's peer is MobileNetV1 and this is {name}: no peer rows"
    try:
        peers = timm_mobilenet_v1_widths()
    except ImportError:
        return None, "timm is not installed: no peer rows"
    if width not in peers:
        widths = ", ".join(str(w) for w in sorted(peers))
        return None, f"timm has no MobileNetV1 at width {width} (it has widths {widths}): no peer rows"
    return peers[width], ""


@dataclass
class LatencyConfig:
    """What ``measure_latency`` times and how."""

    threads: int
    repeats: int = 50
    warmup: int = 10
    settle: float | None = None  # None: default_settle(threads)
    int8: bool = True
    timm: bool = True
    openvino: bool = True
    opset: int = 17
    per_channel: bool = True
    int8_target: str = "any"  # quantize.INT8_TARGETS


@dataclass
class Network:
    """One network to time: its rows' name prefix, the model, its cost and the folder its files go to."""

    prefix: str
    model: nn.Module
    cost: ModelCost
    out: Path
    output_names: Sequence[str]

    @property
    def stem(self) -> str:
        """The files' name stem: ``mobivision`` or timm's model name."""
        return self.prefix.split()[-1]


class OpenVinoRows:
    """Which OpenVINO rows can be timed here, with a note for each kind left out."""

    def __init__(self, wanted: bool) -> None:
        from mobivision.export import openvino_ir

        self.notes: list[str] = []
        self.enabled = wanted and openvino_ir.available()
        self.int8 = self.enabled and openvino_ir.available(quantization=True)
        self.bf16 = self.enabled and openvino_has_bf16()
        if wanted and not self.enabled:
            self.notes.append(f"OpenVINO is not installed: no OpenVINO rows ({openvino_ir.INSTALL})")
        elif self.enabled and not self.int8:
            self.notes.append(f"NNCF is not installed: no OpenVINO INT8 row ({openvino_ir.INSTALL})")


def _fp32_runtimes(
    network: Network, x: torch.Tensor, config: LatencyConfig, openvino: OpenVinoRows
) -> tuple[list[Runtime], Path]:
    """Eager and the network exported to ``<stem>_fp32.onnx`` in ONNX Runtime and (where enabled) OpenVINO f32;
    returns the runtimes and the ONNX file."""
    from mobivision.export import export_onnx

    prefix, cost, image = network.prefix, network.cost, x.numpy()
    path = export_onnx(
        network.model,
        network.out / f"{network.stem}_fp32.onnx",
        input_size=tuple(x.shape[-2:]),
        opset=config.opset,
        output_names=list(network.output_names),
    )
    runtimes = [
        eager_runtime(f"{prefix} eager", network.model, x, network.out / f"{network.stem}.pt", cost),
        ort_runtime(f"{prefix} ORT fp32", path, image, cost, threads=config.threads),
    ]
    if openvino.enabled:
        runtimes.append(openvino_runtime(f"{prefix} OpenVINO fp32", path, image, cost, threads=config.threads))
    return runtimes, path


def _int8_runtimes(
    network: Network,
    fp32: Path,
    x: np.ndarray,
    calibration: list[np.ndarray],
    config: LatencyConfig,
    openvino: OpenVinoRows,
) -> tuple[list[Runtime], dict[str, str | None]]:
    """ORT INT8 (QDQ), OpenVINO INT8 (NNCF IR) and OpenVINO on the QDQ file; the INT8 files (None: not written)."""
    from mobivision.export import quantize_int8
    from mobivision.export.openvino_ir import quantize_openvino

    threads, cost, out, stem = config.threads, network.cost, network.out, network.stem
    qdq = quantize_int8(
        fp32, out / f"{stem}_int8.onnx", calibration, per_channel=config.per_channel, target=config.int8_target
    )
    runtimes = [ort_runtime(f"{network.prefix} ORT INT8", qdq, x, cost, threads=threads)]
    ir = None
    if openvino.int8:
        ir = quantize_openvino(fp32, out / f"{stem}_int8.xml", calibration, target=config.int8_target)
        runtimes.append(openvino_runtime(f"{network.prefix} OpenVINO INT8", ir, x, cost, threads=threads))
    if openvino.enabled:
        name = f"{network.prefix} OpenVINO on ORT's INT8 file"
        runtimes.append(openvino_runtime(name, qdq, x, cost, threads=threads))
    return runtimes, {"int8": str(qdq), "openvino_int8": None if ir is None else str(ir)}


def _our_runtimes(
    network: Network, x: torch.Tensor, calibration: list[np.ndarray], config: LatencyConfig, openvino: OpenVinoRows
) -> tuple[list[Runtime], dict[str, str | None]]:
    """Our rows in table order (fp32, then INT8), and the files the INT8 metric scores."""
    runtimes, fp32 = _fp32_runtimes(network, x, config, openvino)
    if openvino.bf16:
        runtimes.append(
            openvino_runtime(BF16_ROW, fp32, x.numpy(), network.cost, threads=config.threads, precision=None)
        )
    files: dict[str, str | None] = {"fp32": str(fp32), "int8": None, "openvino_int8": None}
    if config.int8:
        int8_runtimes, int8_files = _int8_runtimes(network, fp32, x.numpy(), calibration, config, openvino)
        runtimes += int8_runtimes
        files |= int8_files
    return runtimes, files


def _peer_runtimes(
    arch: tuple[str, float], x: torch.Tensor, out: Path, config: LatencyConfig, openvino: OpenVinoRows
) -> tuple[list[Runtime], str | None, str]:
    """timm's like-for-like peer in eager, ORT fp32 and OpenVINO fp32; its name, or none and a note why."""
    peer_name, note = timm_peer_name(*arch)
    if peer_name is None:
        return [], None, note
    import timm

    peer = timm.create_model(peer_name, pretrained=False).eval()
    network = Network(f"timm {peer_name}", peer, profile(peer, tuple(x.shape[-2:])), out, ["logits"])
    return _fp32_runtimes(network, x, config, openvino)[0], peer_name, ""


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
    """Batch-1 latency of ``model`` (eager, ORT fp32, OpenVINO fp32 / bf16, ORT INT8, OpenVINO INT8, OpenVINO on
    ORT's INT8 file) and of timm's like-for-like peer (eager, ORT fp32, OpenVINO fp32).

    Writes ``mobivision.pt`` (state dict), ``mobivision_fp32.onnx``, ``mobivision_int8.onnx``,
    ``mobivision_int8.xml`` / ``.bin`` and the timm counterparts into ``out_dir``. ``calibration`` holds
    ``(1, 3, H, W)`` float32 inputs, already normalised (the same for both INT8 files). ``arch`` (name, width)
    picks timm's peer. Returns ``{"config", "rows", "summary", "notes", "files"}``, rows in table order;
    ``files`` names the fp32 ONNX, INT8 ONNX and OpenVINO INT8 IR of ``model`` (None: not written).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        x = torch.randn(1, 3, *input_size, generator=torch.Generator().manual_seed(0))
        openvino = OpenVinoRows(config.openvino)
        network = Network(OURS, model.eval(), profile(model, input_size), out, output_names)
        runtimes, files = _our_runtimes(network, x, list(calibration), config, openvino)
        notes = list(openvino.notes)
        peer_name = None
        if config.timm:
            peer_runtimes, peer_name, note = _peer_runtimes(arch, x, out, config, openvino)
            runtimes += peer_runtimes
            notes += [note] if note else []
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
            "int8_target": config.int8_target,
            "timm_model": peer_name,
            "torch": torch.__version__,
            "onnxruntime": _ort_version(),
            "openvino": _openvino_version() if openvino.enabled else None,
            "openvino_bf16": openvino.bf16,
            "cpus": os.cpu_count(),
            "cpu_flags": cpu_flags(),
            "cpu": cpu_description(),
        }
        summary = latency_summary(rows)
        return {"config": report_config, "rows": rows, "summary": summary, "notes": notes, "files": files}
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


def _openvino_version() -> str:
    import openvino as ov

    return ov.__version__
