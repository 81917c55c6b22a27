"""Resuming a fit (``resume=auto|<path>``) and fine-tuning from weights only (``init_from=<path>``).

Lightning restores the model, optimizer, LR scheduler, AMP scaler, epoch, global step and loop progress from a
checkpoint. What it does not restore is added here and in ``mobivision.tasks.callbacks``:

* the global RNG states (torch CPU and CUDA, numpy, python ``random``): ``mobivision.tasks.callbacks.ResumeState``
  saves them in every checkpoint and puts them back at ``on_train_start`` of the resumed fit;
* the position in the training data: the training loader is a torchdata ``StatefulDataLoader``, whose
  ``state_dict`` (sampler permutation and batches yielded) Lightning keeps in the checkpoint's loop state and
  loads when it restarts mid-epoch (``ResumeState`` loads it where Lightning misses it);
* the augmentation random state: albumentations draws from generators of its own, seeded from OS entropy unless
  told otherwise, so ``ResumableDataset`` seeds them reproducibly and hands their state to the loader's
  ``state_dict``.

``prepare_resume`` runs at the start of ``mobivision.tasks.runner.train``: it finds the checkpoint, points
``paths.output_dir`` at that checkpoint's run folder (logs, checkpoints and the summary continue there) and
refuses a changed configuration unless ``resume_force=true``. ``init_weights`` loads ``init_from``.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.utils.data import Dataset, get_worker_info

from mobivision.errors import ConfigError, WeightFileError
from mobivision.inference import resolve_checkpoint_path
from mobivision.tasks.checkpoint_io import read_checkpoint
from mobivision.tasks.legacy_names import current_run_config
from mobivision.tasks.monitor import resolve_monitor

log = logging.getLogger("mobivision")

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"

# Keys that may differ between the checkpoint's run and the resumed one (prefixes of dotted keys):
#  - where things are and how they are reported: paths (values under a paths.* folder, e.g. data.root, are compared
#    relative to it, so a moved run or data folder is no change), task_name (names the runs folder), progress, logging,
#    loggers, the mid-epoch checkpoint frequency, testing after training;
#  - the resume options themselves;
#  - the loader's speed knobs (workers, pinned memory);
#  - trainer.accelerator (the same run on another machine);
#  - trainer.max_epochs / trainer.max_steps: extending a run is the common resume; the change is logged, and
#    a schedule that depends on the run's length (cosine) is recomputed for the new length.
RESUME_IGNORED = (
    "paths",
    "task_name",
    "progress",
    "log_every_n_steps",
    "logger",
    "callbacks.last_checkpoint",
    "test_after_training",
    "resume",
    "resume_force",
    "init_from",
    "data.num_workers",
    "data.pin_memory",
    "data.persistent_workers",
    "data.normalize_on_device",
    "channels_last",
    "compile",
    "trainer.accelerator",
    "trainer.max_epochs",
    "trainer.max_steps",
)
RESUME_LENGTH_KEYS = ("trainer.max_epochs", "trainer.max_steps")
_MISSING = "<absent>"


# ----------------------------------------------------------------------------------------------------------------
# resume=auto|<path>


def _in_sweep() -> bool:
    """Whether this run is one job of a Hydra multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def find_last_checkpoint(runs_dir: Path) -> Path | None:
    """The ``<run>/checkpoints/last.ckpt`` under ``runs_dir`` written last (ties: the later run folder name)."""
    if not runs_dir.is_dir():
        return None
    found = [p for p in runs_dir.glob(f"*/{LAST_CHECKPOINT.as_posix()}") if p.is_file()]
    return max(found, key=lambda p: (p.stat().st_mtime, p.parents[1].name), default=None)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: tree}


def _ignored(key: str, ignored: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in ignored)


def config_changes(
    old: dict[str, Any], new: dict[str, Any], *, ignored: tuple[str, ...] = RESUME_IGNORED
) -> list[tuple[str, Any, Any]]:
    """``(dotted key, old value, new value)`` for every leaf that differs, ignored keys left out."""
    before, after = _flatten(old), _flatten(new)
    changes = []
    for key in sorted(before.keys() | after.keys()):
        if _ignored(key, ignored):
            continue
        a, b = before.get(key, _MISSING), after.get(key, _MISSING)
        if a != b or isinstance(a, bool) != isinstance(b, bool):
            changes.append((key, a, b))
    return changes


