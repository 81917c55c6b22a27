"""The ``mobivision`` console script's dispatch (mobivision/commands/main.py); the installed script itself is run
from a fresh virtual environment in tests/test_packaging.py."""

from __future__ import annotations

import sys

import pytest

from mobivision.commands.main import COMMANDS, main


@pytest.fixture(autouse=True)
def _keep_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    """``main`` sets ``sys.argv`` for the command it runs; give it back afterwards."""
    monkeypatch.setattr(sys, "argv", list(sys.argv))


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS)
    assert main([]) == 2  # no command: the usage, as an error


def test_an_unknown_command_is_one_error_line_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exprot"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown command 'exprot' (did you mean 'export'?)")


def test_arguments_reach_the_command(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    assert main(["predict", str(tmp_path / "missing.ckpt"), str(tmp_path)]) == 2
    assert f"model file not found: {tmp_path / 'missing.ckpt'}" in capsys.readouterr().err
