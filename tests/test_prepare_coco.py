"""Tests of ``datasets/coco/prepare.py`` against tiny fake COCO 2017 archives served from ``file://`` URLs.

The fake "server" mirrors the layout of ``http://images.cocodataset.org/`` (``zips/train2017.zip``,
``zips/val2017.zip``, ``annotations/annotations_trainval2017.zip``); nothing reaches the network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from mobivision.backbones.download import fetch_to, unpack_zip
from mobivision.errors import DataError, WeightFileError

SCRIPT = Path(__file__).resolve().parents[1] / "datasets" / "coco" / "prepare.py"
ANNOTATIONS_ZIP = "annotations/annotations_trainval2017.zip"


def _load_script():
    spec = importlib.util.spec_from_file_location("prepare_coco", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


prepare = _load_script()


def _png_bytes(tmp: Path, color: tuple[int, int, int]) -> bytes:
    path = tmp / "image.png"
    Image.new("RGB", (32, 24), color).save(path)
    return path.read_bytes()


def _instances(file_names: list[str]) -> dict:
    images = [{"id": i, "file_name": name, "width": 32, "height": 24} for i, name in enumerate(file_names, start=1)]
    annotations = [
        {"id": 10 + i, "image_id": i, "category_id": 1 + i % 2, "bbox": [2, 3, 10, 8], "area": 80, "iscrowd": 0}
        for i in range(1, len(file_names) + 1)
    ]
    annotations.append({"id": 99, "image_id": 1, "category_id": 3, "bbox": [5, 5, 4, 4], "area": 16, "iscrowd": 1})
    categories = [{"id": 1, "name": "person"}, {"id": 2, "name": "bicycle"}, {"id": 3, "name": "car"}]
    return {"images": images, "annotations": annotations, "categories": categories}


SPLIT_FILES = {"train": ["000000000009.jpg", "000000000025.jpg", "000000000030.jpg"], "val": ["000000000139.jpg"]}


def make_server(
    tmp: Path, *, listed: dict[str, list[str]] | None = None, extra_members: dict[str, bytes] | None = None
) -> Path:
    """Fake COCO archives under ``tmp/server``; ``listed`` overrides the file names the annotations list."""
    server = tmp / "server"
    (server / "zips").mkdir(parents=True)
    (server / "annotations").mkdir()
    for split, names in SPLIT_FILES.items():
        with zipfile.ZipFile(server / "zips" / f"{split}2017.zip", "w") as zf:
            zf.writestr(f"{split}2017/", b"")
            for k, name in enumerate(names):
                zf.writestr(f"{split}2017/{name}", _png_bytes(tmp, (40 * k, 100, 200)))
            for member, data in (extra_members or {}).items():
                zf.writestr(member, data)
    listed = {**SPLIT_FILES, **(listed or {})}
    with zipfile.ZipFile(server / ANNOTATIONS_ZIP, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for split, names in listed.items():
            zf.writestr(f"annotations/instances_{split}2017.json", json.dumps(_instances(names)))
        zf.writestr("annotations/captions_val2017.json", json.dumps({"annotations": []}))
    return server


def run(server: Path, root: Path, *extra: str) -> int:
    return prepare.main(["--base-url", server.as_uri() + "/", "--root", str(root), *extra])


def test_downloads_unpacks_and_verifies_then_skips(tmp_path, capsys) -> None:
    server = make_server(tmp_path)
    root = tmp_path / "data" / "coco"
    assert run(server, root) == 0
    out = capsys.readouterr().out
    assert (root / "annotations" / "instances_train2017.json").is_file()
    assert (root / "annotations" / "instances_val2017.json").is_file()
    assert sorted(p.name for p in (root / "train2017").iterdir()) == SPLIT_FILES["train"]
    assert sorted(p.name for p in (root / "val2017").iterdir()) == SPLIT_FILES["val"]
    for name in ("annotations_trainval2017.zip", "train2017.zip", "val2017.zip"):
        assert (root / f"{name}.complete").is_file()
        assert not (root / name).exists(), "archives are deleted after unpacking by default"
        assert f"{name}: downloading" in out and f"{name}: unpacking" in out
    assert "train2017: verified 3 images, 4 annotations" in out
    assert "val2017: verified 1 images, 2 annotations" in out
    assert not list(root.rglob("*.part"))

    for archive in server.rglob("*.zip"):  # a second run must not download anything
        archive.unlink()
    assert run(server, root) == 0
    out = capsys.readouterr().out
    assert "downloading" not in out and out.count("already unpacked") == 3
    assert "train2017: verified 3 images" in out


def test_single_split_keep_archives_and_reuse(tmp_path, capsys) -> None:
    server = make_server(tmp_path)
    root = tmp_path / "coco"
    assert run(server, root, "--splits", "val", "--keep-archives") == 0
    assert (root / "val2017.zip").is_file() and (root / "annotations_trainval2017.zip").is_file()
    assert not (root / "train2017").exists()
    assert "val2017: verified 1 images" in capsys.readouterr().out

    (root / "val2017.zip.complete").unlink()  # unpack again from the kept zip, without the server
    (server / "zips" / "val2017.zip").unlink()
    assert run(server, root, "--splits", "val") == 0
    out = capsys.readouterr().out
    assert "val2017.zip: reusing" in out and "val2017.zip: downloading" not in out
    assert not (root / "val2017.zip").exists()


def test_sha256_is_checked(tmp_path, capsys) -> None:
    server = make_server(tmp_path)
    root = tmp_path / "coco"
    good = hashlib.sha256((server / "zips" / "val2017.zip").read_bytes()).hexdigest()
    assert run(server, root, "--splits", "val", "--sha256", f"val2017.zip={good}") == 0
    capsys.readouterr()

    root2 = tmp_path / "coco2"
    assert run(server, root2, "--splits", "val", "--sha256", f"val2017.zip={'0' * 64}") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "checksum mismatch" in err
    assert not (root2 / "val2017.zip").exists() and not (root2 / "val2017.zip.complete").exists()


def test_path_traversal_member_is_refused(tmp_path, capsys) -> None:
    server = make_server(tmp_path, extra_members={"../evil.txt": b"pwned"})
    root = tmp_path / "deep" / "coco"
    assert run(server, root, "--splits", "val") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "'../evil.txt'" in err and "refusing" in err
    assert not (tmp_path / "deep" / "evil.txt").exists() and not list(tmp_path.rglob("evil.txt"))
    assert not (root / "val2017.zip.complete").exists()
    assert not (root / "val2017").exists(), "nothing is extracted from an archive with an unsafe member"


@pytest.mark.parametrize("name", ["/etc/evil", "a/../../evil", "C:/evil", "..\\evil"])
def test_unpack_zip_refuses_unsafe_names(tmp_path, name) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", b"fine")
        zf.writestr(name, b"pwned")
    with pytest.raises(WeightFileError, match="refusing to unpack member"):
        unpack_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_missing_image_is_named(tmp_path, capsys) -> None:
    server = make_server(tmp_path, listed={"val": ["000000000139.jpg", "000000000285.jpg"]})
    root = tmp_path / "coco"
    assert run(server, root, "--splits", "val") == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert "000000000285.jpg" in captured.err and "1 of 2 images" in captured.err
    assert "000000000139.jpg" not in captured.err
    assert "val2017.zip.complete" in captured.err, "the message says how to unpack again"


def test_two_images_with_one_id_are_an_error_naming_the_file(tmp_path) -> None:
    """Before: pycocotools kept the last image of the id, and the split was verified one image short."""
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    instances = _instances(["000000000139.jpg", "000000000285.jpg"])
    instances["images"][1]["id"] = 1
    for image in instances["images"]:
        (root / "val2017" / image["file_name"]).write_bytes(_png_bytes(tmp_path, (1, 2, 3)))
    annotation_file = root / "annotations" / "instances_val2017.json"
    annotation_file.write_text(json.dumps(instances))
    with pytest.raises(DataError, match=rf"^{annotation_file}: 'images': 2 entries share an id .*: \[1\]"):
        prepare.verify_split(root, "val")


def test_truncated_zip_fails_cleanly(tmp_path, capsys) -> None:
    server = make_server(tmp_path)
    archive = server / "zips" / "val2017.zip"
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    root = tmp_path / "coco"
    assert run(server, root, "--splits", "val") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "val2017.zip" in err and "truncated or corrupted" in err
    assert not (root / "val2017.zip.complete").exists()
    assert (root / "annotations_trainval2017.zip.complete").exists(), "the good archive before it is kept"


def test_corrupted_member_fails_the_crc_check(tmp_path, capsys) -> None:
    server = make_server(tmp_path)
    archive = server / "zips" / "val2017.zip"
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("val2017/000000000139.jpg")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.file_size // 2] ^= 0xFF  # flip one byte inside the stored (uncompressed) image
    archive.write_bytes(bytes(data))
    root = tmp_path / "coco"
    assert run(server, root, "--splits", "val") == 2
    err = capsys.readouterr().err
    assert "CRC" in err and not (root / "val2017.zip.complete").exists()


def test_bad_arguments_end_with_one_error_line(tmp_path, capsys) -> None:
    server = make_server(tmp_path)
    for args in (["--splits", "test"], ["--base-url", "ftp://host/"], ["--sha256", "nope"], ["--bogus"]):
        assert prepare.main(["--root", str(tmp_path / "coco"), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, args
    (tmp_path / "file").write_text("x")
    assert run(server, tmp_path / "file") == 2
    assert "not a folder" in capsys.readouterr().err


def test_fetch_to_is_atomic_and_checks_the_digest(tmp_path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(b"abc" * 1000)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    out = fetch_to(f"{source.as_uri()}#sha256={digest}", tmp_path / "dl" / "x.bin")
    assert out.read_bytes() == source.read_bytes()
    with pytest.raises(WeightFileError, match="checksum mismatch"):
        fetch_to(f"{source.as_uri()}#sha256={'1' * 64}", tmp_path / "dl" / "y.bin")
    with pytest.raises(WeightFileError, match="failed"):
        fetch_to((tmp_path / "absent.bin").as_uri(), tmp_path / "dl" / "z.bin")
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["x.bin"]
