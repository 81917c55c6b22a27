"""Tests of ``datasets/celeba/prepare.py`` against a fake download folder written by the tests.

The folder holds what the official Google Drive folder offers, shrunk to 6 images: ``img_align_celeba.zip``
(``img_align_celeba/000001.jpg`` ...) and the text lists in their official formats. ``--download`` is tested with
torchvision's Google Drive helper replaced by a copy from that folder; nothing reaches the network.
"""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from mobivision.data.celeba import CELEBA_ATTRIBUTES

SCRIPT = Path(__file__).resolve().parents[1] / "datasets" / "celeba" / "prepare.py"
SPLIT_OF = [0, 0, 1, 0, 2, 1]
FILES = [f"{i:06d}.jpg" for i in range(1, len(SPLIT_OF) + 1)]


def _load_script():
    spec = importlib.util.spec_from_file_location("prepare_celeba", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


prepare = _load_script()


def _jpeg(tmp: Path, shade: int) -> bytes:
    path = tmp / "face.jpg"
    Image.new("RGB", (18, 22), (shade, 100, 150)).save(path)
    return path.read_bytes()


def write_lists(folder: Path, files: list[str] = FILES) -> None:
    """``list_attr_celeba.txt``, ``list_eval_partition.txt`` and ``list_bbox_celeba.txt`` for ``files``."""
    folder.mkdir(parents=True, exist_ok=True)
    attr = [f"{len(files)}\n", " ".join(CELEBA_ATTRIBUTES) + " \n"]
    attr += [
        f"{f} " + " ".join(f"{1 if (i + k) % 3 == 0 else -1:2d}" for k in range(40)) + "\n" for i, f in enumerate(files)
    ]
    (folder / "list_attr_celeba.txt").write_text("".join(attr))
    (folder / "list_eval_partition.txt").write_text("".join(f"{f} {SPLIT_OF[i]}\n" for i, f in enumerate(files)))
    bbox = [f"{len(files)}\n", "image_id x_1 y_1 width height\n", *(f"{f}    1   2  10  12\n" for f in files)]
    (folder / "list_bbox_celeba.txt").write_text("".join(bbox))


def write_zip(archive: Path, tmp: Path, *, files: list[str] = FILES, extra: dict[str, bytes] | None = None) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("img_align_celeba/", b"")
        for k, name in enumerate(files):
            zf.writestr(f"img_align_celeba/{name}", _jpeg(tmp, 30 * k))
        for member, data in (extra or {}).items():
            zf.writestr(member, data)


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    """A flat download folder: the zip and the three lists."""
    folder = tmp_path / "Downloads" / "celeba"
    write_lists(folder)
    write_zip(folder / "img_align_celeba.zip", tmp_path)
    return folder


def _error_line(capsys: pytest.CaptureFixture) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_from_folder_unpacks_copies_verifies_and_is_idempotent(downloads: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "data" / "celeba"
    assert prepare.main(["--from", str(downloads), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert sorted(p.name for p in (root / "img_align_celeba").iterdir()) == FILES
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt", "list_bbox_celeba.txt"):
        assert (root / name).read_bytes() == (downloads / name).read_bytes()
        assert f"{name}: copied" in out
    assert (root / "img_align_celeba.complete").is_file()
    assert (downloads / "img_align_celeba.zip").is_file(), "--from never deletes the user's download"
    assert "img_align_celeba.zip: unpacked 6 files" in out
    assert "train: 3 images, 40 attributes (the official partition has 162,770)" in out
    assert "val: 2 images, 40 attributes" in out and "test: 1 images, 40 attributes" in out
    assert "list_landmarks_align_celeba.txt: not in" in out
    assert not list(root.rglob("*.part"))

    marked = root / "img_align_celeba" / "000001.jpg"
    marked.write_bytes(b"changed after the first run")
    assert prepare.main(["--from", str(downloads), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "already unpacked" in out and "unpacking" not in out
    assert out.count("already in place") == 3
    assert marked.read_bytes() == b"changed after the first run", "the second run did not unpack again"

    assert prepare.main(["--root", str(root)]) == 0  # verify only
    out = capsys.readouterr().out
    assert "verifying" in out and "train: 3 images" in out


def test_official_drive_layout_and_changed_list(tmp_path: Path, capsys) -> None:
    drive = tmp_path / "CelebA"
    write_zip(drive / "Img" / "img_align_celeba.zip", tmp_path)
    write_lists(drive / "Anno")
    (drive / "Eval").mkdir()
    (drive / "Anno" / "list_eval_partition.txt").rename(drive / "Eval" / "list_eval_partition.txt")
    root = tmp_path / "celeba"
    assert prepare.main(["--from", str(drive), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert (root / "list_eval_partition.txt").is_file() and len(list((root / "img_align_celeba").iterdir())) == 6
    assert "val: 2 images" in out

    write_lists(drive / "Anno", files=FILES)  # same images, the list rewritten with other values
    text = (drive / "Anno" / "list_attr_celeba.txt").read_text().replace(" 1 -1", "-1  1", 1)
    (drive / "Anno" / "list_attr_celeba.txt").write_text(text)
    assert prepare.main(["--from", str(drive), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "list_attr_celeba.txt: replaced (it differed)" in out
    assert (root / "list_attr_celeba.txt").read_text() == text


def test_unpacked_image_folder_is_copied(tmp_path: Path, capsys) -> None:
    source = tmp_path / "dl"
    write_lists(source)
    (source / "img_align_celeba").mkdir()
    for k, name in enumerate(FILES):
        (source / "img_align_celeba" / name).write_bytes(_jpeg(tmp_path, k))
    root = tmp_path / "celeba"
    assert prepare.main(["--from", str(source), "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "copying the unpacked folder" in out and "6 files in place" in out
    assert (root / "img_align_celeba" / "000006.jpg").read_bytes() == (
        source / "img_align_celeba" / "000006.jpg"
    ).read_bytes()
    assert (root / "img_align_celeba.complete").is_file()


def test_missing_archive_is_an_error(downloads: Path, tmp_path: Path, capsys) -> None:
    (downloads / "img_align_celeba.zip").unlink()
    root = tmp_path / "celeba"
    assert prepare.main(["--from", str(downloads), "--root", str(root)]) == 2
    err = _error_line(capsys)
    assert "img_align_celeba.zip (or an unpacked img_align_celeba/ folder) not found" in err
    assert str(downloads) in err and "mmlab.ie.cuhk.edu.hk" in err
    assert not (root / "img_align_celeba.complete").exists()


def test_missing_list_is_an_error_with_a_kaggle_hint(downloads: Path, tmp_path: Path, capsys) -> None:
    (downloads / "list_eval_partition.txt").unlink()
    root = tmp_path / "celeba"
    assert prepare.main(["--from", str(downloads), "--root", str(root)]) == 2
    err = _error_line(capsys)
    assert "list_eval_partition.txt not found in" in err and "Kaggle" not in err
    assert not (root / "img_align_celeba").exists(), "nothing is unpacked before the lists are known to be there"
    (downloads / "list_attr_celeba.csv").write_text("image_id,Bald\n")
    assert prepare.main(["--from", str(downloads), "--root", str(root)]) == 2
    assert "Kaggle mirror" in _error_line(capsys)


def test_unsafe_zip_member_is_refused(tmp_path: Path, capsys) -> None:
    source = tmp_path / "dl"
    write_lists(source)
    write_zip(source / "img_align_celeba.zip", tmp_path, extra={"../evil.txt": b"pwned"})
    root = tmp_path / "deep" / "celeba"
    assert prepare.main(["--from", str(source), "--root", str(root)]) == 2
    err = _error_line(capsys)
    assert "'../evil.txt'" in err and "refusing" in err
    assert not list(tmp_path.rglob("evil.txt")) and not (root / "img_align_celeba.complete").exists()


def test_image_missing_from_the_zip_fails_verification(tmp_path: Path, capsys) -> None:
    source = tmp_path / "dl"
    write_lists(source)
    write_zip(source / "img_align_celeba.zip", tmp_path, files=FILES[:-1])  # 000006.jpg (val) is not in the zip
    root = tmp_path / "celeba"
    assert prepare.main(["--from", str(source), "--root", str(root)]) == 2
    err = _error_line(capsys)
    assert "000006.jpg: image file not found" in err and "CelebA val split" in err
    assert f"delete {root / 'img_align_celeba.complete'}" in err


def test_drive_ids_and_md5s_are_torchvisions() -> None:
    from torchvision.datasets import CelebA

    ours = {f.name: (f.drive_id, f.md5) for f in (prepare.ARCHIVE, *prepare.LISTS)}
    theirs = {name: (file_id, md5) for file_id, md5, name in CelebA.file_list}
    assert ours == theirs


def test_download_fetches_every_file_and_unpacks(downloads: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from torchvision.datasets import utils

    calls = []

    def fake_download(file_id: str, root: str, filename: str, md5: str) -> None:
        calls.append((file_id, filename, md5))
        source = downloads / filename
        if source.is_file():
            (Path(root) / filename).write_bytes(source.read_bytes())
        else:
            (Path(root) / filename).write_text("optional file\n")

    monkeypatch.setattr(prepare, "_require_gdown", lambda: None)
    monkeypatch.setattr(utils, "download_file_from_google_drive", fake_download)
    root = tmp_path / "celeba"
    assert prepare.main(["--download", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    expected = [(f.drive_id, f.name, f.md5) for f in (prepare.ARCHIVE, *prepare.LISTS)]
    assert calls == expected
    assert not (root / "img_align_celeba.zip").exists(), "the zip is deleted after unpacking"
    assert (root / "img_align_celeba.complete").is_file() and "train: 3 images" in out

    calls.clear()
    assert prepare.main(["--download", "--root", str(root)]) == 0
    assert "img_align_celeba.zip" not in [name for _, name, _ in calls], "the images are not fetched again"
    assert "already unpacked" in capsys.readouterr().out


def test_download_keep_archives(downloads: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    from torchvision.datasets import utils

    def fake_download(file_id: str, root: str, filename: str, md5: str) -> None:
        source = downloads / filename
        (Path(root) / filename).write_bytes(source.read_bytes() if source.is_file() else b"x\n")

    monkeypatch.setattr(prepare, "_require_gdown", lambda: None)
    monkeypatch.setattr(utils, "download_file_from_google_drive", fake_download)
    root = tmp_path / "celeba"
    assert prepare.main(["--download", "--root", str(root), "--keep-archives"]) == 0
    assert (root / "img_align_celeba.zip").is_file()


def test_download_failure_and_missing_gdown_end_with_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    from torchvision.datasets import utils

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gdown" else real_find_spec(name, *a)
    )
    root = tmp_path / "celeba"
    assert prepare.main(["--download", "--root", str(root)]) == 2
    assert "pip install gdown" in _error_line(capsys)
    assert not root.exists(), "nothing is created before the check"

    def quota(*args, **kwargs) -> None:
        raise RuntimeError("Too many users have viewed or downloaded this file recently")

    monkeypatch.setattr(prepare, "_require_gdown", lambda: None)
    monkeypatch.setattr(utils, "download_file_from_google_drive", quota)
    assert prepare.main(["--download", "--root", str(root)]) == 2
    err = _error_line(capsys)
    assert "download of img_align_celeba.zip from Google Drive failed" in err and "--from" in err
    assert not (root / "img_align_celeba.complete").exists()


def test_bad_arguments_end_with_one_error_line(downloads: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "celeba"
    for args in (["--from", str(downloads), "--download"], ["--bogus"], ["--from", str(tmp_path / "absent")], []):
        assert prepare.main(["--root", str(root), *args]) == 2, args
        _error_line(capsys)
    assert prepare.main(["--root", str(root)]) == 2
    assert "nothing to verify" in _error_line(capsys)
    (tmp_path / "file").write_text("x")
    assert prepare.main(["--from", str(downloads), "--root", str(tmp_path / "file")]) == 2
    assert "not a folder" in _error_line(capsys)
