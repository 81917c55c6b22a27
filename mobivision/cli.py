"""What the command-line tools in ``tools/`` share: argument types and the exit-code convention."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from mobivision.errors import MobivisionError, user_message
from mobivision.quiet import quiet_dependencies


def positive_int(text: str) -> int:
    """argparse type: an integer > 0."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be an integer > 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def exit_code(action: Callable[[], object]) -> int:
    """Run ``action`` with the dependencies quietened (``mobivision.quiet``); a user mistake (``MobivisionError``)
    becomes one ``error: ...`` line on stderr and 2."""
    quiet_dependencies()
    try:
        action()
    except MobivisionError as exc:
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return 2
    return 0
