"""Put CelebA (Liu et al., "Deep Learning Face Attributes in the Wild", ICCV 2015) in place and verify it.

Usage::

    python datasets/celeba/prepare.py --from ~/Downloads/celeba [--root datasets/celeba]
    python datasets/celeba/prepare.py --download [--root datasets/celeba] [--keep-archives]
    python datasets/celeba/prepare.py [--root datasets/celeba]          # verify only

Leaves under ``--root`` (default ``$MOBIVISION_DATA/celeba`` or ``datasets/celeba``)::

    img_align_celeba/000001.jpg ...        list_attr_celeba.txt        list_eval_partition.txt
    list_bbox_celeba.txt   list_landmarks_align_celeba.txt   identity_CelebA.txt   (when available)
    img_celeba/000001.jpg ...              (in-the-wild images, only if given unpacked with --from)

- ``--from DIR``: the files as downloaded from the official Google Drive folder, either flat in ``DIR`` or in its
  ``Img/``, ``Anno/``, ``Eval/`` sub-folders. ``img_align_celeba.zip`` is unpacked (``unpack_zip`` refuses members
  that would land outside ``--root``); an already unpacked ``img_align_celeba/`` folder is copied instead. The text
  files are copied. ``DIR`` is never modified. No checksums are checked (the zip's CRC-32s and the reader's checks
  of the lists catch damage; a re-saved list need not be byte-identical to be correct).
- ``--download``: fetches the six files torchvision's ``CelebA`` fetches, with its Google Drive ids and MD5s,
  through ``torchvision.datasets.utils.download_file_from_google_drive`` (needs ``pip install gdown``), then
  unpacks the zip (deleted afterwards unless ``--keep-archives``). Google Drive limits downloads per day; when it
  refuses, download by hand and use ``--from``.
- Idempotent: once unpacked, ``<root>/img_align_celeba.complete`` is written and later runs skip the images; a text
  file already in place with the same content is not copied again.

Every run ends by reading each split with ``mobivision.data.celeba.read_celeba`` (and, if ``img_celeba/`` exists,
the in-the-wild images) and printing the counts. Any failure ends with one ``error: ...`` line on stderr and exit
code 2.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

# Run as a plain script from any cwd: put the repository root on sys.path and drop this script's folder, which
# doubles as the data root (as datasets/coco/prepare.py does).
_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from mobivision.backbones.download import unpack_zip  # noqa: E402
from mobivision.commands.cli import exit_code  # noqa: E402
from mobivision.data.celeba import CELEBA_SPLITS, read_celeba  # noqa: E402
from mobivision.errors import ConfigError, DataError, MobivisionError  # noqa: E402

OFFICIAL_PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
OFFICIAL_COUNTS = {"train": 162_770, "val": 19_867, "test": 19_962}
IMAGES = "img_align_celeba"
WILD_IMAGES = "img_celeba"
MARKER = f"{IMAGES}.complete"
SUBFOLDERS = ("", "Img", "Anno", "Eval")
"""Where ``--from`` looks: the folder itself and the official Drive folder's sub-folders."""


@dataclass(frozen=True)
class File:
    """One file of the official Google Drive folder, as ``torchvision.datasets.CelebA.file_list`` lists it."""

    name: str
    drive_id: str
    md5: str
    required: bool
    size: str


ARCHIVE = File(f"{IMAGES}.zip", "0B7EVK8r0v71pZjFTYXZWM3FlRnM", "00d2c5bc6d35e252742224ab0c1e8fcb", True, "1.4 GB")
LISTS = (
    File("list_attr_celeba.txt", "0B7EVK8r0v71pblRyaVFSWGxPY0U", "75e246fa4810816ffd6ee81facbd244c", True, "26 MB"),
    File("list_eval_partition.txt", "0B7EVK8r0v71pY0NSMzRuSXJEVkk", "d32c9cbf5e040fd4025c592c306e6668", True, "2.8 MB"),
    File("list_bbox_celeba.txt", "0B7EVK8r0v71pbThiMVRxWXZ4dU0", "00566efa6fedff7a56946cd1c10f1c16", False, "6.1 MB"),
    File(
        "list_landmarks_align_celeba.txt",
        "0B7EVK8r0v71pd0FJY3Blby1HUTQ",
        "cc24ecafdb5b50baae59b03474781f8c",
        False,
        "12 MB",
    ),
    File(
        "identity_CelebA.txt", "1_ee_0u7vcNLOfNLegJRHmolfH5ICW-XS", "32bd1bd63d3c78cd57e08160ec5ed1e2", False, "3.4 MB"
    ),
)


