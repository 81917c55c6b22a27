"""Which CPU a figure was measured or checked on: its model and the instruction sets that pick the kernels.

Results differ between CPUs in two ways this module names: speed (AVX2, AVX-512, AMX) and, for INT8, arithmetic
(x86 CPUs without VNNI add pairs of u8 x s8 products in 16 bits, which can saturate; ``INT8_DOT_PRODUCT_FLAGS``).
PyTorch's own kernel level can be lowered with ``ATEN_CPU_CAPABILITY`` and oneDNN's with ``ONEDNN_MAX_CPU_ISA``;
``cpu_description`` says so when either is set, so a figure measured that way is not mistaken for the CPU's own.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The flags of /proc/cpuinfo that decide which kernels PyTorch, ONNX Runtime and OpenVINO run, with their names.
CPU_FLAGS = {
    "avx2": "AVX2",
    "fma": "FMA",
    "avx512f": "AVX-512",
    "avx512bw": "AVX-512BW",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512_bf16": "AVX-512 BF16",
    "amx_bf16": "AMX-BF16",
    "amx_int8": "AMX-INT8",
}
# x86 int8 dot-product instructions that accumulate in 32 bits: with one of them, 8-bit weights do not saturate.
INT8_DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
# Environment variables that cap the instruction set below the CPU's own (PyTorch's ATen, oneDNN).
ISA_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: the model from platform, no flags
        return ""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform`` knows."""
    lines = _cpuinfo().splitlines()
    model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    return model or platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags() -> list[str]:
    """Which of ``CPU_FLAGS`` this CPU has (Linux; empty elsewhere)."""
    lines = _cpuinfo().splitlines()
    flags = set(next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), []))
    return [flag for flag in CPU_FLAGS if flag in flags]


def has_int8_dot_product(flags: list[str] | None = None) -> bool:
    """Whether this CPU's int8 dot products accumulate in 32 bits (VNNI or AMX), so 8-bit weights are exact."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in INT8_DOT_PRODUCT_FLAGS)


def cpu_description(flags: list[str] | None = None) -> str:
    """E.g. ``AMD EPYC (AVX2, FMA, AVX-512, AVX-512 VNNI, no AMX)``, plus any instruction-set cap in force."""
    flags = cpu_flags() if flags is None else flags
    names = [CPU_FLAGS[flag] for flag in flags if flag != "avx512bw"]
    if flags and not any(flag.startswith("amx") for flag in flags):
        names.append("no AMX")
    if flags and not has_int8_dot_product(flags):
        names.append("no VNNI")
    text = f"{cpu_model()} ({', '.join(names)})" if names else cpu_model()
    caps = [f"{name}={os.environ[name]}" for name in ISA_CAPS if os.environ.get(name)]
    return f"{text}, kernels capped by {' '.join(caps)}" if caps else text
