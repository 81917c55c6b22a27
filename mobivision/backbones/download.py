"""Fetch weight files from URLs into a local cache, checked by SHA-256.

The expected digest comes from the URL fragment (``https://host/w.pth#sha256=<hex>``), as pip does for
package hashes. The digest of every download is recorded next to the cached file (``<file>.sha256``) and a
later cache hit without ``#sha256=`` is checked against it, so a corrupted or replaced cache file is caught
(one error naming the file; it is kept for inspection). A cache hit with ``#sha256=`` is checked against the
URL's digest, and a mismatching file is removed. ``.tgz`` / ``.tar.gz`` archives
(the form TF-Slim released its checkpoints in) are unpacked into a folder beside them.

Two generic helpers serve dataset preparation scripts (``datasets/*/prepare.py``) too: ``fetch_to``
downloads a URL to a chosen file atomically (with the same optional ``#sha256=`` check), and ``unpack_zip``
extracts a zip archive after refusing any member that would land outside the target folder.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from mobivision.errors import WeightFileError

URL_SCHEMES = ("http", "https", "file")
_CHUNK = 1 << 20


def is_url(source: str | os.PathLike) -> bool:
    return urllib.parse.urlsplit(str(source)).scheme in URL_SCHEMES


def cache_dir() -> Path:
    """``$MOBIVISION_CACHE`` or ``~/.cache/mobivision``, with a ``weights`` sub-folder."""
    root = os.environ.get("MOBIVISION_CACHE") or Path.home() / ".cache" / "mobivision"
    return Path(root) / "weights"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _expected_digest(url: str) -> tuple[str, str | None]:
    """Split ``url#sha256=hex`` into the URL and the lower-case digest."""
    parts = urllib.parse.urlsplit(url)
    fragment = urllib.parse.parse_qs(parts.fragment)
    digest = fragment.get("sha256", [None])[0]
    if digest is not None and (len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest)):
        raise WeightFileError(f"{url}: '#sha256=' must be 64 hex digits, got {digest!r}")
    return urllib.parse.urlunsplit(parts._replace(fragment="")), digest.lower() if digest else None


