"""``train(cfg)`` and ``evaluate(cfg)``: everything the Hydra entry points do, callable from tests.

This is the only module that calls ``hydra.utils.instantiate``. Paths are made absolute at start-up and
logged; a user mistake (``MobivisionError``, a missing config value) ends in one line on stderr and exit
code 2 through ``run_cli``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import RichProgressBar
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mobivision.errors import ConfigError, MobivisionError, WeightFileError, user_message
from mobivision.factory import default_mean_std
from mobivision.inference import resolve_checkpoint_path
from mobivision.tasks.base import TaskModule
from mobivision.tasks.callbacks import PlainProgress, SkippedImages, StopOtherRanks
from mobivision.tasks.checkpoint_io import AtomicCheckpointIO, read_checkpoint
from mobivision.tasks.config_schema import check_config, check_data, omegaconf_message
from mobivision.tasks.data_checks import require_evaluable_data, require_trainable_data
from mobivision.tasks.legacy_names import current_run_config
from mobivision.tasks.monitor import resolve_monitor
from mobivision.tasks.registry import task_class
from mobivision.tasks.resume import init_weights, prepare_resume
from mobivision.tasks.run_dirs import register_resolver as register_unique_dir_resolver

log = logging.getLogger("mobivision")
# paths.root_dir: the folder the command runs in, so run folders and data never land inside an installed package.
OmegaConf.register_new_resolver("mv.cwd", os.getcwd, replace=True)
register_unique_dir_resolver()  # ${mv.unique_dir:...} in hydra.run.dir: a run folder no other run shares


def _absolute_paths(cfg: DictConfig) -> None:
    for key in ("root_dir", "data_dir", "output_dir"):
        cfg.paths[key] = str(Path(cfg.paths[key]).expanduser().resolve())
    Path(cfg.paths.output_dir).mkdir(parents=True, exist_ok=True)
    log.info("paths: %s", dict(cfg.paths))


SKIPPED_IMAGES = "skipped_images.txt"
"""The run folder's list of the unreadable training images ``data.on_error=skip`` replaced (``SkippedImages``)."""


def _callbacks(cfg: DictConfig) -> list[L.Callback]:
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    # One warning per epoch for the images skipped by every loader worker, the full list in the run folder.
    callbacks.append(SkippedImages(Path(cfg.paths.output_dir) / SKIPPED_IMAGES))
    callbacks.append(StopOtherRanks())  # DDP: a user error on rank 0 ends the other ranks too, without a traceback
    progress = cfg.get("progress", "auto")
    if progress == "rich" or (progress == "auto" and sys.stdout.isatty()):
        callbacks.append(RichProgressBar())
    else:
        callbacks.append(PlainProgress(every_n_steps=cfg.get("log_every_n_steps", 50)))
    return callbacks


def _trainer(cfg: DictConfig, **overrides: Any) -> L.Trainer:
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    progress_bar = cfg.get("progress", "auto") == "rich" or (
        cfg.get("progress", "auto") == "auto" and sys.stdout.isatty()
    )
    return instantiate(
        cfg.trainer,
        callbacks=_callbacks(cfg),
        logger=loggers or False,
        enable_progress_bar=progress_bar,
        plugins=[AtomicCheckpointIO()],  # atomic writes; a failed one stops the run with one error (checkpoint_io.py)
        **overrides,
    )


def build_datamodule(data_cfg: DictConfig | dict, backbone_name: str) -> L.LightningDataModule:
    """The data module of ``data_cfg``, set up, with the backbone's default mean/std unless the config sets them."""
    data_cfg = OmegaConf.create(data_cfg)
    if "sources" in data_cfg:  # a multi-task model's data: one data module per source (tasks/multitask_data.py)
        sources = {name: build_datamodule(source, backbone_name) for name, source in source_configs(data_cfg).items()}
        datamodule = instantiate({"_target_": data_cfg._target_}, sources=sources)
        datamodule.setup()
        return datamodule
    mean, std = default_mean_std(backbone_name)
    if data_cfg.get("mean") is None:
        data_cfg.mean, data_cfg.std = list(mean), list(std)
    datamodule = instantiate(data_cfg, _convert_="all")
    datamodule.setup()
    return datamodule


def source_configs(data_cfg: DictConfig | dict) -> dict[str, Any]:
    """The data config of each source of a multi-task model's data, with the keys beside ``sources``
    (``num_workers``, ``batch_size``...) set in every source unless null."""
    data_cfg = OmegaConf.create(data_cfg)
    shared = {k: v for k, v in data_cfg.items() if k not in ("_target_", "sources") and v is not None}
    return {name: OmegaConf.merge(source, shared) for name, source in data_cfg.sources.items()}


def _container(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)


