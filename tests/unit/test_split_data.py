"""``mobivision.tasks.split_data.write_once``: parallel jobs writing the same synthetic data take turns."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from mobivision.tasks.split_data import write_once


def test_concurrent_writers_take_turns(tmp_path: Path) -> None:
    events: list[str] = []

    def writer(root: Path, *, name: str) -> Path:
        events.append(f"start {name}")
        time.sleep(0.2)
        events.append(f"end {name}")
        return root

    jobs = [threading.Thread(target=write_once, args=(writer, tmp_path / "data"), kwargs={"name": n}) for n in "ab"]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert len(events) == 4
    assert events[0].startswith("start") and events[1] == events[0].replace("start", "end")  # no interleaving
    assert (tmp_path / ".data.lock").exists()
