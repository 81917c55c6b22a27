"""Types and ranges of every config key, checked before any work: ``check_config(cfg, command)``.

``train``, ``eval`` and ``check`` call it first, so a bad value is one ``ConfigError`` naming the key, the
problem and what was expected (``trainer.max_epochs: 'abc' is not valid (expected an integer or null)``)
instead of a traceback after the data has loaded. The schema is read from the code each key feeds, so it
cannot drift from it:

- a node with ``_target_`` (data, task, trainer, callbacks, loggers) is checked against the signature and type
  hints of the class or function it builds: an unknown key is refused with a did-you-mean, a value against its
  annotation;
- ``backbone``, ``optimizer`` and ``scheduler`` against the functions that consume them (``_signatures()``);
- the top-level keys against the dataclasses ``TrainOptions`` / ``EvalOptions``;
- ranges a type cannot express (a batch size of at least 1) from ``RANGES``, keyed by parameter name, so one
  entry covers every class that takes that parameter; names with a fixed set of values from ``_choices()``.

The type check is written here rather than taken from pydantic: its lax mode accepts ``"off"`` for a bool
(and the value is then passed on unchanged, truthy) while its strict mode refuses a string for a ``Path``;
and the messages must speak in config keys and plain words.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import functools
import inspect
import os
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mobivision.errors import ConfigError

MISSING = "???"


@dataclass(frozen=True)
class Range:
    """Bounds of a number: ``low <= x`` (``low < x`` when ``open_low``), ``x <= high`` (``x < high``)."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    fraction_if_float: bool = False  # Lightning's limit_*_batches: an int counts batches, a float is a fraction

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        high = 1.0 if self.fraction_if_float and isinstance(value, float) else self.high
        too_low = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        too_high = high is not None and (value >= high if self.open_high else value > high)
        return "out of range" if too_low or too_high else None

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.open_low else '>='} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<' if self.open_high else '<='} {self.high:g}")
        text = " and ".join(parts)
        return f"{text} (a float is a fraction <= 1)" if self.fraction_if_float else text


_COUNT, _POSITIVE, _NON_NEGATIVE = Range(1), Range(0, open_low=True), Range(0)
_FRACTION = Range(0, 1)
RANGES: dict[str, Range] = {
    # data
    "batch_size": _COUNT, "eval_batch_size": _COUNT, "num_workers": _NON_NEGATIVE, "resolution": Range(32),
    "crop_margin": _NON_NEGATIVE,
    # model and task
    "width_mult": _POSITIVE, "min_depth": _COUNT, "output_stride": Range(8, 32), "bn_eps": _POSITIVE,
    "bn_momentum": _FRACTION, "label_smoothing": Range(0, 1, open_high=True), "backbone_lr_mult": _NON_NEGATIVE,
    # optimizer and schedule
    "lr": _POSITIVE, "momentum": Range(0, 1, open_high=True), "weight_decay": _NON_NEGATIVE,
    "alpha": _FRACTION, "eps": _POSITIVE, "gamma": _POSITIVE, "warmup_epochs": _NON_NEGATIVE,
    "min_lr_ratio": _FRACTION,
    # trainer (Lightning checks these only when the Trainer is built, after the data has loaded)
    "max_epochs": Range(-1), "min_epochs": _NON_NEGATIVE, "max_steps": Range(-1), "min_steps": _NON_NEGATIVE,
    "num_nodes": _COUNT, "accumulate_grad_batches": _COUNT, "gradient_clip_val": _NON_NEGATIVE,
    "check_val_every_n_epoch": _COUNT, "log_every_n_steps": _COUNT, "num_sanity_val_steps": Range(-1),
    "val_check_interval": _POSITIVE,
    **{f"limit_{stage}_batches": Range(0, fraction_if_float=True) for stage in ("train", "val", "test", "predict")},
    # callbacks
    "every_n_train_steps": _NON_NEGATIVE, "unfreeze_at_epoch": _NON_NEGATIVE, "save_top_k": Range(-1),
    "decay": _FRACTION,
    # top level
    "seed": Range(0, 2**32 - 1),
}  # fmt: skip


@functools.cache  # read once: every key's check consults it
def _choices() -> dict[str, tuple[Any, ...]]:
    from mobivision.factory import list_models
    from mobivision.optim import OPTIMIZERS, SCHEDULES

    return {
        "backbone.name": tuple(list_models()),
        "optimizer.name": OPTIMIZERS,
        "scheduler.name": SCHEDULES,
        "on_error": ("raise", "skip"),
        "mode": ("min", "max"),
    }


