"""Run folders that are never shared: ``${mv.unique_dir:<path>}`` in ``configs/hydra/default.yaml``.

Hydra names a run folder after the second the run started and creates it with ``mkdir(exist_ok=True)``, so two
runs started in the same second shared one folder (checkpoints, logs and metrics mixed). The resolver claims the
folder with ``os.mkdir``, which only one process can win for a name; a taken name becomes ``<path>_1``,
``<path>_2``, ... It is registered with ``use_cache=True``: OmegaConf keeps the claimed name in the config's resolver
cache, which Hydra copies into every sweep job's config, so one composed config claims one folder however often
``hydra.run.dir`` (or ``hydra.sweep.dir``) is read: by Hydra's ``run_job``, by Lightning's DDP launcher, ...

``RunFolders`` (a Hydra callback, also in ``configs/hydra/default.yaml``) reads that folder before Hydra does, so a
folder that cannot be created (``hydra.run.dir=/proc/x``, a path under a file) ends in one line
``error: hydra.run.dir: cannot create <path> (<cause>)`` and exit code 2 instead of Hydra's traceback. A folder the
user names (``hydra.run.dir=...``) is not claimed: it may exist already, as a resumed run's does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from mobivision.errors import MobivisionError

RESOLVER = "mv.unique_dir"
MAX_SUFFIX = 999  # a name taken a thousand times over is a loop, not a busy second

# The folders this process claimed, each with the parents it had to create (only these may be removed again).
_claimed: dict[Path, list[Path]] = {}
_preview = False  # ``preview()``: name the folder a run would get, create nothing (``check``)


class RunDirError(MobivisionError, InterpolationResolutionError):
    """A run folder that cannot be created. An ``InterpolationResolutionError`` so that OmegaConf passes it on
    unwrapped (it wraps any other exception of a resolver and drops its cause)."""

    path: Path
    cause: str

    @classmethod
    def of(cls, path: Path, cause: str) -> RunDirError:
        error = cls(f"cannot create {path} ({cause})")
        error.path, error.cause = path, cause
        error._initialized = True  # complete as it is: OmegaConf would rebuild it with "full_key: ..." lines
        return error


def _nearest_existing(path: Path) -> Path:
    return next(p for p in (path, *path.parents) if p.exists())


def _describe(path: Path, error: OSError) -> str:
    """Why ``path`` cannot be created, naming the folder that refused: ``/proc: No such file or directory``."""
    existing = _nearest_existing(path.absolute())
    if not existing.is_dir():
        return f"{existing} is a file"
    return f"{existing}: {error.strerror or error}"


def _candidates(base: Path) -> Iterator[Path]:
    yield base
    for k in range(1, MAX_SUFFIX + 1):
        yield base.with_name(f"{base.name}_{k}")


def _first_free(base: Path) -> Path:
    return next((p for p in _candidates(base) if not p.exists()), base)


def claim(path: str) -> str:
    """Create ``path`` (or the first free ``path_<k>``) atomically and return its name, in the form given."""
    base = Path(str(path))
    if _preview:
        return str(_first_free(base))
    try:
        new_parents = [p for p in base.absolute().parents if not p.exists()]
        base.parent.mkdir(parents=True, exist_ok=True)
        for candidate in _candidates(base):
            try:
                candidate.mkdir()  # no exist_ok: of two processes racing for the name, exactly one gets it
            except FileExistsError:
                continue
            _claimed[candidate.absolute()] = new_parents
            return str(candidate)
    except OSError as exc:
        raise RunDirError.of(base.absolute(), _describe(base, exc)) from exc
    raise RunDirError.of(base.absolute(), f"{base.name} up to {base.name}_{MAX_SUFFIX} are all taken")


def register_resolver() -> None:
    """``${mv.unique_dir:<path>}``, evaluated once per composed config (``use_cache``)."""
    OmegaConf.register_new_resolver(RESOLVER, claim, use_cache=True, replace=True)


@contextlib.contextmanager
def preview() -> Iterator[None]:
    """Within: ``${mv.unique_dir:...}`` names the folder a run would claim now, and creates nothing."""
    global _preview
    previous, _preview = _preview, True
    try:
        yield
    finally:
        _preview = previous


def cannot_create(path: Path) -> str | None:
    """Why a run could not create (or write in) ``path``; None: it could. Probed by creating and removing a
    temporary folder in the nearest existing folder: ``os.access`` answers yes to root everywhere, even in ``/proc``
    or on a read-only mount, and only a real ``mkdir`` asks the file system."""
    existing = _nearest_existing(path.absolute())
    if not existing.is_dir():
        return f"{existing} is a file"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".mobivision-probe-", dir=existing))
    except OSError as exc:
        return _describe(path, exc)
    return None


def _start_up_file(entry: Path) -> bool:
    """Written by every run before its work starts: Hydra's ``.hydra/`` and logs, ``train``'s ``config.yaml``."""
    return entry.name == ".hydra" or (entry.is_file() and (entry.suffix == ".log" or entry.name == "config.yaml"))


def release_if_unused(path: str | Path) -> bool:
    """Remove ``path`` if this process claimed it and it holds only start-up files: the folder of a run that stopped
    at a config error. A folder the user named (``hydra.run.dir=...``, a resumed run's) is never removed."""
    folder = Path(path).absolute()
    if folder not in _claimed or not folder.is_dir():
        return False
    if not all(_start_up_file(entry) for entry in folder.iterdir()):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    for parent in _claimed.pop(folder):  # deepest first; one that holds another run's folder stays
        with contextlib.suppress(OSError):
            parent.rmdir()
    return True


def _create_or_exit(config: DictConfig, key: str) -> None:
    """Claim (or create) the folder ``key`` names; one ``error:`` line and exit code 2 when it cannot be created."""
    try:
        folder = Path(str(OmegaConf.select(config, key, throw_on_missing=True)))
        folder.mkdir(parents=True, exist_ok=True)  # a folder the user named; a claimed one exists already
    except RunDirError as exc:
        _exit(f"{key}: cannot create {exc.path} ({exc.cause})")
    except OSError as exc:
        _exit(f"{key}: cannot create {folder.absolute()} ({_describe(folder, exc)})")


def _exit(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)  # SystemExit passes through Hydra's callback guard and its error report (both catch Exception)


class RunFolders(Callback):
    """Creates the run folder (single run) or the sweep folder (``-m``) before Hydra, turning failure into one line."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _create_or_exit(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _create_or_exit(config, "hydra.sweep.dir")


# At import: Hydra imports this module for the RunFolders callback before it resolves hydra.run.dir, so any
# program composing these configs has the resolver (tasks/runner.py registers it too, for its own entry points).
register_resolver()
