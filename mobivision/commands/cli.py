"""What the command-line tools in ``tools/`` share: argument types and the exit-code convention."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

from mobivision.commands.quiet import quiet_dependencies
from mobivision.errors import MobivisionError, user_message


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer > 0, got {text}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be an integer > 0, got {text}")
    return value


def _finite(text: str, expected: str) -> float:
    """``text`` as a finite float; anything else (``abc``, ``nan``, ``inf``, ``1e999``) names ``expected``."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (``nan`` and ``inf`` parse as floats, and compare false to everything)."""
    value = _finite(text, "a finite number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = _finite(text, "a finite number >= 0")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def unit_float(text: str) -> float:
    """argparse type: a number in [0, 1] (a probability or a fraction)."""
    value = _finite(text, "a number in [0, 1]")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text}")
    return value


def exit_code(action: Callable[[], object]) -> int:
    """Run ``action`` with the dependencies quietened (``quiet.py``); a user mistake (``MobivisionError``)
    becomes one ``error: ...`` line on stderr and 2."""
    quiet_dependencies()
    try:
        action()
    except MobivisionError as exc:
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return 2
    return 0