@functools.cache
def _signatures() -> dict[str, tuple[Callable[..., Any], frozenset[str]]]:
    """The function each name-dispatched group feeds, and the arguments the code passes itself."""
    from mobivision.factory import create_backbone
    from mobivision.optim import build_optimizer, build_scheduler

    return {
        "backbone": (create_backbone, frozenset({"out_features"})),
        "optimizer": (build_optimizer, frozenset({"groups"})),
        "scheduler": (build_scheduler, frozenset({"optimizer", "total_steps", "steps_per_epoch"})),
    }


@dataclass
class Monitor:
    """The metric that picks the best checkpoint."""

    metric: str  # null in train.yaml: filled from the task's primary metric before the check (runner.resolve_monitor)
    mode: Literal["min", "max"]


@dataclass
class TrainOptions:
    """The top-level keys of ``configs/train.yaml`` (groups are checked against their targets)."""

    task_name: str
    seed: int
    monitor: Monitor
    progress: Literal["auto", "rich", "plain"]
    log_every_n_steps: int
    test_after_training: bool
    resume: str | None
    resume_force: bool
    channels_last: bool
    compile: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] | None
    init_from: str | None


@dataclass
class EvalOptions:
    """The top-level keys of ``configs/eval.yaml``."""

    task_name: str
    ckpt_path: Path
    split: Literal["val", "test"]
    progress: Literal["auto", "rich", "plain"]
    log_every_n_steps: int


_GROUPS = {"train": ("backbone", "task", "data", "optimizer", "scheduler", "trainer", "callbacks", "logger", "paths"),
           "eval": ("trainer", "data", "callbacks", "logger", "paths")}  # fmt: skip
_OPTIONS = {"train": TrainOptions, "eval": EvalOptions}


def check_config(cfg: DictConfig, command: Literal["train", "eval"]) -> None:
    """``ConfigError`` listing every key of ``cfg`` whose value does not fit (one line, ``key: problem
    (expected ...)`` joined by ``; ``); ``command`` names the schema of the top-level keys. A top-level key
    outside the schema is accepted only as a variable other values interpolate (an experiment's
    ``teacher_checkpoint``); one nothing reads is a mistake."""
    options = _OPTIONS[command]
    known = {f.name for f in dataclasses.fields(options)} | set(_GROUPS[command]) | {"hydra"}
    raw = OmegaConf.to_container(cfg, resolve=False)
    variables = _interpolated_names(raw) - known
    _raise_if([f"{key}: no value given (expected a value: {key}=...)" for key in variables if raw.get(key) == MISSING])
    try:
        values = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as exc:  # an interpolation that does not resolve
        raise ConfigError(omegaconf_message(exc)) from exc
    problems: list[str] = []
    hints = typing.get_type_hints(options)
    for key, value in values.items():
        if key in hints:
            problems += _check_value(key, value, hints[key])
        elif key not in known and key not in variables:
            problems.append(unknown_key(key, "", known))
    for group in _GROUPS[command]:
        partial = command == "eval" and group == "data" and "_target_" not in (values.get(group) or {})
        if values.get(group) is not None and not partial:  # eval's data.<key>=v: checked once merged (check_data)
            problems += _check_group(group, values[group])
    _raise_if(problems)


