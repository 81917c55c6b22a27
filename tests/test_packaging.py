"""The installed distribution (ARCHITECTURE.md, "Packaging"): a wheel with one top-level name and the configs
inside, and the ``mobivision`` console script working from a fresh virtual environment outside the repository.

The fresh environment gets the wheel (not editable) and borrows the dependencies of the development venv
through a ``.pth`` line, so it needs no download; the repository is not on its path.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(out)],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (path,) = out.glob("mobivision-*.whl")
    return path


def test_the_wheel_registers_every_built_in_task_and_the_checkpoint_runtime(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    (entry_file,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
    parser = configparser.ConfigParser()
    parser.read_string(archive.read(entry_file).decode())
    assert dict(parser["mobivision.tasks"]) == {
        "classification": "mobivision.tasks.classification:ClassificationTask",
        "detection": "mobivision.tasks.detection:DetectionTask",
        "attributes": "mobivision.tasks.attributes:AttributeTask",
        "geo": "mobivision.tasks.geo:GeoTask",
        "multitask": "mobivision.tasks.multitask:MultiTask",
    }
    runtime = "mobivision.tasks.checkpoint_runtime:CheckpointRuntime"
    assert dict(parser["mobivision.runtimes"]) == {"checkpoint": runtime}


def test_the_wheel_has_one_top_level_name_and_ships_every_config(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"mobivision"}  # no generic top-level package such as `tasks`
    shipped = {name.removeprefix("mobivision/configs/") for name in names if name.startswith("mobivision/configs/")}
    repo_configs = {p.relative_to(REPO / "configs").as_posix() for p in (REPO / "configs").rglob("*.yaml")}
    assert repo_configs <= shipped
    repo_tasks = {p.name for p in (REPO / "tasks").glob("*.py")}
    assert {n.removeprefix("mobivision/tasks/") for n in names if n.startswith("mobivision/tasks/")} == repo_tasks
    assert "mobivision/evaluation/world_outline.json" in names
    assert "mobivision/data/synthetic/geo_regions.json" in names  # the geo demo's world
    packages = {
        p.relative_to(REPO).as_posix() for p in (REPO / "mobivision").rglob("*.py") if "__pycache__" not in str(p)
    }
    assert packages <= set(names)  # every module of every sub-package (a package missing from pyproject.toml)
    assert "mobivision/commands/serve_page.html" in names  # the page of `mobivision serve`
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "mobivision = mobivision.commands.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    return venv


@pytest.mark.slow
def test_console_script_trains_from_an_unrelated_folder(fresh_venv: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MOBIVISION_DATA")}
    env["OMP_NUM_THREADS"] = "1"
    script = fresh_venv / "bin" / "mobivision"
    where = subprocess.run(
        [fresh_venv / "bin" / "python", "-c", "import mobivision.tasks, mobivision.configs as c; print(c.CONFIG_DIR)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    site = Path(where.stdout.strip()).parent
    assert site.is_relative_to(fresh_venv) and not site.is_relative_to(REPO)  # the wheel, not the checkout

    result = subprocess.run(
        [script, "train", "experiment=demo_classification", "trainer.max_epochs=1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (summary,) = tmp_path.glob("runs/demo_classification/*/summary.json")
    assert (tmp_path / "datasets" / "demo_shapes_cls" / "train").is_dir()
    assert "test/top1" in summary.read_text()
    assert not any(site.rglob("runs")) and not (site / "datasets").exists()  # nothing written into the package

    listed = subprocess.run([script, "--help"], capture_output=True, text=True, env=env)
    assert listed.returncode == 0
    for command in ("train", "eval", "predict", "export", "check", "collect", "profile", "benchmark", "convert"):
        assert f"  {command} " in listed.stdout
    unknown = subprocess.run([script, "trian"], capture_output=True, text=True, env=env)
    assert unknown.returncode == 2 and "unknown command 'trian' (did you mean 'train'?)" in unknown.stderr
