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