def _interpolated_names(node: Any) -> set[str]:
    """The top-level names ``${name...}`` interpolations anywhere in ``node`` refer to."""
    if isinstance(node, dict):
        return set().union(*(_interpolated_names(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_interpolated_names(v) for v in node))
    return set(re.findall(r"\$\{(\w+)", node)) if isinstance(node, str) else set()


def check_data(data: dict[str, Any]) -> None:
    """``ConfigError`` unless ``data`` (a resolved data config) fits its data module."""
    _raise_if(_check_group("data", data))


def check_options(key: str, options: dict[str, Any], function: Callable[..., Any], *, passed: set[str]) -> None:
    """``ConfigError`` unless ``options`` (``data.augment``...) are arguments ``function`` takes, of its types,
    other than those the code ``passed`` itself."""
    problems = [unknown_key(name, f"{key}.", set(_parameters(function)[0]) - passed) for name in passed & set(options)]
    _raise_if(problems + _check_arguments(key, options, function, skip=frozenset(passed)))


def _raise_if(problems: list[str]) -> None:
    if problems:
        raise ConfigError("; ".join(problems))


def omegaconf_message(exc: OmegaConfBaseException) -> str:
    """OmegaConf's multi-line message as one line: ``<full key>: <problem>``."""
    message = str(getattr(exc, "msg", None) or exc).splitlines()[0]
    key = getattr(exc, "full_key", None)
    return f"{key}: {message}" if key else message


def _check_group(group: str, value: Any) -> list[str]:
    if group in ("callbacks", "logger"):  # named entries, each a target or null
        if not isinstance(value, dict):
            return [f"{group}: {value!r} is not valid (expected a mapping of name: {{_target_: ...}})"]
        return [p for name, node in value.items() if node is not None for p in _check_node(f"{group}.{name}", node)]
    if group == "paths":
        return [p for key, path in value.items() for p in _check_value(f"paths.{key}", path, str)]
    if group in _signatures():
        function, passed_by_code = _signatures()[group]
        return _check_arguments(group, value, function, skip=passed_by_code | {"name"}) + _check_choice(
            f"{group}.name", value.get("name")
        )
    return _check_node(group, value)


def _check_node(key: str, node: Any) -> list[str]:
    """A node that builds an object: ``{_target_: ..., arguments}``."""
    if not isinstance(node, dict) or "_target_" not in node:
        return [f"{key}: {node!r} is not valid (expected a mapping with _target_)"]
    try:
        target = get_object(node["_target_"])
    except Exception as exc:  # Hydra raises ImportError, AttributeError or its own for a target it cannot find
        return [f"{key}._target_: cannot import {node['_target_']!r} ({type(exc).__name__})"]
    if key == "data" and isinstance(node.get("sources"), dict):  # a multi-task model's data: one node per source
        return _check_sources(node)
    return _check_arguments(key, node, target, skip=frozenset())


def _check_sources(node: dict[str, Any]) -> list[str]:
    """The keys beside ``data.sources`` are set in every source unless null (``tasks/runner.py``
    ``source_configs``): each source is checked with them."""
    shared = {k: v for k, v in node.items() if k not in ("_target_", "sources") and v is not None}
    problems = []
    for name, source in node["sources"].items():
        merged = {**source, **shared} if isinstance(source, dict) else source
        problems += [p for p in _check_node(f"data.sources.{name}", merged) if p not in problems]
    return problems


def target_parameters(target: str) -> dict[str, Any]:
    """``{argument: annotation}`` of the class or function a ``_target_`` names (empty if it cannot be imported)."""
    try:
        return _parameters(get_object(target))[0]
    except Exception:  # Hydra raises ImportError, AttributeError or its own for a target it cannot find
        return {}


def _parameters(target: Callable[..., Any]) -> tuple[dict[str, Any], bool]:
    """``({name: annotation}, accepts_any_keyword)`` of ``target``. A class of ours that takes ``**kwargs``
    passes them to its base class (the convention of ``tasks/``), so the bases' ``__init__`` arguments count
    too; another library's ``**kwargs`` may go anywhere (Lightning's DDP strategy passes them to torch's DDP)."""
    ours = inspect.isclass(target) and target.__module__.startswith("mobivision.")
    if not inspect.isclass(target):
        functions = [target]
    else:
        functions = [c.__init__ for c in inspect.getmro(target) if c is not object] if ours else [target.__init__]
    annotations: dict[str, Any] = {}
    for function in functions:
        try:
            hints = typing.get_type_hints(function, include_extras=True)
        except Exception:  # an annotation that does not resolve at run time: names are still checked
            hints = {}
        parameters = inspect.signature(function).parameters
        for name, parameter in parameters.items():
            if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL) and name != "self":
                annotations.setdefault(name, hints.get(name, Any))
        if not any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return annotations, False
    return annotations, True


def _check_arguments(key: str, node: dict[str, Any], target: Callable[..., Any], *, skip: frozenset[str]) -> list[str]:
    annotations, open_keywords = _parameters(target)
    problems = []
    for name, value in node.items():
        if name.startswith("_") or name in skip:
            continue
        if name not in annotations:
            if not open_keywords:
                problems.append(unknown_key(name, f"{key}.", set(annotations) - skip))
            continue
        full_key = f"{key}.{name}"
        if isinstance(value, dict) and "_target_" in value:
            problems += _check_node(full_key, value)
        else:
            problems += _check_value(full_key, value, annotations[name]) + _check_choice(full_key, value)
    return problems


