"""Download, unpack and verify COCO 2017 detection (Lin et al., "Microsoft COCO", 2014) for ``configs/data/coco.yaml``.

Usage::

    python datasets/coco/prepare.py [--root datasets/coco] [--splits train val] [--keep-archives]
                                    [--base-url http://images.cocodataset.org/] [--sha256 NAME=HEX ...]

Fetches the official archives (``zips/train2017.zip``, ``zips/val2017.zip``,
``annotations/annotations_trainval2017.zip``) and leaves under ``--root``::

    annotations/instances_train2017.json   annotations/instances_val2017.json   (+ captions, keypoints)
    train2017/*.jpg                        val2017/*.jpg

- Downloads are atomic (``mobivision.backbones.download.fetch_to``): bytes go to a ``.part`` file renamed only
  when complete, so an interrupted download is started again from scratch, never resumed or taken as done.
- An archive whose unpacking finished has a ``<root>/<archive>.complete`` marker and is skipped on later runs
  (its zip need not exist any more). A complete zip already at ``<root>/<archive>`` is reused, not fetched.
- Unpacking (``unpack_zip``) refuses members with absolute paths or ``..``, before writing anything.
- Integrity: COCO publishes no SHA-256 digests, so none are built in. ``--sha256 train2017.zip=<hex>`` pins
  one (checked like a ``#sha256=`` URL fragment in ``download.py``); otherwise an archive is checked by
  unzipping it (zipfile checks every member's CRC-32; a truncated zip cannot be opened) and, at the end, by
  reading each split's annotation file with pycocotools and checking that every image it lists exists.

Archives are deleted after unpacking unless ``--keep-archives``. Any failure ends with one ``error: ...``
line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

# Run as a plain script from any cwd: put the repository root on sys.path directly (not via tools/_toolpath,
# which only removes tools/ from the path), and drop this script's folder, which Python adds and which
# doubles as the data root (its unpacked folders must not be importable), as tools/_toolpath.py does for tools/.
_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from mobivision.backbones.download import fetch_to, is_url, sha256_of, unpack_zip  # noqa: E402
from mobivision.commands.cli import exit_code  # noqa: E402
from mobivision.errors import ConfigError, DataError, MobivisionError  # noqa: E402

BASE_URL = "http://images.cocodataset.org/"
SPLITS = ("train", "val")
SHOWN_MISSING = 10
"""How many missing image files a verification error names."""


@dataclass(frozen=True)
class Archive:
    """One official COCO 2017 archive.

    Attributes:
        path: Path under the base URL.
        size: Approximate download size, for the progress line.
    """

    path: str
    size: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


ANNOTATIONS = Archive("annotations/annotations_trainval2017.zip", "241 MB")
IMAGES = {"train": Archive("zips/train2017.zip", "18 GB"), "val": Archive("zips/val2017.zip", "778 MB")}


def default_root() -> Path:
    """``$MOBIVISION_DATA/coco`` or ``<repo>/datasets/coco``: where ``configs/data/coco.yaml`` looks."""
    data = os.environ.get("MOBIVISION_DATA")
    return (Path(data) if data else _REPO / "datasets") / "coco"


class _Parser(argparse.ArgumentParser):
    """Reports a bad argument as ``ConfigError`` so it ends like every other failure (one line, exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = _Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=None, help=f"data root (default: {default_root()})")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS), help="default: train val")
    parser.add_argument("--keep-archives", action="store_true", help="keep the zips after unpacking")
    parser.add_argument("--base-url", default=BASE_URL, help=f"mirror of {BASE_URL} (http, https or file URL)")
    parser.add_argument(
        "--sha256",
        action="append",
        default=[],
        metavar="NAME=HEX",
        help="expected SHA-256 of an archive, e.g. val2017.zip=<64 hex digits> (repeatable)",
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds (default 60)")
    return parser.parse_args(argv)


def _digests(pairs: list[str], archives: list[Archive]) -> dict[str, str]:
    names = {a.name for a in archives}
    digests: dict[str, str] = {}
    for pair in pairs:
        name, sep, digest = pair.partition("=")
        if not sep or name not in names:
            raise ConfigError(f"--sha256 expects NAME=HEX with NAME one of {sorted(names)}, got {pair!r}")
        digests[name] = digest
    return digests


def archive_url(base_url: str, archive: Archive) -> str:
    """The archive's URL under ``base_url`` (a trailing ``/`` is added if missing)."""
    return urllib.parse.urljoin(base_url.rstrip("/") + "/", archive.path)


def prepare_archive(
    archive: Archive, root: Path, *, base_url: str, digest: str | None, keep: bool, timeout: float, step: str
) -> None:
    """Download (or reuse) one archive, unpack it into ``root`` and write its ``.complete`` marker.

    Args:
        archive: Which archive.
        root: The data root.
        base_url: Mirror of ``http://images.cocodataset.org/``.
        digest: Expected SHA-256 (hex) or ``None``.
        keep: Keep the zip after unpacking.
        timeout: Network timeout in seconds.
        step: Prefix of the progress lines, e.g. ``"[1/3]"``.

    Raises:
        MobivisionError: The download, digest check or unpacking failed (no marker is written).
    """
    marker = root / f"{archive.name}.complete"
    if marker.is_file():
        print(f"{step} {archive.name}: already unpacked ({marker} exists), skipping", flush=True)
        return
    zip_path = root / archive.name
    url = archive_url(base_url, archive)
    if zip_path.is_file():
        print(f"{step} {archive.name}: reusing {zip_path} (delete it to download again)", flush=True)
        if digest is not None:
            actual = sha256_of(zip_path)
            if actual != digest.lower():
                raise DataError(
                    f"checksum mismatch for {zip_path}: expected sha256 {digest}, got {actual}; "
                    "delete it to download it again"
                )
    else:
        print(f"{step} {archive.name}: downloading {url} (~{archive.size})", flush=True)
        fetch_to(f"{url}#sha256={digest}" if digest else url, zip_path, timeout=timeout)
    print(f"{step} {archive.name}: unpacking into {root}", flush=True)
    try:
        count = unpack_zip(zip_path, root)
    except MobivisionError as exc:
        raise DataError(f"{exc}; delete {zip_path} to download it again") from exc
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    marker.write_text(f"{url}\n{count} files unpacked {stamp}\n")
    if not keep:
        zip_path.unlink()
    print(f"{step} {archive.name}: unpacked {count} files", flush=True)


def verify_split(root: Path, split: str) -> tuple[int, int]:
    """Read ``annotations/instances_<split>2017.json`` with pycocotools and check that every image exists.

    Args:
        root: The data root.
        split: ``"train"`` or ``"val"``.

    Returns:
        The numbers of images and annotations.

    Raises:
        DataError: The annotation file is missing or unreadable, gives one id to two images, annotations or
            categories, or images it lists are missing (the first few are named, with the count).
    """
    from pycocotools.coco import COCO  # imported late: --help and argument errors stay fast

    from mobivision.data.coco import check_unique_ids

    annotation_file = root / "annotations" / f"instances_{split}2017.json"
    image_dir = root / f"{split}2017"
    if not annotation_file.is_file():
        raise DataError(f"COCO annotation file not found: {annotation_file} (from {ANNOTATIONS.name})")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress on stdout
            coco = COCO(str(annotation_file))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(f"cannot read COCO annotation file {annotation_file}: {type(exc).__name__}: {exc}") from exc
    check_unique_ids(coco.dataset, str(annotation_file))  # pycocotools keeps the last entry of an id silently
    missing = []
    for image_id in sorted(coco.imgs):
        file_name = coco.imgs[image_id].get("file_name")
        if not isinstance(file_name, str) or not (image_dir / file_name).is_file():
            missing.append(str(file_name))
    if not coco.imgs:
        raise DataError(f"{annotation_file} lists no images (expected COCO instances format with 'images')")
    if missing:
        shown = ", ".join(missing[:SHOWN_MISSING])
        more = f" (and {len(missing) - SHOWN_MISSING} more)" if len(missing) > SHOWN_MISSING else ""
        raise DataError(
            f"{len(missing)} of {len(coco.imgs)} images listed in {annotation_file} are missing from {image_dir}: "
            f"{shown}{more}; delete {root / (IMAGES[split].name + '.complete')} and run again to unpack them again"
        )
    return len(coco.imgs), len(coco.anns)


def run(args: argparse.Namespace) -> None:
    """Prepare the archives of ``args.splits`` under ``args.root`` and verify each split."""
    if not is_url(args.base_url):
        raise ConfigError(f"--base-url must be an http, https or file URL, got {args.base_url!r}")
    if args.timeout <= 0:
        raise ConfigError(f"--timeout must be > 0, got {args.timeout}")
    root = (args.root if args.root is not None else default_root()).expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--root {root} exists and is not a folder")
    splits = list(dict.fromkeys(args.splits))
    archives = [ANNOTATIONS, *(IMAGES[s] for s in splits)]
    digests = _digests(args.sha256, archives)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create --root {root}: {exc}") from exc
    print(f"COCO 2017 into {root} (splits: {' '.join(splits)})", flush=True)
    for index, archive in enumerate(archives, start=1):
        prepare_archive(
            archive,
            root,
            base_url=args.base_url,
            digest=digests.get(archive.name),
            keep=args.keep_archives,
            timeout=args.timeout,
            step=f"[{index}/{len(archives)}]",
        )
    for split in splits:
        n_images, n_annotations = verify_split(root, split)
        print(f"{split}2017: verified {n_images} images, {n_annotations} annotations", flush=True)
    print(f"done: data.root={root}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0, or 2 after one ``error: ...`` line on stderr)."""
    return exit_code(lambda: run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
