"""``mobivision.commands.quiet``: dependencies' deprecations and Lightning's tips are filtered, ours are not."""

from __future__ import annotations

import logging
import warnings

import pytest

from mobivision.commands.quiet import LIGHTNING_LOGGER, quiet_dependencies


def _shown(message: str, module: str) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_dependencies()
        warnings.warn_explicit(message, UserWarning, "x.py", 1, module=module)
    return [str(w.message) for w in caught]


def test_a_dependencys_deprecation_is_filtered_and_the_same_text_from_us_shows() -> None:
    text = "'set_vital' is deprecated, please do not call"
    assert _shown(text, "torchdata.stateful_dataloader.stateful_dataloader") == []
    assert _shown(text, "mobivision.data.records") == [text]
    assert _shown("something else", "torchdata.stateful_dataloader") == ["something else"]


def test_lightning_tips_are_dropped_and_its_other_lines_kept(caplog: pytest.LogCaptureFixture) -> None:
    quiet_dependencies()
    quiet_dependencies()  # idempotent: one filter
    logger = logging.getLogger(LIGHTNING_LOGGER)
    assert len([f for f in logger.filters if type(f).__name__ == "_DropTips"]) == 1
    with caplog.at_level(logging.INFO, logger=LIGHTNING_LOGGER):
        logger.info("💡 Tip: For seamless cloud logging, try installing [litlogger]")
        logger.info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]


def test_everything_shows_with_the_environment_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOBIVISION_ALL_WARNINGS", "1")
    text = "`isinstance(treespec, LeafSpec)` is deprecated"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_dependencies()
        warnings.warn_explicit(text, UserWarning, "x.py", 1, module="lightning.pytorch.utilities._pytree")
    assert [str(w.message) for w in caught] == [text]