def unknown_key(name: str, prefix: str, known: set[str]) -> str:
    """``<prefix><name>: no such key (did you mean ...?)``, or the known keys when none is close."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    hint = f"did you mean {prefix}{close[0]}?" if close else f"expected one of {', '.join(sorted(known))}"
    return f"{prefix}{name}: no such key ({hint})"


def _check_choice(key: str, value: Any) -> list[str]:
    choices = _choices()
    options = choices.get(key, choices.get(key.rpartition(".")[2]))
    if options is None or value is None or value in options:
        return []
    expected = f"one of {', '.join(map(str, options))}{_did_you_mean(value, options)}"
    return [f"{key}: {value!r} is not valid (expected {expected})"]


def _did_you_mean(value: Any, choices: Any) -> str:
    """``, did you mean 'max'?`` when ``value`` is close to one of ``choices``, else nothing."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    return f", did you mean {close[0]!r}?" if close else ""


def _literal_values(annotation: Any) -> list[Any]:
    """The values the ``Literal`` parts of ``annotation`` allow."""
    if typing.get_origin(annotation) is Literal:
        return list(typing.get_args(annotation))
    return [v for arm in typing.get_args(annotation) if typing.get_origin(arm) is Literal for v in typing.get_args(arm)]


def _check_value(key: str, value: Any, annotation: Any) -> list[str]:
    if value == MISSING:
        return [f"{key}: no value given (expected {describe(annotation)}: {key}=...)"]
    if not fits(value, annotation):
        expected = describe(annotation) + _did_you_mean(value, _literal_values(annotation))
        return [f"{key}: {value!r} is not valid (expected {expected})"]
    limits = RANGES.get(key.rpartition(".")[2])
    if limits is not None and limits.problem(value):
        return [f"{key}: {value!r} is out of range (expected {limits.describe()})"]
    if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        hints = typing.get_type_hints(annotation)
        problems = [unknown_key(k, f"{key}.", set(hints)) for k in value if k not in hints]
        return problems + [p for k, v in value.items() if k in hints for p in _check_value(f"{key}.{k}", v, hints[k])]
    return []


_PATH_TYPES = (Path, os.PathLike, inspect.Parameter.empty)


def fits(value: Any, annotation: Any) -> bool:
    """Whether a config value (plain Python, as OmegaConf resolves it) can be passed where ``annotation`` is
    expected. Unknown typing constructs are let through: the check must never refuse a working config."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any or annotation is inspect.Parameter.empty or isinstance(annotation, typing.TypeVar):
        return True
    if annotation is None or annotation is type(None):
        return value is None
    if origin is Annotated:
        return fits(value, args[0])
    if origin is typing.Union or origin is types.UnionType:
        return any(fits(value, arm) for arm in args)
    if origin is Literal:
        return any(value == choice and type(value) is type(choice) for choice in args)
    if isinstance(value, dict) and "_target_" in value:  # built by instantiate before it is passed
        return True
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if annotation in _PATH_TYPES:
        return isinstance(value, str)
    container = origin or annotation
    if container in (list, tuple, set, collections.abc.Sequence, collections.abc.Iterable):
        if not isinstance(value, list | tuple):
            return False
        if container is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(fits(v, a) for v, a in zip(value, args, strict=True))
        return not args or all(fits(item, args[0]) for item in value)
    if container in (dict, collections.abc.Mapping):
        return isinstance(value, dict) and (len(args) != 2 or all(fits(v, args[1]) for v in value.values()))
    return True  # another class (an Accelerator, a timedelta, a callable): only a config node can build it


def describe(annotation: Any) -> str:
    """``annotation`` in words: ``an integer or null``, ``one of 'min', 'max'``, ``a list of numbers``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return describe(args[0])
    if origin is typing.Union or origin is types.UnionType:
        choices = _literal_values(annotation)
        words = ["one of " + ", ".join(map(repr, choices))] if choices else []
        words += [describe(a) for a in args if a is not type(None) and typing.get_origin(a) is not Literal]
        return " or ".join(list(dict.fromkeys(words)) + (["null"] if type(None) in args else []))
    if origin is Literal:
        return "one of " + ", ".join(repr(choice) for choice in args)
    container = origin or annotation
    if container in (list, tuple, set, collections.abc.Sequence, collections.abc.Iterable):
        return f"a list of {_plural(describe(args[0]))}" if args else "a list"
    if container in (dict, collections.abc.Mapping):
        return "a mapping"
    if dataclasses.is_dataclass(annotation):
        return "a mapping of " + ", ".join(f.name for f in dataclasses.fields(annotation))
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    if annotation in words:
        return words[annotation]
    if annotation in _PATH_TYPES:
        return "a path"
    return f"a {getattr(annotation, '__name__', str(annotation))} config node (_target_: ...)"


def _plural(words: str) -> str:
    return {"an integer": "integers", "a number": "numbers", "a string": "strings", "true or false": "booleans"}.get(
        words, words
    )
