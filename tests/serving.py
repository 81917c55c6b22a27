"""What the tests of ``mobivision serve`` share: a smooth random photo, and ``tools/serve.py`` running as a user
starts it (a separate process on a free loopback port, one intra-op thread)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def smooth_photo(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random RGB picture (blobs, not noise), so a detector's scores spread."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serving(model: Path, *options: str, timeout: float = 60) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``python tools/serve.py MODEL --port N *options`` run in the model's folder (so the page names it briefly),
    once its page answers: ``(url, process)``; stopped afterwards. ``AssertionError`` with its output if it exits
    or does not answer within ``timeout`` seconds."""
    port = free_port()
    command = [sys.executable, str(REPO / "tools" / "serve.py"), model.name, "--port", str(port), *options]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        command, cwd=model.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"tools/serve.py exited with {process.returncode}:\n{process.stdout.read()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"tools/serve.py did not answer within {timeout:g} s")
            time.sleep(0.2)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
