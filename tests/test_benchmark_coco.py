"""``tools/benchmark.py coco-scale`` on small COCO-shaped files: every row, equal stats between ours and raw."""

from __future__ import annotations

import json
import re
from pathlib import Path


def test_coco_scale_times_the_reader_and_both_engines_beside_the_raw_ones(run_tool, tmp_path: Path) -> None:
    out = tmp_path / "files"
    result = run_tool("benchmark", "coco-scale", "--images", "60", "--train-images", "150", "--detections", "20",
                      "--out", str(out), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line.split("|")[2:5] for line in result.stdout.splitlines() if "|" in line}
    train = json.loads((out / "instances_train.json").read_text())
    boxes = sum(not a["iscrowd"] for a in train["annotations"])  # training records leave crowds out
    assert f"read_coco, 150 images, {boxes:,} boxes" in rows
    for engine in ("faster_coco_eval", "pycocotools"):
        seconds, ratio, difference = (cell.strip() for cell in rows[f"evaluation, coco_evaluate(engine='{engine}')"])
        raw = float(rows[f"evaluation, raw {engine}"][0])
        assert abs(float(ratio) * raw - float(seconds)) <= 0.006 * (1 + float(ratio))  # printed to 2 decimals
        assert float(difference) <= 1e-12  # the same 12 stats as the library run on its own
    detections = json.loads((out / "detections.json").read_text())
    assert len(detections) == 60 * 20 and len(list((out / "val").iterdir())) == 60
    assert re.search(r"raw faster_coco_eval is \d+\.\dx faster than raw pycocotools", result.stdout)
