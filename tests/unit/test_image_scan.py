"""Unreadable images: the header scan behind ``tools/check.py --scan-images``, and ``data.on_error=skip``'s skip log
that DataLoader workers append to and ``SkippedImages`` sums up in one warning per training epoch."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image
from torch.utils.data import DataLoader

from mobivision.data.records import SKIP_LOG_ENV, ClassificationDataset, ImageRecord, unreadable_images
from mobivision.data.transforms import classification_eval_transform
from mobivision.tasks.callbacks import SkippedImages


def _image(path: Path, value: int = 90) -> Path:
    Image.new("RGB", (16, 16), (value, 20, 200)).save(path)
    return path


def test_the_scan_names_empty_garbage_and_cut_files_among_good_jpegs_and_pngs(tmp_path: Path) -> None:
    good = [_image(tmp_path / "good.jpg"), _image(tmp_path / "good.png"), _image(tmp_path / "also_good.jpg")]
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not an image at all" * 10)
    cut_header = tmp_path / "cut_header.jpg"
    cut_header.write_bytes(good[0].read_bytes()[:40])  # SOI and part of the first segment
    cut_png = tmp_path / "cut.png"
    cut_png.write_bytes(good[1].read_bytes()[:-30])  # IDAT's CRC and IEND gone: verify() reads the chunks
    missing = tmp_path / "missing.jpg"
    paths = [good[0], empty, good[1], garbage, cut_header, good[2], cut_png, missing]

    found = unreadable_images(paths, workers=3)

    assert [path for path, _ in found] == [empty, garbage, cut_header, cut_png, missing]  # in the order given
    reasons = dict(found)
    assert reasons[empty] == reasons[garbage] == "cannot identify image file"  # Pillow's words, without the path
    assert reasons[missing] == "no such file or directory"
    assert all(reason and str(path) not in reason for path, reason in found)
    assert unreadable_images(good, workers=1) == [] and unreadable_images([], workers=4) == []


def _broken_dataset(folder: Path) -> tuple[ClassificationDataset, list[Path]]:
    """Eight images, two of them broken (not neighbours, so each is replaced once per pass)."""
    folder.mkdir()
    records = [ImageRecord(image_id=str(i), path=_image(folder / f"{i}.png", 30 * i), label=i % 2) for i in range(8)]
    broken = [records[2].path, records[5].path]
    broken[0].write_bytes(b"\x89PNG\r\n\x1a\n cut off")
    broken[1].write_bytes(b"")
    transform = classification_eval_transform(resolution=8, mean=(0, 0, 0), std=(1, 1, 1), crop_pct=1.0)
    return ClassificationDataset(records, class_names=["a", "b"], transform=transform, on_error="skip"), broken


def _epoch_end(callback: SkippedImages, epoch: int) -> None:
    callback.on_train_epoch_end(SimpleNamespace(current_epoch=epoch, is_global_zero=True), None)


def test_skips_of_every_worker_add_up_to_one_warning_per_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(SKIP_LOG_ENV, raising=False)
    dataset, broken = _broken_dataset(tmp_path / "images")
    log_file = tmp_path / "run" / "skipped_images.txt"
    log_file.parent.mkdir()
    log_file.write_text("/earlier/run.png\tcannot identify image file\n")  # a resumed run's lines: not reported again
    callback = SkippedImages(log_file)
    callback.setup(None, None, "fit")
    assert os.environ[SKIP_LOG_ENV] == str(log_file)

    with caplog.at_level("WARNING", logger="mobivision"):
        # Epoch 1: two worker processes (each gets every other batch of 2), epoch 2: the main process.
        ids = [i for batch in DataLoader(dataset, batch_size=2, num_workers=2) for i in batch["meta"]["image_id"]]
        assert ids == ["0", "1", "3", "3", "4", "6", "6", "7"]  # 2 and 5 replaced by the next readable image
        _epoch_end(callback, 0)
        assert len([dataset[i] for i in range(8)]) == 8
        assert len(caplog.records) == 1  # epoch 1's warning; nothing per file: the skips are in the log
        _epoch_end(callback, 1)
        _epoch_end(callback, 2)  # an epoch without skips: no warning
    callback.teardown(None, None, "fit")

    assert SKIP_LOG_ENV not in os.environ
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    for epoch, message in zip((1, 2), messages, strict=True):
        head, _, named = message.partition(" replaced 2 unreadable images: ")
        assert head == f"epoch {epoch}: data.on_error=skip"
        files, _, tail = named.partition(" (all listed in ")
        assert sorted(files.split(", ")) == [str(p) for p in broken] and tail == f"{log_file})"
    lines = log_file.read_text().splitlines()
    assert len(lines) == 1 + 4 and sorted(line.split("\t")[0] for line in lines[1:]) == sorted(map(str, broken * 2))
    assert all(line.split("\t")[1] for line in lines)  # each with its reason


def test_the_warning_names_five_files_and_counts_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(SKIP_LOG_ENV, raising=False)
    log_file = tmp_path / "skipped_images.txt"
    callback = SkippedImages(log_file)
    callback.setup(None, None, "fit")
    with caplog.at_level("WARNING", logger="mobivision"):
        _epoch_end(callback, 0)  # no file yet: nothing skipped, nothing said
        log_file.write_text("".join(f"/d/{i}.jpg\tbroken\n" for i in [*range(7), 0]) + "/d/partial")
        _epoch_end(callback, 4)
    callback.teardown(None, None, "fit")
    (message,) = [record.getMessage() for record in caplog.records]
    assert message == (
        "epoch 5: data.on_error=skip replaced 8 unreadable images (7 files): /d/0.jpg, /d/1.jpg, /d/2.jpg, /d/3.jpg, "
        f"/d/4.jpg and 2 more (all listed in {log_file})"
    )  # a line still being written ("/d/partial") waits for the next epoch
