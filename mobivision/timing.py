"""The clock every benchmark and estimate of the package shares: warm-up, interleaved rounds, device
synchronisation, median and p90.

``time_steps`` runs untimed warm-up rounds, then timed rounds of several named steps, their order rotating every
round (``ABC``, ``BCA``, ``CAB``, ...) so that drift of a busy machine hits them alike. Given a CUDA ``device``, each
timed call starts and stops on a finished device (kernels run asynchronously). ``time_once`` is one timed call (a
whole phase), ``median_seconds`` one step alone. Torch is imported only to synchronise a CUDA device.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter, sleep
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class Timings:
    """Seconds of every timed call of each step, in call order."""

    samples: dict[str, list[float]]

    def median(self, name: str) -> float:
        return statistics.median(self.samples[name])

    def p90(self, name: str) -> float:
        return float(np.percentile(np.asarray(self.samples[name]), 90))

    def medians(self) -> dict[str, float]:
        return {name: self.median(name) for name in self.samples}


def _synchronize(device: Any) -> None:
    """Wait for ``device``'s queued work where it runs asynchronously (CUDA); nothing on the CPU or None."""
    if device is not None and device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def time_once(call: Callable[[], T], *, device: Any = None) -> tuple[float, T]:
    """Seconds of one call of ``call``, from and to a finished ``device`` (a ``torch.device``; None: no device),
    and what it returned."""
    _synchronize(device)
    start = perf_counter()
    value = call()
    _synchronize(device)
    return perf_counter() - start, value


def _rotated(names: list[str], round_: int) -> list[str]:
    shift = round_ % len(names)
    return names[shift:] + names[:shift]


def time_steps(
    steps: dict[str, Callable[[], object]],
    *,
    warmup: int,
    repeats: int,
    settle: float = 0.0,
    device: Any = None,
    budget: float | None = None,
) -> Timings:
    """Seconds of each call of each step: ``warmup`` untimed rounds, then ``repeats`` timed ones.

    Every round calls each step once, the order rotating (``ABC``, ``BCA``, ``CAB``, ...; two steps: ``AB``,
    ``BA``, ...): each step takes every place in turn and none runs twice in a row (which would give it caches
    warmed by itself). ``settle``: seconds to sleep before each timed call, so that the worker threads of the
    previous step (OpenMP and ONNX Runtime spin-wait a while after their work) are idle when the clock starts.
    ``device``: as in ``time_once``. ``budget``: no further round once the timed calls add up to this many
    seconds (at least one round).
    """
    names = list(steps)
    for round_ in range(warmup):
        for name in _rotated(names, round_):
            steps[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        if budget is not None and sum(map(sum, samples.values())) >= budget:
            break
        for name in _rotated(names, round_):
            if settle > 0:
                sleep(settle)
            samples[name].append(time_once(steps[name], device=device)[0])
    return Timings(samples)


def median_seconds(call: Callable[[], object], **options: Any) -> float:
    """Median seconds of ``call`` alone, timed by ``time_steps`` with ``options``."""
    return time_steps({"call": call}, **options).median("call")
