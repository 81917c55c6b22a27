"""Quiet runs: the one place where mobivision's commands filter what their dependencies print.

Filtered: warnings a user of mobivision cannot act on (deprecations inside our dependencies' own code, which their
next release fixes) and Lightning's product tips. Each is matched by its message and the module that issues it,
so the same text from elsewhere, and every warning of mobivision's own, still shows. The commands install the
filters when they start (``cli.exit_code`` and ``config_errors.run_hydra`` beside this file); importing
mobivision as a library changes no filter. To see everything: ``MOBIVISION_ALL_WARNINGS=1``.
"""

from __future__ import annotations

import logging
import os
import warnings

# (message regex, issuing module regex): each a dependency's internal deprecation, measured in this project's runs.
DEPENDENCY_WARNINGS = (
    # torchdata 0.11's StatefulDataLoader calls torch.set_vital, which torch 2.14 deprecates
    (r"'set_vital' is deprecated", r"torchdata\."),
    # Lightning 2.6 checks torch's pytree LeafSpec, which torch 2.14 deprecates
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", r"lightning\."),
)
LIGHTNING_TIP = "💡 Tip:"  # Lightning's advertisements for its cloud products, logged at INFO on every fit
LIGHTNING_LOGGER = "lightning.pytorch.utilities.rank_zero"
ALL_WARNINGS_ENV = "MOBIVISION_ALL_WARNINGS"


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(LIGHTNING_TIP)


_TIPS = _DropTips()


def quiet_dependencies() -> None:
    """Install the filters of ``DEPENDENCY_WARNINGS`` and drop Lightning's tips (idempotent; nothing when
    ``MOBIVISION_ALL_WARNINGS`` is set)."""
    if os.environ.get(ALL_WARNINGS_ENV):
        return
    for message, module in DEPENDENCY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, module=module)
    logger = logging.getLogger(LIGHTNING_LOGGER)
    if _TIPS not in logger.filters:
        logger.addFilter(_TIPS)
