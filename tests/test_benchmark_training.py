"""``tools/benchmark.py training`` on CPU with tiny sizes: every requested row with a positive rate, the data-bound
share consistent with the printed rates, the uint8 loader's batch normalised on the device to the float loader's,
and unknown variants refused."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
import torch

from mobivision.commands.benchmark_pipeline import RECIPES
from mobivision.commands.benchmark_training import MODELS, train_loader, variant_list, write_jpeg_split
from mobivision.data.transforms import normalization_table, normalize_uint8

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("eager", "channels_last")


@pytest.mark.slow  # builds three detectors and trains them on CPU: ~30 s
def test_training_prints_model_only_and_end_to_end_rows_with_their_data_bound_share(run_tool) -> None:
    args = ("--device", "cpu", "--batch", "2", "--images", "4", "--workers", "1", "--repeats", "2", "--epochs", "1")
    result = run_tool(
        "benchmark", "training", *args, "--variants", ",".join(VARIANTS), cwd=ROOT, env={"COLUMNS": "250"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {}
    for line in result.stdout.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 6 and cells[3] != "images/s":
            rows[tuple(cells[:3])] = cells[3:]
    assert float(rows["torchvision ssdlite320_mobilenet_v3_large", "eager", "-"][0]) > 0
    for model in MODELS:
        for variant in VARIANTS:
            model_only = float(rows[model, variant, "-"][0])
            assert model_only > 0
            for loader in ("float32", "uint8"):
                rate, _, share = rows[model, variant, loader]
                assert float(rate) > 0
                # printed to 0.1 images/s and 0.1%: the share follows from the printed rates within rounding
                slack = 0.05 * (1 / model_only + float(rate) / model_only**2) + 0.0005
                assert abs(float(share.rstrip("%")) / 100 - (1 - float(rate) / model_only)) <= slack
    assert len(rows) == 1 + len(MODELS) * len(VARIANTS) * 3


def test_uint8_batches_normalised_on_the_device_equal_the_float_loader_batches(tmp_path: Path) -> None:
    recipe = RECIPES[0]
    annotation_file = write_jpeg_split(tmp_path, 2, seed=0)
    batches = {}
    for on_device in (False, True):
        torch.manual_seed(0)
        loader = train_loader(
            recipe, annotation_file, batch=2, workers=0, pin_memory=False, normalize_on_device=on_device
        )
        batches[on_device] = next(iter(loader))
    assert batches[True]["image"].dtype == torch.uint8
    normalised = normalize_uint8(batches[True]["image"], normalization_table(*recipe.mean_std))
    assert torch.equal(normalised, batches[False]["image"])
    for uint8_target, float_target in zip(batches[True]["target"], batches[False]["target"], strict=True):
        assert torch.equal(uint8_target["boxes"], float_target["boxes"])


def test_variants_parse_and_an_unknown_one_is_an_error() -> None:
    assert variant_list("eager, bf16+channels_last+compile") == ["eager", "bf16+channels_last+compile"]
    with pytest.raises(argparse.ArgumentTypeError, match="unknown variants \\['fp8'\\]"):
        variant_list("eager,fp8")


def test_an_unknown_variant_is_a_clear_command_line_error(run_tool) -> None:
    result = run_tool("benchmark", "training", "--variants", "eager,fp8", cwd=ROOT)
    assert result.returncode == 2
    assert "unknown variants ['fp8']; choose from eager, channels_last" in result.stderr
