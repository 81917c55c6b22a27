"""The README's demo commands run as written: each demo's ``tools/train.py experiment=<demo>`` in its fast form
(``debug=fast``: two batches, the data written in full) and then its predict line exactly as the README prints it,
in one fresh folder as a newcomer would run them. The commands are read from README.md, so an edited line is
tested as edited."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TRAIN = re.compile(r"^python tools/train\.py experiment=(demo\w*)\s*(#.*)?$")
PREDICT = re.compile(r"^python tools/predict\.py runs/(demo\w*) ")
PICTURES = {"demo", "demo_attributes", "demo_multitask"}  # the demos whose predictions draw a picture

# Trains six demos for two batches each (their data written in full) and predicts: minutes.
pytestmark = pytest.mark.slow


def readme_commands() -> tuple[set[str], dict[str, str]]:
    """The demos the README trains (``experiment=<demo>`` alone on a line) and each demo's predict line."""
    lines = [
        line.strip()
        for block in re.findall(r"```bash\n(.*?)```", README.read_text(), re.S)
        for line in block.splitlines()
    ]
    trained = {match.group(1) for line in lines if (match := TRAIN.match(line))}
    predicted = {match.group(1): line.split("#")[0].strip() for line in lines if (match := PREDICT.match(line))}
    return trained, predicted


def test_every_demo_has_a_train_and_a_predict_line_in_the_readme() -> None:
    trained, predicted = readme_commands()
    demos = {path.stem for path in (README.parent / "configs" / "experiment").glob("demo*.yaml")}
    assert trained == demos and set(predicted) == demos, (trained, set(predicted))


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory, run_tool) -> Path:
    """A fresh folder in which every demo was trained in its fast form."""
    folder = tmp_path_factory.mktemp("newcomer")
    for demo in sorted(readme_commands()[0]):
        done = run_tool("train", f"experiment={demo}", "debug=fast", "progress=plain", cwd=folder, timeout=900)
        assert done.returncode == 0, (demo, done.stderr[-3000:])
    return folder


@pytest.mark.parametrize("demo", sorted(readme_commands()[1]))
def test_the_readmes_predict_line_runs_as_written(newcomer: Path, demo: str, run_tool) -> None:
    line = readme_commands()[1][demo]
    program, script, *args = shlex.split(line)
    assert (program, script) == ("python", "tools/predict.py")
    done = run_tool("predict", *args, cwd=newcomer)
    assert done.returncode == 0, done.stderr[-3000:]
    out = newcomer / args[args.index("--out") + 1]
    source = newcomer / args[1]
    images = [source] if source.is_file() else [p for p in source.rglob("*") if p.suffix in (".jpg", ".png")]
    assert len(done.stdout.splitlines()) == len(images) + 1  # a line per image, then "wrote .../predictions.json"
    entries = json.loads((out / "predictions.json").read_text())
    if demo == "demo":  # COCO results: one entry per box (a detector trained two batches may find none)
        assert isinstance(entries, list)
        assert {e["image_id"] for e in entries} <= {str(p.relative_to(source)) for p in images}
    else:
        assert len(entries) == len(images)
    assert (sorted(out.rglob("*.jpg")) != []) is (demo in PICTURES)
