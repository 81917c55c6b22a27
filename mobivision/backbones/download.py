"""Fetch weight files from URLs into a local cache, checked by SHA-256.

The expected digest comes from the URL fragment (``https://host/w.pth#sha256=<hex>``), as pip does for
package hashes. Without one, the digest of the first download is recorded next to the file and every
later cache hit is checked against it, so a corrupted cache is caught. ``.tgz`` / ``.tar.gz`` archives
(the form TF-Slim released its checkpoints in) are unpacked into a folder beside them.
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
from pathlib import Path

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
    """Local path of ``url``'s file (downloaded once, verified every time); archives are unpacked."""
    url, expected = _expected_digest(url)
    name = Path(urllib.parse.urlsplit(url).path).name or "weights"
    path = cache_dir() / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    recorded = path.with_name(path.name + ".sha256")
    if not path.exists():
        _fetch(url, path, timeout=timeout)
        if expected is None:
            recorded.write_text(sha256_of(path) + "\n")
    _check_digest(path, expected or recorded.read_text().strip(), url)
    return _unpack(path) if name.endswith((".tgz", ".tar.gz")) else path


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
