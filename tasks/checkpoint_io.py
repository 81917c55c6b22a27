"""Checkpoint writes that are atomic and loud: a failed write stops training with one error naming the file.

Written by hand because Lightning 2.6's ``TorchCheckpointIO`` does neither (verified in
``lightning/fabric/utilities/cloud_io.py::_atomic_save`` and fsspec's ``LocalFileOpener``):

* the fsspec transaction writes the temp file with ``tempfile.mkstemp()`` in the system temp folder and moves it
  into place with ``shutil.move``; across file systems that is a copy, so a full disk leaves a truncated
  ``best.ckpt`` behind, and nothing is fsynced;
* ``except PermissionError`` re-raises only for ``EXDEV``: in an unwritable checkpoint folder every save is
  silently skipped and training runs to the end without ``best.ckpt``.

Here the temp file lives in the target folder, is fsynced and renamed over the target with ``os.replace`` (atomic
on POSIX), so the previous checkpoint stays intact until the new one is complete. Lightning lets the error
through: ``Strategy.save_checkpoint`` calls the plugin on global rank 0 only (ranks > 0 never write), nothing in
``ModelCheckpoint`` or ``Trainer.save_checkpoint`` catches it, and ``_call_and_handle_interrupt`` re-raises it
after the ``on_exception`` hooks, so ``trainer.fit`` stops at the failing save.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem
from lightning.fabric.utilities.types import _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO

from mobivision.errors import MobivisionError, WeightFileError, os_error_in


class CheckpointWriteError(MobivisionError, OSError):
    """A checkpoint could not be written or removed (full disk, file-size limit, no permission)."""


def _describe(exc: BaseException) -> str:
    """``[Errno 28] No space left on device``: the cause without the temp file's name."""
    os_error = os_error_in(exc)
    if os_error is not None and os_error.errno is not None:
        return f"[Errno {os_error.errno}] {os_error.strerror}"
    return str(os_error or exc) or type(exc).__name__


def _new_file_mode(target: Path) -> int:
    """The target's current mode, or what ``open()`` would give a new file (``mkstemp`` makes it 0600)."""
    try:
        return target.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable where the platform allows fsync on a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(checkpoint: dict[str, Any], target: Path) -> None:
    """``torch.save`` into a temp file next to ``target``, fsync, ``os.replace``; the temp file never survives."""
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            torch.save(checkpoint, file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp_name, _new_file_mode(target))
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    _fsync_folder(folder)


def _write_error(path: Path, exc: BaseException) -> CheckpointWriteError:
    outcome = "the previous file is unchanged" if os.path.exists(path) else "no file was written"
    return CheckpointWriteError(f"cannot write checkpoint {path}: {_describe(exc)} ({outcome})")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic and whose failures raise ``CheckpointWriteError``.

    Remote paths (``s3://``...) keep Lightning's fsspec writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None) -> None:
        local = _local_path(path)
        if local is None:
            super().save_checkpoint(checkpoint, path, storage_options=storage_options)
            return
        if storage_options is not None:
            raise TypeError(f"storage_options are not supported by {type(self).__name__}, got {storage_options!r}")
        try:
            write_atomically(checkpoint, local)
        except (OSError, RuntimeError) as exc:  # RuntimeError: torch's writer wrapping a failed write
            raise _write_error(local, exc) from exc

    def remove_checkpoint(self, path: _PATH) -> None:
        local = _local_path(path)
        if local is None:
            super().remove_checkpoint(path)
            return
        try:
            local.unlink(missing_ok=True)
        except OSError as exc:
            raise CheckpointWriteError(f"cannot remove checkpoint {local}: {_describe(exc)}") from exc


def _local_path(path: _PATH) -> Path | None:
    """``path`` on the local file system (``file://`` stripped), or None for a remote URL."""
    fs, stripped = url_to_fs(str(path))
    return Path(stripped) if isinstance(fs, LocalFileSystem) else None


def _one_line(exc: BaseException) -> str:
    """The telling line of an exception's message (torch.load's weights-only errors span a dozen lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for i, line in enumerate(lines[:-1]):
        if line.endswith("WeightsUnpickler error:"):
            return lines[i + 1][:200]
    return (lines[0] if lines else type(exc).__name__)[:200]


def read_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file's contents (``torch.load``, weights only, on the CPU); a truncated, foreign or non-dict
    file is one ``WeightFileError`` naming it. The one place checkpoints are read: ``load_task``, resume, init."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for truncated or foreign files
        raise WeightFileError(f"{path}: cannot read checkpoint ({type(exc).__name__}: {_one_line(exc)})") from exc
    if not isinstance(checkpoint, dict):
        raise WeightFileError(f"{path}: not a checkpoint (holds a {type(checkpoint).__name__}, not a dict)")
    return checkpoint