def _fetch(url: str, destination: Path, *, timeout: float) -> None:
    """Stream ``url`` to ``destination`` atomically (a partial download never lands in the cache)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    # Not a with-block: the file must outlive it so it can be renamed (closed by the `with tmp` below).
    tmp = tempfile.NamedTemporaryFile(dir=destination.parent, delete=False, suffix=".part")  # noqa: SIM115
    try:
        with tmp, urllib.request.urlopen(url, timeout=timeout) as response:
            shutil.copyfileobj(response, tmp, _CHUNK)
            expected = response.headers.get("Content-Length") if hasattr(response, "headers") else None
            if expected is not None and tmp.tell() != int(expected):
                raise WeightFileError(
                    f"download of {url} failed: connection closed after {tmp.tell()} of {expected} bytes"
                )
        os.replace(tmp.name, destination)
    except WeightFileError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise WeightFileError(f"download of {url} failed: {exc}") from exc
    finally:
        Path(tmp.name).unlink(missing_ok=True)


def _check_digest(path: Path, expected: str, url: str) -> None:
    actual = sha256_of(path)
    if actual != expected:
        path.unlink(missing_ok=True)
        raise WeightFileError(
            f"checksum mismatch for {url}: expected sha256 {expected}, got {actual}; "
            "the download was removed from the cache"
        )


def download(url: str, *, timeout: float = 60.0) -> Path:
    """Local path of ``url``'s file (downloaded once, verified every time); archives are unpacked.

    The file's SHA-256 is recorded beside it (``<file>.sha256``) at download, whether or not the URL
    carried one, so a later use without ``#sha256=`` still checks the cached bytes. A cached file without
    a record (written by an older version) is trusted once and recorded now: downloads land atomically, so
    it is complete, and from then on any change to it is caught.
    """
    url, expected = _expected_digest(url)
    name = Path(urllib.parse.urlsplit(url).path).name or "weights"
    path = cache_dir() / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    record = path.with_name(path.name + ".sha256")
    if not path.exists():
        _fetch(url, path, timeout=timeout)
        if expected is not None:
            _check_digest(path, expected, url)
        _write_record(record, sha256_of(path))
    elif expected is not None:
        _check_digest(path, expected, url)
    else:
        _check_record(path, record)
    return _unpack(path) if name.endswith((".tgz", ".tar.gz")) else path


def _write_record(record: Path, digest: str) -> None:
    """Write ``digest`` to ``record`` atomically (a torn record would fail every later check)."""
    tmp = record.with_name(record.name + ".part")
    tmp.write_text(digest + "\n")
    os.replace(tmp, record)


def _check_record(path: Path, record: Path) -> None:
    """Check a cached file against the digest recorded at its download (record it now if there is none)."""
    actual = sha256_of(path)
    try:
        recorded = record.read_text().strip().lower()
    except FileNotFoundError:
        _write_record(record, actual)
        return
    except OSError as exc:
        raise WeightFileError(f"{record}: cannot read the recorded SHA-256 ({exc})") from exc
    if actual != recorded:
        raise WeightFileError(
            f"{path}: SHA-256 {actual} does not match {recorded or '(empty)'} recorded at download "
            "(delete it to download again)"
        )


def _unpack(archive: Path) -> Path:
    target = archive.with_name(archive.name + ".d")
    if not target.exists():
        tmp = Path(tempfile.mkdtemp(dir=archive.parent))
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise WeightFileError(f"{archive}: cannot unpack archive: {exc}") from exc
        os.replace(tmp, target)
    return target


def fetch_to(url: str, destination: str | os.PathLike, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``destination`` atomically, checking an optional ``#sha256=<hex>`` fragment.

    The bytes stream into a ``.part`` file beside ``destination`` that is renamed only once the transfer is
    complete (and as long as the server announced), so an interrupted download never leaves a file at
    ``destination``; an existing ``destination`` is replaced. No cache is involved.

    Args:
        url: ``http(s)://`` or ``file://`` URL, optionally ending in ``#sha256=<64 hex digits>``.
        destination: The file to write; its folder is created.
        timeout: Seconds to wait for the connection and for each read.

    Returns:
        ``destination`` as a ``Path``.

    Raises:
        WeightFileError: The download failed or was cut short, the fragment is malformed, or the digest does
            not match (the file is then removed).
    """
    url, expected = _expected_digest(url)
    destination = Path(destination)
    _fetch(url, destination, timeout=timeout)
    if expected is not None:
        _check_digest(destination, expected, url)
    return destination


def _zip_member_path(name: str, archive: Path) -> PurePosixPath:
    """The relative path of a zip member, refusing absolute paths, drive letters and ``..`` parts."""
    normalized = name.replace("\\", "/")
    path = PurePosixPath(normalized)
    if path.is_absolute() or (len(normalized) > 1 and normalized[1] == ":") or ".." in path.parts:
        raise WeightFileError(
            f"{archive}: refusing to unpack member {name!r}: absolute paths and '..' would write outside the target"
        )
    return path


def unpack_zip(archive: str | os.PathLike, target: str | os.PathLike) -> int:
    """Extract a zip archive into ``target``, refusing members that would land outside it.

    Every member name is checked before anything is written: an absolute path, a drive letter or a ``..``
    part rejects the whole archive. Integrity is checked by ``zipfile`` while extracting: a truncated archive
    (no central directory) cannot be opened, and a member whose CRC-32 does not match raises. A failure can
    leave some members extracted, so callers record completion themselves (e.g. with a marker file written
    after this returns).

    Args:
        archive: The ``.zip`` file.
        target: The folder to extract into (created); existing files of the same names are overwritten.

    Returns:
        The number of files extracted.

    Raises:
        WeightFileError: The archive is unreadable, truncated or corrupted, or holds an unsafe member name.
    """
    archive, target = Path(archive), Path(target)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [(info, _zip_member_path(info.filename, archive)) for info in zf.infolist()]
            target.mkdir(parents=True, exist_ok=True)
            count = 0
            for info, relative in members:
                if not relative.parts:
                    continue
                path = target.joinpath(*relative.parts)
                if info.is_dir():
                    path.mkdir(parents=True, exist_ok=True)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as source, open(path, "wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
                count += 1
    except WeightFileError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError) as exc:
        raise WeightFileError(f"{archive}: cannot unpack zip archive (truncated or corrupted?): {exc}") from exc
    return count