def _paths_as_references(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with each ``paths.*`` folder inside other string values written as ``${paths.<key>}``, so
    values that follow the run folder or the data folder compare equal after either moved."""
    folders = sorted(
        ((str(v), k) for k, v in (config.get("paths") or {}).items() if isinstance(v, str) and v.startswith("/")),
        key=lambda item: -len(item[0]),
    )

    def swap(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        if isinstance(value, str):
            for folder, key in folders:
                if value == folder or value.startswith(folder + "/"):
                    return "${paths." + key + "}" + value[len(folder) :]
        return value

    return {k: (v if k == "paths" else swap(v)) for k, v in config.items()}


def _format_changes(changes: list[tuple[str, Any, Any]]) -> str:
    return "\n".join(f"  {key}: {old!r} -> {new!r}" for key, old, new in changes)


def _redirect_session_folder(session: Path, run_dir: Path) -> None:
    """Move the log files Hydra opened in this session's fresh folder to the resumed run's folder (appending),
    keep Hydra's record of the session under ``<run>/.hydra/resume_<session>/`` and remove the fresh folder
    when it holds nothing else."""
    if session == run_dir or not session.is_dir():
        return
    entries = list(session.iterdir())
    if any(not (e.name == ".hydra" or (e.is_file() and e.suffix == ".log")) for e in entries):
        log.info("leaving %s in place (it is not empty)", session)
        return
    for handler in logging.root.handlers + log.handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename).parent == session:
            handler.acquire()
            try:
                handler.close()
                target = run_dir / Path(handler.baseFilename).name
                with open(handler.baseFilename) as src, open(target, "a") as dst:
                    dst.write(src.read())
                handler.baseFilename, handler.mode = str(target), "a"
            finally:
                handler.release()
    if (session / ".hydra").is_dir():
        shutil.copytree(session / ".hydra", run_dir / ".hydra" / f"resume_{session.name}", dirs_exist_ok=True)
    shutil.rmtree(session, ignore_errors=True)


def _keep_csv_metrics(run_dir: Path) -> None:
    """Lightning's CSVLogger deletes an existing ``metrics.csv`` when it starts; keep each one as
    ``metrics_<k>.csv`` (k = 1, 2, ... in resume order) beside the new one."""
    for metrics in run_dir.glob("**/metrics.csv"):
        k = 1
        while (kept := metrics.with_name(f"metrics_{k}.csv")).exists():
            k += 1
        metrics.rename(kept)
        log.info("resume: the metrics logged so far are kept in %s", kept)


def prepare_resume(cfg: DictConfig) -> Path | None:
    """The checkpoint to resume from (``resume``), or None to start fresh.

    ``resume=auto``: this run folder's own ``checkpoints/last.ckpt`` if there is one (a requeued job), else the
    newest among the run folders beside it (the parent of ``paths.output_dir``: ``runs/<task_name>/`` with the
    default Hydra run dir) — except in a sweep, whose neighbouring folders are the other jobs. When resuming,
    ``paths.output_dir`` becomes the checkpoint's run folder (the folder above ``checkpoints/``; a checkpoint
    elsewhere leaves it unchanged), this session's fresh folder is removed when Hydra left nothing but its own
    files there, and the CSV metrics logged so far are kept as ``metrics_<k>.csv``. A configuration that differs
    from the checkpoint's (``RESUME_IGNORED`` aside) raises ConfigError naming each key, unless
    ``resume_force=true``. Call it with absolute paths, before anything is written to ``paths.output_dir``.
    """
    resume, init_from = cfg.get("resume"), cfg.get("init_from")
    if resume is not None and init_from is not None:
        raise ConfigError(
            "resume and init_from exclude each other: resume continues a run (weights, optimizer, epoch), "
            "init_from starts a new one from a checkpoint's weights"
        )
    if resume is None:
        return None
    resolve_monitor(cfg)  # compared as training uses it: the monitor filled from the task's primary metric
    session = Path(cfg.paths.output_dir)
    if str(resume) == "auto":
        runs_dir = session.parent
        if (session / LAST_CHECKPOINT).is_file():  # this very folder (a requeued SLURM job, a fixed hydra.run.dir)
            checkpoint = session / LAST_CHECKPOINT
        elif _in_sweep():  # the folders beside a sweep job are the other jobs' runs, not earlier runs of this one
            log.info("resume=auto in a sweep: no %s in this job's folder %s; starting fresh", LAST_CHECKPOINT, session)
            return None
        else:
            checkpoint = find_last_checkpoint(runs_dir)
        if checkpoint is None:
            log.info("resume=auto: no run with %s under %s; starting a fresh run", LAST_CHECKPOINT, runs_dir)
            return None
    else:
        checkpoint = Path(str(resume)).expanduser().resolve()
        if not checkpoint.is_file():
            raise ConfigError(f"resume: checkpoint not found: {checkpoint}")
    # A checkpoint outside a run's checkpoints/ folder (copied elsewhere): the outputs stay in this session's folder.
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == LAST_CHECKPOINT.parent.name else session
    _check_config(cfg, checkpoint, run_dir)
    if _rank() == 0 and run_dir != session:  # DDP: Lightning re-runs this script for the other ranks
        _redirect_session_folder(session, run_dir)
        _keep_csv_metrics(run_dir)
    log.info("resuming from %s; outputs continue in %s", checkpoint, run_dir)
    return checkpoint


def _check_length(cfg: DictConfig, checkpoint: Path, contents: dict[str, Any]) -> None:
    """A run that already went past ``trainer.max_epochs`` is one ``ConfigError`` (Lightning's own check, the same
    condition, ends in a traceback deep inside ``fit``)."""
    epoch, max_epochs = contents.get("epoch"), cfg.trainer.get("max_epochs")
    if isinstance(epoch, int) and max_epochs not in (None, -1) and epoch > max_epochs:
        raise ConfigError(
            f"resume: {checkpoint} is at epoch {epoch}, past trainer.max_epochs={max_epochs}; set "
            f"trainer.max_epochs={epoch + 1} or more to train on"
        )


def _check_config(cfg: DictConfig, checkpoint: Path, run_dir: Path) -> None:
    """Point ``paths.output_dir`` at ``run_dir`` and compare the configuration with the checkpoint's."""
    contents = read_checkpoint(checkpoint)
    _check_length(cfg, checkpoint, contents)
    stored = current_run_config(contents.get("hyper_parameters", {}).get("run_config"))
    cfg.paths.output_dir = str(run_dir)
    force = bool(cfg.get("resume_force"))
    if not isinstance(stored, dict):
        if not force:
            raise ConfigError(
                f"{checkpoint} holds no run configuration (not written by tools/train.py), so a changed "
                "configuration cannot be detected; add resume_force=true to resume anyway"
            )
        log.warning("%s holds no run configuration; resuming without comparing configurations", checkpoint)
        return
    stored = _paths_as_references(stored)
    current = _paths_as_references(OmegaConf.to_container(cfg, resolve=True))
    changes = config_changes(stored, current)
    if changes and not force:
        shown = "; ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in changes)
        raise ConfigError(
            f"the configuration differs from the one of {checkpoint}: {shown}. Resume with the checkpoint's "
            "values, or add resume_force=true to resume with the new ones"
        )
    if changes:
        log.warning("resume_force=true: resuming with a changed configuration:\n%s", _format_changes(changes))
    length = [c for c in config_changes(stored, current, ignored=()) if c[0] in RESUME_LENGTH_KEYS]
    if length:
        log.warning(
            "resuming with a new length (schedules over the run's length are recomputed for it):\n%s",
            _format_changes(length),
        )


