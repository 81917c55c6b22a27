"""``tools/predict.py`` never writes over its inputs or any file it did not write, gives every input a picture of
its own and names and skips the images it cannot or may not read: on the tiny random detector (pictures with
boxes) and classifier (no pictures), run in-process through ``main``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from image_files import header_only_png
from PIL import Image

from mobivision.commands.predict import REPORT, main, picture_names


def _photos(folder: Path, names: list[str]) -> dict[Path, str]:
    """Small photos named ``names`` under ``folder``: ``{path: sha256}``."""
    hashes = {}
    for index, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        kind = {".jpg": "JPEG", ".png": "PNG"}[path.suffix] if not name.endswith(".jpg.jpg") else "JPEG"
        Image.new("RGB", (48 + index, 40), (40 * index, 90, 160)).save(path, format=kind)
        hashes[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def _unchanged(hashes: dict[Path, str]) -> bool:
    return all(hashlib.sha256(p.read_bytes()).hexdigest() == h for p, h in hashes.items())


def _predict(capsys: pytest.CaptureFixture, *args: object) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_an_output_folder_that_is_or_is_inside_the_input_folder_is_refused_before_anything_is_written(
    tiny_task_checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    photos = tmp_path / "photos"
    hashes = _photos(photos, ["a.jpg", "b.jpg", "c.jpg"])
    detector = tiny_task_checkpoints["detector"]
    for out in (photos, photos / "predictions"):
        code, _, err = _predict(capsys, detector, photos, "--out", out)
        assert code == 2 and err.startswith(f"error: --out: {out} is inside the input folder {photos}: ")
        assert "choose a folder outside it" in err and len(err.strip().splitlines()) == 1
    assert _unchanged(hashes) and sorted(p.name for p in photos.iterdir()) == ["a.jpg", "b.jpg", "c.jpg"]

    # One file: its folder may take the outputs, but not a picture named like the input.
    code, _, err = _predict(capsys, detector, photos / "a.jpg", "--out", photos)
    assert (
        code == 2
        and err == f"error: --out: {photos} would write over input images: {photos / 'a.jpg'} (choose another --out)\n"
    )
    assert _unchanged(hashes)


def test_every_input_gets_its_own_picture_and_the_renamed_ones_are_listed(
    tiny_task_checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    photos = tmp_path / "photos"
    _photos(photos, ["x.jpg", "x.jpg.jpg", "x.png", "sub/x.png"])
    out = tmp_path / "out"
    code, stdout, _ = _predict(capsys, tiny_task_checkpoints["detector"], photos, "--out", out)
    assert code == 0
    report = json.loads((out / REPORT).read_text())
    expected = {"sub/x.png": "sub/x.jpg", "x.jpg": "x.jpg.jpg", "x.jpg.jpg": "x.jpg.jpg~2.jpg", "x.png": "x.png.jpg"}
    assert report["pictures"] == expected
    assert report["renamed"] == {name: expected[name] for name in ("x.jpg", "x.jpg.jpg", "x.png")}
    for picture in expected.values():  # four pictures, each of its own input's size
        assert (out / picture).is_file()
    assert {Image.open(out / p).size for p in expected.values()} == {(48, 40), (49, 40), (50, 40), (51, 40)}
    assert "pictures renamed so that none overwrites another:\n  x.jpg -> x.jpg.jpg\n" in stdout
    assert "x.jpg.jpg -> x.jpg.jpg~2.jpg" in stdout and "wrote " in stdout and "4 pictures" in stdout


def test_the_same_inputs_always_get_the_same_picture_names() -> None:
    names = ["x.png", "x.jpg.jpg", "x.jpg", "cat.png", "cat.jpg", "dog.png", "sub/cat.png"]
    pictures = picture_names(names)
    assert pictures == picture_names(list(reversed(names)))
    assert len(set(pictures.values())) == len(names)
    assert pictures["dog.png"] == "dog.jpg" and pictures["sub/cat.png"] == "sub/cat.jpg"


def test_files_predict_did_not_write_are_never_replaced_and_its_own_are(
    tiny_task_checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    photos, out = tmp_path / "photos", tmp_path / "out"
    _photos(photos, ["a.png", "b.png"])
    detector = tiny_task_checkpoints["detector"]
    out.mkdir()
    mine = {out / "predictions.json": b"my own notes\n", out / "a.jpg": b"my own picture"}
    for path, data in mine.items():
        path.write_bytes(data)
    code, _, err = _predict(capsys, detector, photos, "--out", out)
    assert code == 2 and "holds files predict did not write (not in its predict_report.json)" in err
    assert str(out / "predictions.json") in err and str(out / "a.jpg") in err
    assert all(path.read_bytes() == data for path, data in mine.items()) and not (out / REPORT).exists()

    fresh = tmp_path / "fresh"
    assert _predict(capsys, detector, photos, "--out", fresh)[0] == 0
    first = (fresh / "a.jpg").read_bytes()
    (fresh / "a.jpg").write_bytes(b"changed")
    assert _predict(capsys, detector, photos, "--out", fresh)[0] == 0  # its own files: replaced
    assert (fresh / "a.jpg").read_bytes() == first

    code, _, err = _predict(capsys, detector, photos, "--out", out / "predictions.json")
    assert code == 2 and err == f"error: --out: {out / 'predictions.json'} is a file, expected a folder\n"


def test_images_over_the_pixel_limit_or_unreadable_are_named_and_skipped_and_strips_get_no_picture(
    tiny_task_checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    photos, out = tmp_path / "photos", tmp_path / "out"
    _photos(photos, ["good.png"])
    header_only_png(photos / "bomb.png", 20000, 10000)  # over Pillow's own limit too (DecompressionBombError)
    Image.new("RGB", (3000, 2000)).save(photos / "large.png")  # 6 Mpx
    Image.new("RGB", (600, 2)).save(photos / "strip.png")
    args = (tiny_task_checkpoints["detector"], photos, "--out", out, "--max-image-mpx", "5")
    code, stdout, err = _predict(capsys, *args)
    assert code == 0, err
    skipped = [line for line in err.splitlines() if line.startswith("skipped: ")]
    assert len(skipped) == 2 and "bomb.png" in skipped[0] and "large.png" in skipped[1]
    assert skipped[1].endswith("3000 x 2000 pixels (6.0 Mpx) is over the 5 Mpx limit (--max-image-mpx)")
    assert "no picture: strip.png: 600 x 2 pixels is too elongated to draw (over 32:1)" in err
    report = json.loads((out / REPORT).read_text())
    assert sorted(report["skipped"]) == ["bomb.png", "large.png"] and list(report["no_picture"]) == ["strip.png"]
    assert list(report["pictures"]) == ["good.png"] and (out / "good.jpg").is_file()
    assert not (out / "strip.jpg").exists()
    predictions = {entry["image_id"] for entry in json.loads((out / "predictions.json").read_text())}
    assert predictions <= {"good.png", "strip.png"} and "strip.png:" in stdout and "good.png:" in stdout


def test_a_detector_finding_nothing_in_any_image_is_a_run_with_no_boxes_not_an_error(
    tiny_task_checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    photos, out = tmp_path / "photos", tmp_path / "out"
    _photos(photos, ["a.png", "b.png"])
    code, stdout, err = _predict(
        capsys, tiny_task_checkpoints["detector"], photos, "--out", out, "--score-threshold", 1
    )
    assert code == 0, err
    assert json.loads((out / "predictions.json").read_text()) == []  # COCO results: one entry per box
    assert "a.png: 0 detections" in stdout and (out / "a.jpg").is_file() and (out / "b.jpg").is_file()


def test_an_output_folder_that_cannot_be_created_is_one_error_line(
    tiny_task_checkpoints: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    photos = tmp_path / "photos"
    _photos(photos, ["a.png"])
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    code, _, err = _predict(capsys, tiny_task_checkpoints["detector"], photos, "--out", tmp_path / "notes.txt" / "out")
    assert code == 2 and err.startswith(f"error: --out: cannot write {tmp_path / 'notes.txt' / 'out'}: ")
    assert len(err.strip().splitlines()) == 1 and (tmp_path / "notes.txt").read_text() == "a file, not a folder\n"
