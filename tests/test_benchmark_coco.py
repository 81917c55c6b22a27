"""``tools/benchmark.py coco-scale`` on small COCO-shaped files: every row, equal stats between ours and raw, the
pipeline rows beside torchvision's and the JPEGs they read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from PIL import Image

PIPELINE_IMAGES = 6


def test_coco_scale_times_the_reader_engines_and_pipelines_beside_their_peers(run_tool, tmp_path: Path) -> None:
    out = tmp_path / "files"
    result = run_tool("benchmark", "coco-scale", "--images", "60", "--train-images", "150", "--detections", "20",
                      "--pipeline-images", str(PIPELINE_IMAGES), "--out", str(out), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {
        line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:6]]
        for line in result.stdout.splitlines()
        if "|" in line
    }
    train = json.loads((out / "instances_train.json").read_text())
    boxes = sum(not a["iscrowd"] for a in train["annotations"])  # training records leave crowds out
    assert f"read_coco, 150 images, {boxes:,} boxes" in rows
    for engine in ("faster_coco_eval", "pycocotools"):
        seconds, rate, speedup, difference = rows[f"evaluation, coco_evaluate(engine='{engine}')"]
        raw = float(rows[f"evaluation, raw {engine}"][0])
        assert rate == "" and speedup.endswith("x")
        # ours speed / raw speed = raw time / our time, printed to 2 decimals (times to 3): each printed value is
        # off by up to half its last digit, so the product is off by up to 0.005 t + 0.0005 s, the raw time by 0.0005
        ratio, ours = float(speedup[:-1]), float(seconds)
        assert abs(ratio * ours - raw) <= 0.005 * ours + 0.0005 * ratio + 0.0005 + 1e-9
        assert float(difference) <= 1e-12  # the same 12 stats as the library run on its own
    detections = json.loads((out / "detections.json").read_text())
    assert len(detections) == 60 * 20 and len(list((out / "val").iterdir())) == 60
    assert re.search(r"raw faster_coco_eval is \d+\.\dx faster than raw pycocotools", result.stdout)
    _assert_pipeline_rows(rows)
    _assert_real_size_jpegs(out / "val")


def _assert_pipeline_rows(rows: dict[str, list[str]]) -> None:
    for label, resolution in (("SSD", 300), ("SSDLite", 320)):
        step = f"{label} train pipeline, {PIPELINE_IMAGES} JPEGs 640x480 -> {resolution} px, 1 worker"
        peer_seconds, peer_rate, peer_speedup, _ = rows[f"{step}: torchvision reference v2"]
        seconds, rate, speedup, _ = rows[f"{step}: ours"]
        assert peer_speedup == "" and speedup.endswith("x")
        for spent, images_per_second in ((seconds, rate), (peer_seconds, peer_rate)):
            # seconds printed to 3 decimals, images/s to 1
            tolerance = 0.0005 * float(images_per_second) + 0.05 * float(spent) + 1e-9
            assert abs(float(spent) * float(images_per_second) - PIPELINE_IMAGES) <= tolerance
        # ours speed / torchvision speed, a ratio printed to 2 decimals, recomputed from rates printed to 1
        ratio, ours, peer = float(speedup[:-1]), float(rate), float(peer_rate)
        assert abs(ratio - ours / peer) <= ratio_tolerance(ours, peer, rate_digits=1, ratio_digits=2)


def ratio_tolerance(numerator: float, denominator: float, *, rate_digits: int, ratio_digits: int) -> float:
    """How far a printed ratio R (rounded to ``ratio_digits``) can be from n / d of two printed rates (each rounded
    to ``rate_digits``, so off by up to e = half their last digit): the true rates lie in [n - e, n + e] and
    [d - e, d + e], so the true ratio is within e (n + d) / (d (d - e)) of n / d (its largest move, both errors
    against each other), and R within half its last digit of the true ratio. E.g. 66.8 / 17.6 = 3.795 printed
    as 3.81: 0.0145 apart, within 0.0187 (a bound of 0.006 + 0.2% failed there)."""
    e = 0.5 * 10.0**-rate_digits
    return 0.5 * 10.0**-ratio_digits + e * (numerator + denominator) / (denominator * (denominator - e)) + 1e-9


def test_the_ratio_tolerance_covers_every_rounding_of_the_printed_figures() -> None:
    """Exhaustive over true rates on a fine grid around two printed ones: the recomputed ratio never falls outside
    the tolerance, and the bound is tight (a tenth less is exceeded somewhere)."""
    worst = 0.0
    for shown_ours, shown_peer in ((66.8, 17.6), (3.2, 1.1), (240.0, 99.9)):
        true_ours = shown_ours + np.linspace(-0.05, 0.05, 201)[:, None]
        true_peer = shown_peer + np.linspace(-0.05, 0.05, 201)[None, :]
        printed_ratio = np.round(true_ours / true_peer, 2)
        gap = np.abs(printed_ratio - shown_ours / shown_peer).max()
        tolerance = ratio_tolerance(shown_ours, shown_peer, rate_digits=1, ratio_digits=2)
        assert gap <= tolerance, (shown_ours, shown_peer, gap, tolerance)
        worst = max(worst, gap / tolerance)
    assert worst > 0.9


def _assert_real_size_jpegs(image_dir: Path) -> None:
    written = [path for path in sorted(image_dir.iterdir()) if path.stat().st_size > 0]
    assert len(written) == PIPELINE_IMAGES  # the other images stay empty placeholders
    for path in written:
        assert path.stat().st_size > 30_000, path
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (640, 480))
