"""Exception types for user mistakes.

Every error a user can cause (bad weight file, bad config key, malformed data) derives from
``MobivisionError`` so entry points can print one clear message and exit non-zero instead of a traceback.
"""


class MobivisionError(Exception):
    """Base class for errors caused by user input (files, configs, arguments)."""


class WeightFileError(MobivisionError, ValueError):
    """A weight file is unreadable, truncated, of an unknown format, or does not fit the model."""


class ConfigError(MobivisionError, ValueError):
    """A configuration value or override is invalid."""


class DataError(MobivisionError, ValueError):
    """A dataset file or record is missing or malformed."""


class ExportError(MobivisionError, RuntimeError):
    """An export failed or its result does not reproduce the PyTorch model (the message holds the report)."""


_WORKER_TRACEBACK = "\nOriginal Traceback (most recent call last):\n"


def user_message(error: BaseException) -> str:
    """The text of the one ``error: ...`` line: ``str(error)``, except for an error raised in a DataLoader worker,
    where torch re-raises it with the worker's whole traceback as its message: then the original message alone."""
    text = str(error)
    if not (text.startswith("Caught ") and _WORKER_TRACEBACK in text):
        return text
    last_line = text.rstrip().splitlines()[-1]
    return last_line.removeprefix(f"{type(error).__module__}.{type(error).__qualname__}: ")


def os_error_in(error: BaseException) -> OSError | None:
    """The ``OSError`` behind ``error``, following its causes and contexts (torch's zip writer reports a failed
    ``write`` as a ``RuntimeError``, exporters wrap the one their file write raised), or None."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