def default_root() -> Path:
    """``$MOBIVISION_DATA/celeba`` or ``<repo>/datasets/celeba``."""
    data = os.environ.get("MOBIVISION_DATA")
    return (Path(data) if data else _REPO / "datasets") / "celeba"


class _Parser(argparse.ArgumentParser):
    """Reports a bad argument as ``ConfigError`` so it ends like every other failure (one line, exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="DIR",
        help="folder with the downloaded files (flat or Img/ Anno/ Eval/)",
    )
    source.add_argument("--download", action="store_true", help="fetch the files from the official Google Drive")
    parser.add_argument("--root", type=Path, default=None, help=f"data root (default: {default_root()})")
    parser.add_argument("--keep-archives", action="store_true", help="with --download: keep the zip after unpacking")
    return parser.parse_args(argv)


def find(source: Path, name: str) -> Path | None:
    """``name`` in ``source`` or one of its ``Img/``, ``Anno/``, ``Eval/`` sub-folders (files or folders)."""
    for sub in SUBFOLDERS:
        path = source / sub / name
        if path.exists():
            return path
    return None


def _where(source: Path) -> str:
    return ", ".join(str(source / sub) if sub else str(source) for sub in SUBFOLDERS)


def _kaggle_hint(source: Path) -> str:
    if find(source, "list_attr_celeba.csv") is not None:
        return (
            "; this looks like the Kaggle mirror (CSV lists): it works with "
            "mobivision.data.attribute_csv.read_attribute_csv, see datasets/celeba/README.md, but this script needs "
            "the official text files"
        )
    return ""


def copy_file(source: Path, destination: Path) -> str:
    """Copy ``source`` to ``destination`` atomically unless the same content is already there; says what it did."""
    if destination.exists() and (source.samefile(destination) or filecmp.cmp(source, destination, shallow=False)):
        return "already in place"
    existed = destination.exists()
    tmp = destination.with_name(destination.name + ".part")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, destination)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot copy {source} to {destination}: {exc}") from exc
    return "replaced (it differed)" if existed else "copied"


def unpack_images(archive: Path, root: Path, *, keep: bool) -> None:
    """Unpack ``img_align_celeba.zip`` into ``root`` and write the marker (the zip is deleted unless ``keep``)."""
    print(f"{ARCHIVE.name}: unpacking {archive} into {root}", flush=True)
    try:
        count = unpack_zip(archive, root)
    except MobivisionError as exc:
        raise DataError(f"{exc}; download {ARCHIVE.name} again") from exc
    if not (root / IMAGES).is_dir():
        raise DataError(f"{archive} holds no {IMAGES}/ folder: is it the official {ARCHIVE.name}?")
    _mark(root, f"{archive}\n{count} files unpacked")
    if not keep:
        archive.unlink()
    print(f"{ARCHIVE.name}: unpacked {count} files", flush=True)


def _mark(root: Path, text: str) -> None:
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    (root / MARKER).write_text(f"{text} {stamp}\n")


def copy_tree(source: Path, destination: Path) -> int:
    """Copy the image folder ``source`` to ``destination``; returns the number of files."""
    if destination.exists() and source.samefile(destination):
        return sum(1 for p in destination.iterdir() if p.is_file())
    try:
        shutil.copytree(source, destination, dirs_exist_ok=True)
    except (OSError, shutil.Error) as exc:
        raise DataError(f"cannot copy {source} to {destination}: {exc}") from exc
    return sum(1 for p in destination.iterdir() if p.is_file())


def from_folder(source: Path, root: Path) -> None:
    """Copy / unpack the downloaded files found in ``source`` into ``root``."""
    if not source.is_dir():
        raise ConfigError(f"--from must be the folder holding the downloaded files, got {source}")
    missing = [f.name for f in LISTS if f.required and find(source, f.name) is None]
    if missing:
        raise DataError(
            f"{', '.join(missing)} not found in {_where(source)} (download them from {OFFICIAL_PAGE}, "
            f"Anno/ and Eval/ of the Google Drive folder){_kaggle_hint(source)}"
        )
    if (root / MARKER).is_file():
        print(f"{IMAGES}: already unpacked ({root / MARKER} exists), skipping", flush=True)
    elif (archive := find(source, ARCHIVE.name)) is not None and archive.is_file():
        unpack_images(archive, root, keep=True)
    elif (folder := find(source, IMAGES)) is not None and folder.is_dir():
        print(f"{IMAGES}: copying the unpacked folder {folder}", flush=True)
        count = copy_tree(folder, root / IMAGES)
        _mark(root, f"{folder}\n{count} files copied")
        print(f"{IMAGES}: {count} files in place", flush=True)
    else:
        raise DataError(
            f"{ARCHIVE.name} (or an unpacked {IMAGES}/ folder) not found in {_where(source)}; download it from "
            f"{OFFICIAL_PAGE} (Img/ of the Google Drive folder){_kaggle_hint(source)}"
        )
    for file in LISTS:
        found = find(source, file.name)
        if found is None:
            print(f"{file.name}: not in {source}, skipping (optional)", flush=True)
            continue
        print(f"{file.name}: {copy_file(found, root / file.name)}", flush=True)
    wild = find(source, WILD_IMAGES)
    if wild is not None and wild.is_dir():
        print(f"{WILD_IMAGES}: copying the in-the-wild images from {wild}", flush=True)
        print(f"{WILD_IMAGES}: {copy_tree(wild, root / WILD_IMAGES)} files in place", flush=True)
    elif any(find(source, f"{WILD_IMAGES}.7z{suffix}") for suffix in ("", ".001")):
        print(
            f"{WILD_IMAGES}: the in-the-wild images come as 7z volumes, which this script cannot unpack; for "
            f"images=in_the_wild run `7z x {WILD_IMAGES}.7z.001 -o{root}` (creates {root / WILD_IMAGES})",
            flush=True,
        )


def _require_gdown() -> None:
    if importlib.util.find_spec("gdown") is None:
        raise ConfigError("--download needs gdown (torchvision uses it for Google Drive): pip install gdown")


def _md5_matches(path: Path, md5: str) -> bool:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() == md5


def download(root: Path, *, keep: bool) -> None:
    """Fetch the official files from Google Drive into ``root`` (MD5-checked) and unpack the images."""
    from torchvision.datasets import utils  # imported late: --help and argument errors stay fast

    files = list(LISTS) if (root / MARKER).is_file() else [ARCHIVE, *LISTS]
    if len(files) == len(LISTS):
        print(f"{IMAGES}: already unpacked ({root / MARKER} exists), skipping", flush=True)
    for file in files:
        path = root / file.name
        if path.is_file() and _md5_matches(path, file.md5):
            print(f"{file.name}: already downloaded (MD5 matches)", flush=True)
            continue
        print(f"{file.name}: downloading from Google Drive (id {file.drive_id}, ~{file.size})", flush=True)
        try:
            utils.download_file_from_google_drive(file.drive_id, str(root), file.name, file.md5)
        except Exception as exc:  # gdown raises its own types; any failure becomes one error line
            raise DataError(
                f"download of {file.name} from Google Drive failed: {type(exc).__name__}: {exc}; Google Drive "
                f"limits downloads per day: try later, or download by hand from {OFFICIAL_PAGE} and use --from"
            ) from exc
    if ARCHIVE in files:
        unpack_images(root / ARCHIVE.name, root, keep=keep)


def verify(root: Path) -> None:
    """Read every split (aligned, and in the wild when ``img_celeba/`` exists) and print the counts."""
    modes = ["aligned"]
    if (root / WILD_IMAGES).is_dir() and (root / "list_bbox_celeba.txt").is_file():
        modes.append("in_the_wild")
    for images in modes:
        for split in CELEBA_SPLITS:
            try:
                records, names = read_celeba(root, split=split, images=images)
            except DataError as exc:
                hint = ""
                if (root / MARKER).is_file():
                    hint = f"; if images are missing, delete {root / MARKER} and run again to put them in place again"
                raise DataError(f"{exc}{hint}") from exc
            official = OFFICIAL_COUNTS[split]
            note = "" if len(records) == official else f" (the official partition has {official:,})"
            label = split if images == "aligned" else f"{split} (in the wild)"
            print(f"{label}: {len(records):,} images, {len(names)} attributes{note}", flush=True)


def run(args: argparse.Namespace) -> None:
    """Put CelebA in place under ``args.root`` as asked, then verify it."""
    root = (args.root if args.root is not None else default_root()).expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--root {root} exists and is not a folder")
    if args.source is None and not args.download:
        if not (root / LISTS[0].name).is_file():
            raise ConfigError(
                f"nothing to verify: {root / LISTS[0].name} does not exist; give --from DIR (the downloaded files) "
                f"or --download"
            )
        print(f"CelebA at {root}: verifying", flush=True)
    else:
        if args.download:
            _require_gdown()  # before anything is created
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create --root {root}: {exc}") from exc
        if args.source is not None:
            source = args.source.expanduser().absolute()
            print(f"CelebA from {source} into {root}", flush=True)
            from_folder(source, root)
        else:
            print(f"CelebA from Google Drive into {root}", flush=True)
            download(root, keep=args.keep_archives)
    verify(root)
    print(f"done: data.root={root}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0, or 2 after one ``error: ...`` line on stderr)."""
    return exit_code(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