def _write_summary(output_dir: Path, summary: dict[str, Any]) -> None:
    (output_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")


def _metrics(results: list[dict[str, float]] | dict[str, Any]) -> dict[str, float]:
    merged: dict[str, float] = {}
    for item in results if isinstance(results, list) else [results]:
        merged.update({k: float(v) for k, v in item.items()})
    return merged


def build_task(cfg: DictConfig, datamodule: L.LightningDataModule, **backbone: Any) -> TaskModule:
    """The configured task with what it needs from the data (label map, pre-processing); ``backbone`` overrides
    backbone options (``tools/check.py`` builds it without downloading weights)."""
    return instantiate(
        cfg.task,
        backbone={**_container(cfg.backbone), **backbone},
        optimizer=_container(cfg.optimizer),
        scheduler=_container(cfg.scheduler),
        **datamodule.task_inputs(),
        data_meta=datamodule.meta,
        run_config=_container(cfg),
        _recursive_=False,
        _convert_="all",
    )


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the configured task, test the best checkpoint, write ``summary.json``; returns the summary."""
    started = time.monotonic()
    resolve_monitor(cfg)  # before the check: the checkpoint callback's monitor and mode interpolate it
    check_config(cfg, "train")  # types and ranges of every key, before any work (tasks/config_schema.py)
    _absolute_paths(cfg)
    log.info("best checkpoint by %s (%s)", cfg.monitor.metric, cfg.monitor.mode)
    # resume: outputs continue in the checkpoint's run folder; a changed configuration is refused (tasks/resume.py)
    resume_from = prepare_resume(cfg)
    L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    if rank_zero_only.rank == 0:  # DDP: Lightning re-runs this script for ranks > 0, in the same folder
        OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)
    datamodule = build_datamodule(_container(cfg.data), cfg.backbone.name)
    require_trainable_data(datamodule)  # one class, a split smaller than a batch: refused before any step
    task = build_task(cfg, datamodule)
    if cfg.get("init_from"):
        init_weights(task, cfg.init_from)
    speed_up(task, channels_last=cfg.get("channels_last", False), compile_mode=cfg.get("compile"))
    trainer = _trainer(cfg)
    trainer.fit(task, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    summary: dict[str, Any] = {
        "output_dir": str(output_dir),
        "best_checkpoint": best,
        "last_checkpoint": str(output_dir / "checkpoints" / "last.ckpt"),
        "val": _metrics({k: v for k, v in trainer.callback_metrics.items() if k.startswith("val/")}),
    }
    if cfg.get("test_after_training") and datamodule.splits.get("test"):
        results = trainer.test(task, datamodule=datamodule, ckpt_path=best or None, verbose=False)
        summary["test"] = _metrics(results)
        _write_evaluation(task, output_dir, "test", summary)
    if task.chance_level is not None:
        summary["chance"] = task.chance_level
    summary["seconds"] = round(time.monotonic() - started, 1)
    if trainer.is_global_zero:
        _write_summary(output_dir, summary)
        _print_metrics(summary)
    return summary


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
"""``torch.compile`` modes the ``compile`` training option takes (``reduce-overhead``: CUDA graphs)."""


def speed_up(task: TaskModule, *, channels_last: bool, compile_mode: str | None) -> None:
    """The training speed options: the network's weights in NHWC memory (``channels_last``; convolutions then run
    NHWC, their fastest layout on GPUs) and ``torch.compile`` of ``task.compiled_modules()`` (``compile``). Both
    keep the weights and their names, so checkpoints load the same either way."""
    if compile_mode is not None and compile_mode not in COMPILE_MODES:
        raise ConfigError(
            f"compile: {compile_mode!r} is not a torch.compile mode (expected null or one of {COMPILE_MODES})"
        )
    if channels_last:
        task.model.to(memory_format=torch.channels_last)
    if compile_mode is not None:
        for module in task.compiled_modules():
            module.compile(mode=compile_mode)


def load_task(checkpoint: str | Path) -> TaskModule:
    """Load any mobivision task checkpoint (a run folder or a folder of runs: its newest run's best checkpoint); the
    task class is recorded in the checkpoint. Every failure (missing, truncated or foreign file, weights that do not
    fit the configured network) is one ``WeightFileError``."""
    path = resolve_checkpoint_path(checkpoint)
    if not path.is_file():
        raise WeightFileError(f"checkpoint not found: {path}")
    try:
        contents = read_checkpoint(path)
        target = contents["mobivision"]["task"]
    except (KeyError, TypeError) as exc:
        raise WeightFileError(f"{path}: not a mobivision task checkpoint (no 'mobivision.task' entry)") from exc
    try:
        task_cls = task_class(str(target))
    except WeightFileError as exc:
        raise WeightFileError(f"{path}: {exc}") from exc
    # The run configuration with the data modules of 0.1.0 in today's spelling (tasks/legacy_data_targets.py).
    run_config = current_run_config(contents.get("hyper_parameters", {}).get("run_config"))
    try:
        return task_cls.load_from_checkpoint(path, map_location="cpu", weights_only=True, run_config=run_config)
    except MobivisionError:
        raise
    except Exception as exc:  # load_state_dict: RuntimeError; odd hyper-parameters: TypeError, KeyError, ...
        detail = " ".join(line.strip() for line in str(exc).splitlines()[:2] if line.strip())[:400]
        if isinstance(exc, RuntimeError) and "state_dict" in str(exc):
            raise WeightFileError(
                f"{path}: the weights do not fit the network its configuration builds ({detail})"
            ) from exc
        raise WeightFileError(f"{path}: cannot build the task ({type(exc).__name__}: {detail})") from exc


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test a checkpoint on the split ``cfg.split`` of its training data (or ``cfg.data``)."""
    check_config(cfg, "eval")
    _absolute_paths(cfg)
    task = load_task(cfg.ckpt_path)
    data_cfg = evaluation_data(cfg.get("data"), task.hparams.run_config["data"])
    datamodule = build_datamodule(data_cfg, task.backbone_cfg["name"])
    require_evaluable_data(task, datamodule, cfg.split)  # labels of another task fail deep in test_step otherwise
    data_names, task_names = getattr(datamodule, "class_names", None), getattr(task, "class_names", None)
    if data_names is not None and task_names is not None and data_names != task_names:
        raise ConfigError(
            f"classes of the data {datamodule.class_names} differ from the checkpoint's {task.class_names}"
        )
    trainer = _trainer(cfg)
    loader = datamodule.test_dataloader() if cfg.split == "test" else datamodule.val_dataloader()
    results = trainer.test(task, dataloaders=loader, verbose=False)
    summary = {"checkpoint": str(resolve_checkpoint_path(cfg.ckpt_path)), "split": cfg.split, "test": _metrics(results)}
    _write_evaluation(task, Path(cfg.paths.output_dir), cfg.split, summary)
    if trainer.is_global_zero:
        _write_summary(Path(cfg.paths.output_dir), summary)
        _print_metrics(summary)
    return summary


def evaluation_data(data: DictConfig | None, trained_on: dict[str, Any]) -> dict[str, Any]:
    """The data config eval uses: ``data=<config>`` as given; otherwise the checkpoint's own (``trained_on``)
    with any ``data.<key>=v`` overrides merged in; checked either way."""
    if data is not None and "_target_" in data:
        merged = _container(data)
    else:
        merged = _container(OmegaConf.merge(trained_on, data or {}))
    check_data(merged)
    return merged


def _write_evaluation(task: TaskModule, output_dir: Path, split: str, summary: dict[str, Any]) -> None:
    """The task's evaluation reports (its evaluator's: detection results json, per-class AP table, predictions
    picture; classification confusion matrix, per-class accuracy, most-confused pairs, predictions CSV; ...); the
    first Markdown table is printed."""
    if task.trainer.is_global_zero:
        files = task.write_evaluation(output_dir, split)
        summary["files"] = [str(f) for f in files]
        computed_by = getattr(task.evaluator, "computed_by", None)
        if computed_by:
            summary["computed_by"] = computed_by
            print(f"{split} metrics computed with {computed_by}", flush=True)
        table = next((f for f in files if f.suffix == ".md"), None)
        if table is not None:
            print(f"{table.stem.replace('_', ' ')}:\n{table.read_text()}", flush=True)


def _print_metrics(summary: dict[str, Any]) -> None:
    for stage in ("val", "test"):
        if summary.get(stage):
            shown = "  ".join(f"{k} {v:.4f}" for k, v in sorted(summary[stage].items()))
            print(f"[{stage}] {shown}", flush=True)
    chance = summary.get("chance")
    if isinstance(chance, dict):
        print("(chance level: " + ", ".join(f"{k} {v:.4f}" for k, v in chance.items()) + ")", flush=True)
    elif chance is not None:
        print(f"(chance level: {chance:.4f})", flush=True)
    if "output_dir" in summary:
        print(f"outputs in {summary['output_dir']}", flush=True)


def _user_error(exc: BaseException) -> BaseException | None:
    """The user mistake behind ``exc``, looking through wrappers such as Hydra's InstantiationException."""
    while exc is not None:
        if isinstance(exc, MobivisionError | OmegaConfBaseException):
            return exc
        exc = exc.__cause__
    return None


def run_cli(fn: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Run ``fn``; a user mistake becomes one ``error: ...`` line on stderr and exit code 2."""
    try:
        return fn(cfg)
    except Exception as exc:
        cause = _user_error(exc)
        if cause is None:
            raise
        message = omegaconf_message(cause) if isinstance(cause, OmegaConfBaseException) else user_message(cause)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
