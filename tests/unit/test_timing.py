"""``mobivision.timing`` on a fake clock: each step moves the clock by a fixed amount, so every sample is known and
nothing real is timed."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from mobivision import timing


class FakeClock:
    """``perf_counter`` and ``sleep`` of the module, with a log of what happened in order."""

    def __init__(self) -> None:
        self.now = 0.0
        self.log: list[str] = []

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.log.append(f"sleep {seconds:g}")

    def step(self, name: str, *seconds: float) -> Callable[[], str]:
        """A step taking the next of ``seconds`` at each call (the last one again once they run out)."""
        left = list(seconds)

        def run() -> str:
            self.log.append(name)
            self.now += left.pop(0) if len(left) > 1 else left[0]
            return name

        return run


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(timing, "perf_counter", fake.perf_counter)
    monkeypatch.setattr(timing, "sleep", fake.sleep)
    return fake


def test_rounds_rotate_the_order() -> None:
    calls: list[str] = []
    steps = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = timing.time_steps(steps, warmup=1, repeats=4).samples
    assert "".join(calls) == "abc" + "abc" + "bca" + "cab" + "abc"  # warm-up round, then timed rounds
    assert {name: len(values) for name, values in times.items()} == {"a": 4, "b": 4, "c": 4}
    calls.clear()
    timing.time_steps({name: steps[name] for name in "ab"}, warmup=0, repeats=3)
    assert "".join(calls) == "ab" + "ba" + "ab"  # two steps: the order flips


def test_warm_up_calls_are_not_timed(clock: FakeClock) -> None:
    steps = {"a": clock.step("a", 100.0, 100.0, 1.0), "b": clock.step("b", 50.0, 2.0)}
    timings = timing.time_steps(steps, warmup=2, repeats=3)
    assert clock.log == ["a", "b", "b", "a", *"abbaab"]
    assert timings.samples == {"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}


def test_median_and_p90_are_numpys(clock: FakeClock) -> None:
    seconds = [5.0, 1.0, 4.0, 2.0, 9.0, 3.0]
    timings = timing.time_steps({"a": clock.step("a", *seconds)}, warmup=0, repeats=len(seconds))
    assert timings.samples == {"a": seconds}  # in call order
    assert timings.median("a") == np.median(seconds) == 3.5
    assert timings.p90("a") == np.percentile(seconds, 90)
    assert timings.medians() == {"a": 3.5}
    assert timing.median_seconds(clock.step("c", 3.0, 1.0, 2.0), warmup=0, repeats=3) == 2.0


def test_settle_sleeps_before_each_timed_call_only(clock: FakeClock) -> None:
    steps = {"a": clock.step("a", 1.0), "b": clock.step("b", 1.0)}
    timing.time_steps(steps, warmup=1, repeats=2, settle=0.1)
    assert clock.log == ["a", "b", "sleep 0.1", "a", "sleep 0.1", "b", "sleep 0.1", "b", "sleep 0.1", "a"]
    clock.log.clear()
    timing.time_steps(steps, warmup=0, repeats=1)
    assert clock.log == ["a", "b"]


def test_budget_stops_after_the_round_that_reaches_it(clock: FakeClock) -> None:
    timings = timing.time_steps({"a": clock.step("a", 0.75)}, warmup=1, repeats=5, budget=2.0)
    assert timings.samples == {"a": [0.75, 0.75, 0.75]}
    timings = timing.time_steps({"a": clock.step("a", 10.0)}, warmup=0, repeats=5, budget=2.0)
    assert timings.samples == {"a": [10.0]}  # at least one round


def test_a_cuda_device_is_synchronised_around_each_timed_call(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device: clock.log.append(f"sync {device}"))
    timing.time_steps({"a": clock.step("a", 1.0)}, warmup=1, repeats=2, device=torch.device("cuda:0"))
    assert clock.log == ["a", "sync cuda:0", "a", "sync cuda:0", "sync cuda:0", "a", "sync cuda:0"]
    clock.log.clear()
    assert timing.time_once(clock.step("b", 4.0), device=torch.device("cuda:0")) == (4.0, "b")
    assert clock.log == ["sync cuda:0", "b", "sync cuda:0"]


def test_no_synchronisation_on_the_cpu_or_without_a_device(clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device: clock.log.append("sync"))
    timing.time_steps({"a": clock.step("a", 1.0)}, warmup=0, repeats=2, device=torch.device("cpu"))
    assert timing.time_once(clock.step("b", 3.0)) == (3.0, "b")
    assert clock.log == ["a", "a", "b"]
