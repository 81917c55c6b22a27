"""The tools' shared argument types (mobivision/commands/cli.py): a value argparse accepts is one the tool can use, so
``nan`` and ``inf`` (which ``float()`` parses and every comparison lets through) end at the command line, before
any model loads, as argparse's one error line, exit code 2."""

from __future__ import annotations

import argparse
from importlib import import_module

import pytest

from mobivision.commands import export, serve
from mobivision.commands.cli import non_negative_float, positive_float, positive_int, unit_float

BAD_VALUES = [
    (positive_float, "a finite number > 0", ["nan", "NaN", "-nan", "inf", "-inf", "1e999", "0", "-1.5", "abc", ""]),
    (non_negative_float, "a finite number >= 0", ["nan", "inf", "1e999", "-0.01", "x"]),
    (unit_float, r"a number in \[0, 1\]", ["nan", "inf", "-inf", "1.5", "-0.1", "x"]),
    (positive_int, "an integer > 0", ["0", "-3", "1.5", "nan", "x"]),
]


@pytest.mark.parametrize(
    ("argument_type", "expected", "text"),
    [(kind, expected, text) for kind, expected, texts in BAD_VALUES for text in texts],
    ids=lambda value: value.__name__ if callable(value) else None,
)
def test_each_type_refuses_what_it_cannot_use_naming_what_it_expected(argument_type, expected: str, text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=rf"^must be {expected}, got {text}$"):
        argument_type(text)


def test_good_values_pass_unchanged() -> None:
    assert positive_float("0.001") == 0.001 and positive_float("1e3") == 1000.0
    assert non_negative_float("0") == 0.0 and non_negative_float("2.5") == 2.5
    assert unit_float("0") == 0.0 and unit_float("1") == 1.0 and unit_float("0.3") == 0.3
    assert positive_int("7") == 7


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_serve_refuses_a_nan_or_infinite_upload_limit_before_loading_the_model(
    value: str, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``nan`` and ``inf`` passed ``positive_float``, and the server failed after loading the model (a
    ValueError / OverflowError traceback from ``round(nan * MEGABYTE)``)."""
    model = tmp_path / "missing.onnx"  # not even read: argparse stops first
    with pytest.raises(SystemExit) as exit_info:
        serve.main([str(model), "--max-upload-mb", value, "--port", "0"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument --max-upload-mb: must be a finite number > 0, got {value}" in err
    assert "model file not found" not in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["nan", "inf", "-0.5"])
def test_export_refuses_a_nan_or_infinite_metric_drop_before_loading_the_checkpoint(
    value: str, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``--max-metric-drop nan`` was taken, and ``drop > nan`` being false it silently turned the INT8
    check off; ``inf`` did the same."""
    with pytest.raises(SystemExit) as exit_info:
        export.main([str(tmp_path / "missing.ckpt"), "--max-metric-drop", value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument --max-metric-drop: must be a finite number >= 0, got {value}" in err
    assert "model file not found" not in err


@pytest.mark.parametrize(
    ("tool", "argv", "option", "expected"),
    [
        ("benchmark", ["latency", "--settle-ms"], "--settle-ms", "a finite number >= 0"),
        ("benchmark", ["coco-scale", "--boxes"], "--boxes", "a finite number >= 0"),
        ("convert", ["in.pth", "out.safetensors", "--width"], "--width", "a finite number > 0"),
        ("predict", ["model.onnx", "photos", "--max-image-mpx"], "--max-image-mpx", "a finite number > 0"),
        ("serve", ["model.onnx", "--max-image-mpx"], "--max-image-mpx", "a finite number > 0"),
    ],
)
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_every_tools_float_options_refuse_nan_and_inf(
    tool: str, argv: list[str], option: str, expected: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``--settle-ms nan`` was a ValueError from ``time.sleep``, ``--boxes nan`` one from numpy's Poisson
    sampler, ``--width nan`` "cannot convert float NaN to integer" from the model factory."""
    with pytest.raises(SystemExit) as exit_info:
        import_module(f"mobivision.commands.{tool}").main([*argv, value])
    assert exit_info.value.code == 2
    assert f"error: argument {option}: must be {expected}, got {value}" in capsys.readouterr().err