# ----------------------------------------------------------------------------------------------------------------
# init_from=<path>


def init_weights(task: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load the weights of the checkpoint ``path`` into ``task`` (nothing else: optimizer, epoch stay fresh).

    Keys of the same name and shape are loaded; the others (a head for another number of classes, keys only one
    side has) are reported in one warning and returned as ``{"loaded", "shape_mismatch", "missing",
    "unexpected"}``. A file that is not a checkpoint, or shares no key with the task, raises WeightFileError.
    """
    path = resolve_checkpoint_path(Path(path).expanduser()).resolve()  # a run folder: its best checkpoint
    if not path.is_file():
        raise WeightFileError(f"init_from: checkpoint not found: {path}")
    source = read_checkpoint(path).get("state_dict")
    if not isinstance(source, dict) or not all(isinstance(v, torch.Tensor) for v in source.values()):
        raise WeightFileError(
            f"init_from: {path} is not a task checkpoint (no 'state_dict' of tensors); for plain weight files of a "
            "backbone use backbone.pretrained"
        )
    target = task.state_dict()
    loaded = {k: v for k, v in source.items() if k in target and v.shape == target[k].shape}
    report = {
        "loaded": sorted(loaded),
        "shape_mismatch": sorted(
            f"{k} {tuple(v.shape)} -> {tuple(target[k].shape)}"
            for k, v in source.items()
            if k in target and v.shape != target[k].shape
        ),
        "missing": sorted(k for k in target if k not in source),
        "unexpected": sorted(k for k in source if k not in target),
    }
    if not loaded:
        raise WeightFileError(f"init_from: {path} shares no weight (same name and shape) with this task")
    task.load_state_dict(loaded, strict=False)
    skipped = {k: v for k, v in report.items() if k != "loaded" and v}
    if skipped:
        log.warning(
            "init_from %s: loaded %d of %d weights; not loaded:\n%s",
            path,
            len(loaded),
            len(target),
            "\n".join(f"  {kind}: {', '.join(keys)}" for kind, keys in skipped.items()),
        )
    else:
        log.info("init_from %s: loaded all %d weights", path, len(loaded))
    return report


# ----------------------------------------------------------------------------------------------------------------
# Random states


def capture_rng(*, cuda: bool = True) -> dict[str, Any]:
    """The global RNG states as plain values and tensors (loadable with ``torch.load(weights_only=True)``)."""
    state, position, has_gauss, gauss = np.random.get_state()[1:]
    rng: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(state.astype(np.int64)), "pos": position, "gauss": (has_gauss, gauss)},
        "python": random.getstate(),
    }
    if cuda and torch.cuda.is_available() and torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(rng: dict[str, Any]) -> None:
    """Set the global RNG states saved by ``capture_rng``."""
    torch.set_rng_state(rng["torch"])
    numpy = rng["numpy"]
    keys = np.asarray(numpy["keys"].numpy(), dtype=np.uint32)
    np.random.set_state(("MT19937", keys, int(numpy["pos"]), int(numpy["gauss"][0]), float(numpy["gauss"][1])))
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in rng and torch.cuda.is_available() and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(rng["cuda"])


def _generators(transform: Any) -> list[tuple[np.random.Generator, random.Random]]:
    """The distinct (numpy, python) generator pairs of an albumentations transform tree, in tree order."""
    found: list[tuple[np.random.Generator, random.Random]] = []
    seen: set[int] = set()
    stack = [transform]
    while stack:
        node = stack.pop(0)
        pair = (getattr(node, "random_generator", None), getattr(node, "py_random", None))
        if isinstance(pair[0], np.random.Generator) and isinstance(pair[1], random.Random) and id(pair[0]) not in seen:
            seen.add(id(pair[0]))
            found.append(pair)
        stack.extend(t for t in getattr(node, "transforms", None) or [] if not isinstance(t, str | bytes))
    return found


def _rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", 0)))


class ResumableDataset(Dataset):
    """The training dataset, with its augmentation random state seeded reproducibly and checkpointed.

    The transform (``dataset.transform``, albumentations) is seeded once per process the first time it is
    used: in the main process (``num_workers=0``) from ``torch.initial_seed()`` and the rank, in a DataLoader
    worker from the worker's seed (which follows the seed and changes every epoch). ``state_dict`` /
    ``load_state_dict`` hold the transform's generator states, plus the global RNG states inside a worker;
    ``StatefulDataLoader`` saves them with its position (per worker), so a resumed epoch draws the same
    augmentations. Other attributes are the wrapped dataset's.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._seeded_key: tuple[Any, ...] | None = None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> Any:
        self._seed()
        return self.dataset[index]

    def __getattr__(self, name: str) -> Any:
        if name in ("dataset", "_seeded_key") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    @staticmethod
    def _process_key() -> tuple[Any, ...]:
        info = get_worker_info()
        return ("worker", info.id, info.seed) if info is not None else ("main", os.getpid())

    def _seed(self) -> None:
        key = self._process_key()
        if self._seeded_key == key:
            return
        self._seeded_key = key
        transform = getattr(self.dataset, "transform", None)
        if hasattr(transform, "set_random_seed"):
            base = key[2] if key[0] == "worker" else torch.initial_seed()
            transform.set_random_seed(int(np.random.SeedSequence([base, _rank()]).generate_state(1)[0]))

    def state_dict(self) -> dict[str, Any]:
        self._seed()
        pairs = _generators(getattr(self.dataset, "transform", None))
        return {
            "transform": [{"numpy": g.bit_generator.state, "python": p.getstate()} for g, p in pairs],
            "rng": capture_rng(cuda=False) if get_worker_info() is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._seed()  # the same generator layout as when the state was saved
        pairs = _generators(getattr(self.dataset, "transform", None))
        if len(pairs) != len(state.get("transform", [])):
            log.warning("the training transform changed since the checkpoint; its random state is not restored")
        else:
            for (generator, py_random), saved in zip(pairs, state["transform"], strict=True):
                generator.bit_generator.state = saved["numpy"]
                version, internal, gauss = saved["python"]
                py_random.setstate((version, tuple(internal), gauss))
        if get_worker_info() is not None and state.get("rng") is not None:
            restore_rng(state["rng"])
