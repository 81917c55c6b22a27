"""The table of export formats (mobivision/commands/export_formats.py): every record declares its writer, checker and
extra; the names ``--formats`` takes and the defaults are read from it; a format that is unknown, for a graph the
task lacks, or missing its packages is one ``ConfigError`` before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from mobivision.commands import export, export_formats
from mobivision.commands.export_formats import (
    DEFAULT_FORMATS,
    EXPORT_FORMATS,
    FORMAT,
    FORMATS,
    parse_formats,
    with_float_onnx,
)
from mobivision.errors import ConfigError
from mobivision.export import mobile


class Task:
    """What choosing formats reads of a task: its export graphs and its kind."""

    def __init__(self, *graphs: str, kind: str = "classification") -> None:
        self.graphs, self.kind = graphs, kind

    def export_graphs(self) -> dict[str, object]:
        return dict.fromkeys(self.graphs)

    def eval(self) -> Task:
        return self


def test_every_format_declares_its_file_writer_checker_and_extra() -> None:
    assert len(FORMAT) == len(EXPORT_FORMATS)  # one record per name
    for fmt in EXPORT_FORMATS:
        assert fmt.file.startswith("{name}") and callable(fmt.write) and callable(fmt.check), fmt.name
        assert fmt.graph in ("model", "nms"), fmt.name
        assert not fmt.int8 or fmt.from_onnx, f"{fmt.name}: INT8 is calibrated from the float ONNX file"
        if fmt.extra is not None:
            assert fmt.extra.install.startswith("pip install ") and isinstance(fmt.extra.available(), bool)
    needs_packages = {fmt.name for fmt in EXPORT_FORMATS if fmt.extra is not None}
    assert needs_packages == {"openvino", "openvino-fp16", "openvino-int8", "pte", "tflite"}
    assert {fmt.name for fmt in EXPORT_FORMATS if fmt.int8} == {"int8", "openvino-int8"}
    assert [fmt.name for fmt in EXPORT_FORMATS if fmt.note is not None] == ["int8"]  # "also runs in OpenVINO"


def test_the_names_and_the_defaults_come_from_the_table_in_export_order() -> None:
    assert FORMATS == tuple(fmt.name for fmt in EXPORT_FORMATS) == (
        "onnx", "onnx-nms", "int8", "openvino", "openvino-fp16", "openvino-int8", "torchscript", "pte", "tflite",
    )  # fmt: skip
    assert DEFAULT_FORMATS == ("onnx", "onnx-nms", "int8", "torchscript")
    files = {fmt.name: fmt.file.format(name="m") for fmt in EXPORT_FORMATS}
    assert files == {
        "onnx": "m.onnx", "onnx-nms": "m_nms.onnx", "int8": "m.int8.onnx", "openvino": "m.xml",
        "openvino-fp16": "m.fp16.xml", "openvino-int8": "m.int8.xml", "torchscript": "m.ts", "pte": "m.pte",
        "tflite": "m.tflite",
    }  # fmt: skip
    formats_help = next(a.help for a in export.build_parser()._actions if "--formats" in a.option_strings)
    assert formats_help == f"comma-separated, from {','.join(FORMATS)} (default: {','.join(DEFAULT_FORMATS)})"


def test_formats_are_chosen_in_table_order_and_the_float_onnx_file_comes_first_when_converted_from() -> None:
    names = [fmt.name for fmt in parse_formats("torchscript, int8,onnx", Task("model"))]
    assert names == ["onnx", "int8", "torchscript"]
    assert [fmt.name for fmt in parse_formats(None, Task("model"))] == ["onnx", "int8", "torchscript"]
    assert [fmt.name for fmt in parse_formats(None, Task("model", "nms"))] == list(DEFAULT_FORMATS)
    steps = with_float_onnx(parse_formats(["torchscript", "openvino-int8"], Task("model")))
    assert [fmt.name for fmt in steps] == ["onnx", "openvino-int8", "torchscript"]
    assert [fmt.name for fmt in with_float_onnx([FORMAT["pte"]])] == ["pte"]


@pytest.mark.parametrize(
    ("formats", "message"),
    [
        ("onnx,keras", f"--formats: unknown formats ['keras']; choose from {','.join(FORMATS)}"),
        (" , ", f"--formats: unknown formats []; choose from {','.join(FORMATS)}"),
        ("onnx-nms", "format onnx-nms is for detectors; this checkpoint is a classification model"),
    ],
)
def test_an_unknown_or_inapplicable_format_is_one_config_error(formats: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_formats(formats, Task("model"))
    assert str(error.value) == message


def test_a_format_without_its_packages_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mobile, "available", lambda fmt: False)
    monkeypatch.setattr(export_formats.openvino_ir, "available", lambda quantization=False: False)
    for fmt, install in [("pte", mobile.INSTALL["pte"]), ("openvino-fp16", export_formats.openvino_ir.INSTALL)]:
        with pytest.raises(ConfigError) as error:
            export.export_task(Task("model"), tmp_path / fmt, formats=["onnx", fmt], parity_images=0)
        assert str(error.value) == f"format {fmt} needs optional packages: {install}"
        assert list((tmp_path / fmt).iterdir()) == []
