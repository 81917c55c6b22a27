"""``check(cfg)``: everything ``tools/train.py`` would need, verified in seconds, without training.

In order: the config resolves; the data root and each split's file or folder exist; weight and checkpoint
paths exist (a URL is only reported: it is downloaded to the cache by the first training); the output folder
can be created (probed with a temporary folder, removed at once; no run folder is claimed); the data module
builds and one training batch loads; the task builds and one forward pass (and the training loss) on that batch
gives finite values; then the expected wall time of the run on this machine: training steps (forward, loss,
backward, optimizer step) on that batch, the loading of training batches and inference are timed for a few
seconds on the device training would use, and scaled by the epochs (or steps), validations and test pass the
config asks for. With ``scan_images`` (``--scan-images``), every image file of the splits is opened with a fast
header check after the splits are read, and the first unreadable ones are named. Each step prints a ``✓`` line;
the first problem prints a ``✗`` line and raises ``CheckError`` (a ``MobivisionError``), which ``run_cli`` turns
into one ``error: <key>: <problem>`` line on stderr and exit code 2.

The forward pass and the timing run on a copy of the task: the task built (``found["task"]``) keeps its weights
and BatchNorm statistics. Nothing is written, except what training itself writes on first use and keeps: a
synthetic dataset (``data.synthetic``) and the geo task's cell partitionings (``data.partitions.dir``).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import math
import re
import shutil
import sys
import tempfile
import time
import urllib.parse
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any, NoReturn

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mobivision.backbones.download import cache_dir, is_url
from mobivision.commands.config_errors import run_hydra
from mobivision.commands.wall_time import (
    StepError,
    WallTime,
    on_device,
    source_batches,
    timed_throughput,
    training_schedule,
)
from mobivision.configs import CONFIG_DIR
from mobivision.data.records import unreadable_images
from mobivision.errors import ConfigError, MobivisionError
from mobivision.factory import default_mean_std
from mobivision.profiling import count_macs, count_parameters
from mobivision.tasks import run_dirs
from mobivision.tasks.base import describe_value
from mobivision.tasks.config_schema import check_config, omegaconf_message
from mobivision.tasks.data_checks import untrainable_data
from mobivision.tasks.monitor import resolve_monitor
from mobivision.tasks.multitask_data import source_modules
from mobivision.tasks.runner import (
    _container,
    build_datamodule,
    build_task,
    run_cli,
    source_configs,
)

log = logging.getLogger("mobivision")

# Keys that may name a file to read before training (absent keys are skipped).
CHECKPOINT_KEYS = ("task.teacher.checkpoint", "init_from", "resume")


class CheckError(MobivisionError):
    """A problem ``check`` found; the message starts with the config key it is about."""


class Report:
    """The ``✓`` / ``!`` / ``✗`` lines, printed as they come and kept in ``lines``."""

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.lines: list[str] = []

    def _add(self, mark: str, text: str) -> None:
        line = f"{mark} {text}"
        self.lines.append(line)
        if self.echo:
            print(line, flush=True)

    def ok(self, text: str) -> None:
        self._add("✓", text)

    def warn(self, text: str) -> None:
        self._add("!", text)

    def fail(self, message: str, cause: BaseException | None = None) -> NoReturn:
        self._add("✗", message)
        raise CheckError(message) from cause


def check(
    cfg: DictConfig,
    *,
    output_dir: str | Path | None = None,
    echo: bool = True,
    scan_images: bool | Collection[str] = False,
) -> dict[str, Any]:
    """Check ``cfg`` (the composed train config) step by step; returns the report lines and what was found.

    ``output_dir``: where training would write (default ``cfg.paths.output_dir``); only tested for
    writability, never created. ``scan_images``: also open every image file of the splits (True: every split; or
    split names such as ``("train",)``) with a fast header check (``--scan-images``).
    """
    report = Report(echo)
    found: dict[str, Any] = {"lines": report.lines}
    _check_config(cfg, report)
    paths = _absolute_paths(cfg)
    pretrained = _check_weights(cfg, report)
    _check_output(Path(output_dir) if output_dir is not None else Path(paths["output_dir"]), report)
    data_cfg = _container(cfg.data)
    parts = data_parts(data_cfg)
    for key, part in parts:
        if not part.get("synthetic"):
            _check_data_paths(part, report, key)
    datamodule = _build_datamodule(cfg, data_cfg, report)
    for key, part in parts:
        if part.get("synthetic"):
            _check_data_paths(part, report, key, written=True)
    _report_splits(datamodule, report)
    if scan_images:
        _scan_images(datamodule, SPLITS if scan_images is True else tuple(scan_images), report)
    if (problem := untrainable_data(datamodule)) is not None:  # the same refusal as train's
        report.fail(problem)
    split, batch = _load_batch(datamodule, report)
    found["batch"] = batch
    task = _build_task(cfg, datamodule, pretrained, report)
    found["task"] = task
    report.ok(f"{split} batch: {task.describe_batch(batch)}")
    trial = copy.deepcopy(task)  # the forward pass moves BatchNorm statistics, the timing trains: not the task's
    _forward(trial, datamodule, batch, report)
    if split != "train":
        report.warn("expected wall time: not estimated (no training split to time)")
    elif (wall_time := _report_wall_time(cfg, datamodule, trial, batch, report)) is not None:
        found["wall_time"], found["expected_seconds"] = wall_time, wall_time.total_seconds
    report.ok("all checks passed: ready to train (nothing trained, no checkpoint written)")
    return found


# --- steps ---------------------------------------------------------------------------------------------------


def _check_config(cfg: DictConfig, report: Report) -> None:
    try:
        resolve_monitor(cfg)  # as train does, before the check
        check_config(cfg, "train")  # the same schema check as train's (tasks/config_schema.py)
        resolved = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except ConfigError as exc:
        report.fail(str(exc), exc)
    except OmegaConfBaseException as exc:
        report.fail(omegaconf_message(exc), exc)
    backbone = resolved["backbone"]
    trainer = resolved["trainer"]
    strategy = trainer.get("strategy")
    if isinstance(strategy, dict):
        strategy = strategy.get("_target_", "?").rpartition(".")[2]
    report.ok(
        f"config: {resolved.get('task_name')} — task {resolved['task']['_target_'].rpartition('.')[2]}, "
        f"backbone {backbone['name']} x{backbone.get('width_mult', 1.0)}, "
        f"data {_describe_data(resolved['data'])}, trainer {trainer.get('accelerator')} x{trainer.get('devices')} "
        f"({strategy}), {trainer.get('max_epochs')} epochs, seed {resolved.get('seed')}"
    )
    _check_ddp_freeze(resolved, report)
    try:
        default_mean_std(backbone["name"])
    except MobivisionError as exc:
        report.fail(f"backbone.name: {exc}", exc)
    accelerator = str(trainer.get("accelerator"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        report.warn(f"trainer.accelerator: {accelerator}, but this machine has no CUDA device (fine on a login node)")


def _describe_data(data_cfg: dict[str, Any]) -> str:
    """``ClassName at 64 px (batch 32)`` per data module (a multi-task model's: per source)."""
    parts = [
        f"{key.removeprefix('data.sources.') + ' ' if key != 'data' else ''}{part['_target_'].rpartition('.')[2]} at "
        f"{part.get('resolution')} px (batch {part.get('batch_size')})"
        for key, part in data_parts(data_cfg)
    ]
    return "; ".join(parts)


def _check_ddp_freeze(resolved: dict[str, Any], report: Report) -> None:
    """DDP without unused-parameter detection fails on the 2nd step while the backbone is frozen (no gradients)."""
    strategy = resolved["trainer"].get("strategy")
    if isinstance(strategy, dict):
        ddp = str(strategy.get("_target_", "")).endswith("DDPStrategy") and not strategy.get("find_unused_parameters")
    else:
        ddp = strategy in ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")
    freeze = ((resolved.get("callbacks") or {}).get("backbone_freeze") or {}).get("unfreeze_at_epoch") or 0
    if ddp and freeze > 0:
        report.fail(
            f"trainer.strategy: DDP without find_unused_parameters, but callbacks.backbone_freeze.unfreeze_at_epoch="
            f"{freeze} freezes the backbone (its parameters get no gradient); add "
            "trainer.strategy.find_unused_parameters=true"
        )


def _absolute_paths(cfg: DictConfig) -> dict[str, str]:
    """``cfg.paths`` made absolute, as training does, but without creating the output folder."""
    paths = {}
    for key in ("root_dir", "data_dir", "output_dir"):
        paths[key] = str(Path(cfg.paths[key]).expanduser().resolve())
        cfg.paths[key] = paths[key]
    return paths


def data_parts(data_cfg: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(key, config)`` of each data module: the data config, or each source of a multi-task model's."""
    if not data_cfg.get("sources"):
        return [("data", data_cfg)]
    return [(f"data.sources.{name}", _container(cfg)) for name, cfg in source_configs(data_cfg).items()]


def _split_paths(data_cfg: dict[str, Any], prefix: str) -> list[tuple[str, Path, str]]:
    """``(key, path, kind)`` of every configured split file or folder; official formats name splits, not files."""
    root = Path(data_cfg["root"])
    if isinstance(data_cfg.get("splits"), dict):  # detection: COCO annotation file + image folder per split
        return [
            (f"{prefix}.splits.{split}.{part}", root / paths[part], "file" if part == "annotations" else "folder")
            for split, paths in data_cfg["splits"].items()
            if paths
            for part in ("annotations", "images")
        ]
    fmt = data_cfg.get("format")
    if fmt not in ("image_folder", "csv"):  # cub, stanford_dogs, celeba: their readers name missing files
        return []
    kind = "folder" if fmt == "image_folder" else "file"
    return [
        (f"{prefix}.{split}_split", root / name, kind)
        for split in ("train", "val", "test")
        if (name := data_cfg.get(f"{split}_split"))
    ]


def _check_data_paths(data_cfg: dict[str, Any], report: Report, prefix: str, *, written: bool = False) -> None:
    root = Path(data_cfg["root"])
    if not root.is_dir():
        report.fail(f"{prefix}.root: {root} {'is not a folder' if root.exists() else 'does not exist'}")
    if written:
        report.ok(f"{prefix}.root: {root} (synthetic data, written on first use and kept)")
    else:
        report.ok(f"{prefix}.root: {root}")
    for key, path, kind in _split_paths(data_cfg, prefix):
        if not path.exists():
            report.fail(f"{key}: {path} does not exist")
        if (kind == "folder") != path.is_dir():
            report.fail(f"{key}: {path} is not a {kind}")
    if data_cfg.get("format") in ("cub", "stanford_dogs", "celeba"):
        report.ok(f"{prefix}.format: {data_cfg['format']} (official split files, read below)")


def _build_datamodule(cfg: DictConfig, data_cfg: dict[str, Any], report: Report):
    data_cfg = {**data_cfg, "num_workers": 0, "persistent_workers": False}  # one batch: no worker processes
    cell_dirs = [
        (key, Path(part["partitions"]["dir"]))
        for key, part in data_parts(data_cfg)
        if (part.get("partitions") or {}).get("dir")
    ]
    cells_before = {folder: set(folder.glob("cells_*.csv")) for _, folder in cell_dirs}
    try:
        datamodule = build_datamodule(data_cfg, cfg.backbone.name)
    except (MobivisionError, OmegaConfBaseException) as exc:
        report.fail(_keyed("data", exc), exc)
    except Exception as exc:
        cause = exc.__cause__
        if isinstance(cause, MobivisionError):  # through Hydra's InstantiationException
            report.fail(_keyed("data", cause), cause)
        raise
    for key, folder in cell_dirs:
        new = sorted(set(folder.glob("cells_*.csv")) - cells_before[folder])
        if new:
            report.ok(f"{key}.partitions.dir: built {', '.join(p.name for p in new)} in {folder} (kept)")
    return datamodule


def _keyed(key: str, error: BaseException) -> str:
    """``<key>: <error>``, unless the message already starts with a key below ``key``."""
    text = str(error)
    return text if text.startswith(f"{key}.") else f"{key}: {text}"


def _report_splits(datamodule: Any, report: Report) -> None:
    for source, module in source_modules(datamodule).items():
        prefix = f"{source}: " if source else ""
        names = getattr(module, "class_names", [])
        for split, dataset in module.datasets.items():
            report.ok(f"{prefix}{split} split: {len(dataset)} images" + (f", {len(names)} classes" if names else ""))


SPLITS = ("train", "val", "test")
SCAN_WORKERS = 8  # threads opening files: the scan waits on the disk, not on the CPU
SCAN_SHOWN = 5  # unreadable files named in the error line


def _scan_images(datamodule: Any, splits: tuple[str, ...], report: Report) -> None:
    """Every image file of ``splits`` (of each source) opened with a header check (``unreadable_images``): one
    ``✓`` line per split, or a failure naming the first unreadable files and their count."""
    unknown = [split for split in splits if split not in SPLITS]
    if unknown:
        report.fail(f"--scan-images: unknown split {unknown[0]!r} (expected {', '.join(SPLITS)})")
    modules = source_modules(datamodule)
    missing = [s for s in splits if not any(s in m.datasets for m in modules.values())]
    if missing and splits != SPLITS:
        report.fail(f"--scan-images: the data has no {missing[0]} split")
    for source, module in modules.items():
        key, prefix = (f"data.sources.{source}", f"{source}: ") if source else ("data", "")
        for split in splits:
            if split not in module.datasets:
                continue
            files = list(dict.fromkeys(module.datasets[split].image_files()))
            started = time.monotonic()
            bad = unreadable_images(files, workers=SCAN_WORKERS, max_image_mpx=module.max_image_mpx)
            seconds = time.monotonic() - started
            if bad:
                named = ", ".join(f"{path} ({reason})" for path, reason in bad[:SCAN_SHOWN])
                more = f" and {len(bad) - SCAN_SHOWN} more" if len(bad) > SCAN_SHOWN else ""
                report.fail(f"{key}: {len(bad):,} of {len(files):,} {split} images cannot be read: {named}{more}")
            report.ok(f"{prefix}{split} split: {len(files):,} images readable (header check, {seconds:.1f} s)")


def _check_weights(cfg: DictConfig, report: Report) -> str | None:
    """Weight and checkpoint paths; returns the pretrained source to build the task with (None for a URL)."""
    pretrained = cfg.backbone.get("pretrained")
    if pretrained is None:
        report.ok("backbone.pretrained: none (trained from scratch)")
    elif is_url(pretrained):
        cached = _cached_download(str(pretrained))
        where = f"already in the cache: {cached}" if cached else f"downloaded by the first training to {cache_dir()}"
        report.ok(f"backbone.pretrained: {pretrained} ({where}); the check builds the network without it")
        pretrained = None
    else:
        path = Path(str(pretrained)).expanduser()
        if not path.exists() and not Path(f"{path}.index").exists():  # a TF checkpoint is named by its prefix
            report.fail(f"backbone.pretrained: {path} does not exist")
        report.ok(f"backbone.pretrained: {path}")
    for key in CHECKPOINT_KEYS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is None or value == "auto" or isinstance(value, bool):
            continue
        path = Path(str(value)).expanduser()
        if not path.is_file():
            report.fail(f"{key}: {path} does not exist")
        report.ok(f"{key}: {path}")
    return pretrained


def _cached_download(url: str) -> Path | None:
    """The cache folder ``mobivision.backbones.download`` keeps ``url`` in, if it is there already."""
    plain = urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(fragment=""))
    folder = cache_dir() / hashlib.sha256(plain.encode()).hexdigest()[:16]
    return folder if folder.is_dir() and any(folder.iterdir()) else None


def _check_output(output_dir: Path, report: Report) -> None:
    """The run could create (or write in) ``output_dir``: probed for real, and nothing is left behind."""
    problem = run_dirs.cannot_create(output_dir)
    if problem is not None:
        report.fail(f"paths.output_dir: cannot create {output_dir} ({problem})")
    existing = next(p for p in (output_dir, *output_dir.parents) if p.exists())
    state = "exists" if existing == output_dir else f"created by training, under {existing}"
    report.ok(f"paths.output_dir: {output_dir} ({state}; writable)")


def _load_batch(datamodule: Any, report: Report) -> tuple[str, Any]:
    """The first training batch (validation without a train split); a multi-task model's: one per source."""
    modules = source_modules(datamodule)
    split = "train" if all("train" in m.datasets for m in modules.values()) else "val"
    batches = {}
    for source, module in modules.items():
        prefix = f"{source}: " if source else ""
        loader = module.train_dataloader() if split == "train" else module.val_dataloader()
        try:
            batches[source] = next(iter(loader))
        except StopIteration:
            report.fail(
                f"{prefix}data.batch_size: the {split} split ({len(module.datasets[split])} images) gives no full "
                f"batch of {module.batch_size}"
            )
        except MobivisionError as exc:
            report.fail(f"{prefix}data: loading a {split} batch: {exc}", exc)
    return split, batches.get("", batches)


def _build_task(cfg: DictConfig, datamodule: Any, pretrained: str | None, report: Report) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            task = build_task(cfg, datamodule, pretrained=pretrained)
    except Exception as exc:
        cause = exc
        while cause is not None and not isinstance(cause, MobivisionError | OmegaConfBaseException):
            cause = cause.__cause__
        if cause is None:
            raise
        report.fail(f"{_key_of(cfg, cause)}: {cause}", cause)
    params = count_parameters(task.model)
    size = task.input_size
    try:
        macs = f", {count_macs(task.model, size) / 1e6:.1f} M multiply-adds per image"
    except Exception:  # the count is a courtesy; the forward below reports real problems
        macs = ""
    report.ok(f"task: {type(task).__name__}, {params / 1e6:.3f} M parameters{macs} at {size[1]}x{size[0]} px")
    return task


def _key_of(cfg: DictConfig, error: BaseException) -> str:
    """The config key a task-building error is about: a backbone option it names, else ``task``."""
    text = str(error)
    for key in cfg.backbone:
        if (key != "name" and re.search(rf"\b{key}\b", text)) or (key == "pretrained" and "weights" in text):
            return f"backbone.{key}"
    return "task"


def _forward(task: Any, datamodule: Any, batch: Any, report: Report) -> None:
    task.train()
    shape = tuple(source_batches(batch)[0]["image"].shape)
    try:
        with torch.no_grad(), warnings.catch_warnings(), _quiet_lightning():
            warnings.simplefilter("ignore")
            batch = on_device(task, datamodule, batch)
            output = task(source_batches(batch)[0]["image"])
            loss = task.training_step(batch, 0)
    except MobivisionError as exc:
        report.fail(f"task: forward pass: {exc}", exc)
    except Exception as exc:
        report.fail(f"task: forward pass on the {shape} batch: {type(exc).__name__}: {exc}", exc)
    loss = loss["loss"] if isinstance(loss, dict) else loss
    value = float(loss)
    if not math.isfinite(value):
        report.fail(f"task: the training loss of the first batch is {value}")
    report.ok(f"forward pass: output {describe_value(output)}; training loss {value:.4f}")


@contextlib.contextmanager
def _quiet_lightning():
    """``self.log`` outside a Trainer warns through Lightning's logger; this is expected here."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _report_wall_time(cfg: DictConfig, datamodule: Any, task: Any, batch: Any, report: Report) -> WallTime | None:
    """Times ``task`` (a copy: it is trained) on ``batch``, the data loading and inference; prints the expected wall
    time of the run (None: it cannot be estimated)."""
    trainer = _container(cfg.trainer)
    workers = sum(int(part.get("num_workers") or 0) for _, part in data_parts(_container(cfg.data)))
    test_after_training = bool(cfg.get("test_after_training"))
    schedule = training_schedule(trainer, datamodule, workers=workers, test_after_training=test_after_training)
    if schedule is None:
        report.warn("expected wall time: not estimated (trainer.max_epochs=-1 without trainer.max_steps: no set end)")
        return None
    with warnings.catch_warnings(), _quiet_lightning():
        warnings.simplefilter("ignore")  # self.log outside a Trainer; the first batch already showed the data's
        try:
            throughput = timed_throughput(task, batch, datamodule, trainer)
        except StepError as exc:  # the forward pass worked: backward or the optimizer failed, or the device is full
            report.fail(str(exc), exc)
    wall_time = WallTime(throughput, schedule)
    report.ok(wall_time.describe())
    return wall_time


# --- command line -----------------------------------------------------------------------------------------------

RUN_DIR = "hydra.run.dir="
SCAN_IMAGES = "--scan-images"


def _scan_images_option(argv: list[str]) -> tuple[bool | tuple[str, ...], list[str]]:
    """``--scan-images`` (every split) or ``--scan-images=train[,val...]`` taken out of ``argv`` (Hydra would refuse
    it); returns what ``check`` takes as ``scan_images`` (False: no scan) and the other arguments."""
    scan: bool | tuple[str, ...] = False
    rest = []
    for arg in argv:
        if arg == SCAN_IMAGES:
            scan = True
        elif arg.startswith(SCAN_IMAGES + "="):
            scan = tuple(s.strip() for s in arg[len(SCAN_IMAGES) + 1 :].split(",") if s.strip()) or True
        else:
            rest.append(arg)
    return scan, rest


def _intended_output_dir(cfg: DictConfig, user_run_dir: str | None) -> Path:
    """Where ``tools/train.py`` with these arguments would write: ``paths.output_dir`` if set explicitly,
    else Hydra's configured run folder (this tool's own run folder is a temporary one). The run folder is only
    named, not claimed (``run_dirs.preview``): ``check`` creates no run folder."""
    hydra_cfg = HydraConfig.get()
    output_dir = Path(cfg.paths.output_dir).expanduser().resolve()
    if output_dir != Path(hydra_cfg.runtime.output_dir).resolve():
        return output_dir
    if user_run_dir is not None:
        return Path(user_run_dir).expanduser().resolve()
    hydra_overrides = [o for o in hydra_cfg.overrides.hydra if not o.startswith(RUN_DIR)]  # e.g. hydra.searchpath
    composed = hydra.compose(
        config_name=hydra_cfg.job.config_name,
        overrides=[*hydra_overrides, *hydra_cfg.overrides.task],
        return_hydra_config=True,
    )
    with run_dirs.preview():
        return Path(OmegaConf.select(composed, "hydra.run.dir")).expanduser().resolve()


def check_main() -> None:
    """``check [--scan-images[=train,...]] <train arguments>``: Hydra's own run folder goes to a temporary folder,
    removed at exit; the folder the user's arguments name is only tested for writability. ``--scan-images`` (taken
    out before Hydra reads the arguments) also opens every image file of all (or the named) splits."""
    scratch = tempfile.mkdtemp(prefix="mobivision-check-")
    scan_images, argv = _scan_images_option(sys.argv)
    user = [a for a in argv[1:] if a.startswith(RUN_DIR)]
    user_run_dir = user[-1][len(RUN_DIR) :] if user else None

    @hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
    def main(cfg: DictConfig) -> None:
        run_cli(
            lambda c: check(c, output_dir=_intended_output_dir(c, user_run_dir), scan_images=scan_images),
            cfg,
        )

    sys.argv = [a for a in argv if not a.startswith(RUN_DIR)] + [RUN_DIR + scratch]
    try:
        run_hydra(main)  # an override Hydra cannot compose: one error line (mobivision/commands/config_errors.py)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
