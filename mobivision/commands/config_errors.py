"""Hydra's composition errors as one ``error: <key>: <problem> (<expected>)`` line and exit code 2.

``run_hydra(main)`` runs a ``@hydra.main`` function. An override Hydra cannot apply (an unknown key, group option
or experiment, a value it cannot parse) fails before the command starts: Hydra would print a multi-line report
and exit 1; here it becomes one line with a did-you-mean, and no run folder exists yet. Values of the right keys
are checked afterwards, by ``mobivision.tasks.config_schema``.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Callable
from typing import Any

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from mobivision.commands.quiet import quiet_dependencies
from mobivision.tasks.config_schema import omegaconf_message, target_parameters, unknown_key


def run_hydra(main: Callable[[], Any]) -> Any:
    """``main()`` with the dependencies quietened (``quiet.py``); a config Hydra cannot compose ends in one
    ``error:`` line on stderr and exit code 2."""
    quiet_dependencies()
    previous = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra then raises the error instead of printing its report and exiting 1
    try:
        return main()
    except (ConfigCompositionException, OverrideParseException, OmegaConfBaseException) as exc:
        print(f"error: {composition_message(exc)}", file=sys.stderr)
        sys.exit(2)
    finally:
        if previous is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous


def composition_message(exc: BaseException) -> str:
    """The one-line text for an error Hydra raised while composing the config."""
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options is not None:
        group, _, name = exc.missing_cfg_file.rpartition("/")
        close = difflib.get_close_matches(name, exc.options, n=1)
        hint = f", did you mean {group}={close[0]}?" if close else ""
        return f"{group}: no config named {name!r} (expected one of {', '.join(exc.options)}{hint})"
    if isinstance(exc, OverrideParseException):
        return f"{exc.override}: cannot parse this override ({_one_line(exc.message)})"
    cause = exc.__cause__ if isinstance(exc.__cause__, OmegaConfBaseException) else exc
    if (
        isinstance(cause, ConfigAttributeError | ConfigKeyError)
        and getattr(cause, "full_key", None)
        and cause.parent_node is not None
    ):
        return _unknown_key(cause.full_key, cause.parent_node)
    if isinstance(cause, OmegaConfBaseException):
        return omegaconf_message(cause)
    return _one_line(str(exc))


def _unknown_key(full_key: str, parent: Any) -> str:
    """``trainer.max_epoch: no such key (did you mean trainer.max_epochs?)``, or, for an argument the target
    takes that the config does not set, how to add it."""
    prefix, _, name = full_key.rpartition(".")
    prefix = f"{prefix}." if prefix else ""
    keys = {str(k) for k in parent if not str(k).startswith("_")}
    arguments = set(target_parameters(parent.get("_target_"))) if "_target_" in parent else set()
    if name in arguments:
        return f"{full_key}: not set by this config, though {parent['_target_']} takes it (add it with +{full_key}=...)"
    message = unknown_key(name, prefix, keys | arguments)
    return message if "did you mean" in message else unknown_key(name, prefix, keys)


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())
