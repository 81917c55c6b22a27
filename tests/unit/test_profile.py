"""Multiply-add and parameter counts against the MobileNets paper and the TF-Slim table.

Exact figures are REFERENCE.md's "MobileNetV1 architecture" list (base network at 1.0/224 and 0.75/128,
Conv2d_0 alone); table rows are REFERENCE.md's "The 16 TF-Slim checkpoints" and the paper's Tables 6-7
(arXiv 1704.04861, Sec. 4.2). No latency is measured here: speed is for benchmark scripts.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from mobivision.backbones import MobileNetV1Backbone
from mobivision.profiling import count_macs, count_parameters
from mobivision.tfslim_table import (
    EXACT_MPARAMS,
    NUM_CLASSES,
    PAPER_MMACS,
    TFSLIM_INCONSISTENT,
    TFSLIM_TABLE,
    fit_budget,
    macs_match,
    profile_rows,
)

INCONSISTENT_NAMES = {"0.75-224", "0.75-192", "0.75-160", "0.75-128", "0.25-192"}


def _base(width_mult: float, last: str = "Conv2d_13_pointwise") -> MobileNetV1Backbone:
    return MobileNetV1Backbone(width_mult=width_mult, out_features=[last])


def _conv_weight_params(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    return profile_rows(latency=False, threads=1)  # counts do not depend on threads; one avoids OpenMP spinning


@pytest.fixture(scope="module")
def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in rows}


# --- exact counts of the base network (REFERENCE.md, MobileNetV1 architecture) ---


def test_base_network_1_0_224_exact() -> None:
    model = _base(1.0)
    assert count_macs(model, 224) == 567_716_352
    assert _conv_weight_params(model) == 3_185_088
    assert count_parameters(model) == 3_206_976  # conv weights + BatchNorm gamma/beta


def test_conv2d_0_alone_exact() -> None:
    model = _base(1.0, last="Conv2d_0")
    assert _conv_weight_params(model) == 864
    assert count_macs(model, 224) == 10_838_016


def test_base_network_0_75_128_exact() -> None:
    model = _base(0.75)
    assert count_macs(model, 128) == 106_002_432
    assert _conv_weight_params(model) == 1_800_144


# --- the FLOP counter counts each multiply-add once ---


def test_single_conv_counted_once() -> None:
    conv = nn.Conv2d(3, 16, kernel_size=3, stride=2, padding=1, bias=False)
    assert count_macs(conv, 32) == 16 * 16 * 16 * 3 * 3 * 3  # output H x W x C_out x C_in x k x k


def test_depthwise_conv_counted_once() -> None:
    conv = nn.Conv2d(8, 8, kernel_size=3, padding=1, groups=8, bias=False)
    assert count_macs(nn.Sequential(nn.Conv2d(3, 8, 1, bias=False), conv), 10) == 10 * 10 * 8 * 3 + 10 * 10 * 8 * 9


def test_batchnorm_activation_and_pooling_not_counted() -> None:
    conv = nn.Conv2d(3, 4, kernel_size=1, bias=False)
    model = nn.Sequential(conv, nn.BatchNorm2d(4), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    assert count_macs(model, 6) == 6 * 6 * 4 * 3 + 4 * 5


# --- the TF-Slim table and the paper ---


def test_table_data_is_the_16_pairs() -> None:
    assert len(TFSLIM_TABLE) == 16
    pairs = {(row.width, row.resolution) for row in TFSLIM_TABLE}
    assert pairs == {(w, r) for w in (1.0, 0.75, 0.5, 0.25) for r in (224, 192, 160, 128)}
    assert {f"{w}-{r}" for w, r in TFSLIM_INCONSISTENT} == INCONSISTENT_NAMES


def test_rows_follow_the_table(rows: list[dict[str, Any]]) -> None:
    assert [row["name"] for row in rows] == [row.name for row in TFSLIM_TABLE]
    assert all(row["latency_ms"] is None for row in rows)


def test_every_row_matches_its_reference(rows: list[dict[str, Any]]) -> None:
    assert [row["name"] for row in rows if not (row["macs_ok"] and row["params_ok"])] == []


@pytest.mark.parametrize("row", [r for r in TFSLIM_TABLE if r.name not in INCONSISTENT_NAMES], ids=lambda r: r.name)
def test_consistent_rows_match_tfslim(row, by_name: dict[str, dict[str, Any]]) -> None:
    ours = by_name[row.name]
    assert ours["macs_reference"].startswith("TF-Slim table")
    assert macs_match(ours["mmacs"], row.mmacs), (ours["mmacs"], row.mmacs)
    assert ours["note"] == ""


def test_tfslim_rounding_row_0_25_128(by_name: dict[str, dict[str, Any]]) -> None:
    """13.57 M is printed as 14: -3% but within the table's rounding to whole millions."""
    ours = by_name["0.25-128"]["mmacs"]
    assert abs(ours - 14) <= 0.5
    assert abs(ours - 14) / 14 > 0.01


@pytest.mark.parametrize("name", sorted(INCONSISTENT_NAMES))
def test_inconsistent_rows_match_the_paper_not_tfslim(name: str, by_name: dict[str, dict[str, Any]]) -> None:
    ours = by_name[name]
    assert not macs_match(ours["mmacs"], ours["tfslim_mmacs"])
    assert macs_match(ours["mmacs"], ours["macs_reference_mmacs"])
    assert "TF-Slim table" not in ours["macs_reference"]
    assert ours["note"].startswith("TF-Slim table inconsistent with ")


def test_tfslim_0_75_rows_are_2_66_percent_low(rows: list[dict[str, Any]]) -> None:
    diffs = [row["tfslim_macs_diff_pct"] for row in rows if row["width"] == 0.75]
    assert all(2.6 < diff < 2.75 for diff in diffs), diffs


def test_tfslim_0_75_224_vs_paper_table_6(by_name: dict[str, dict[str, Any]]) -> None:
    ours = by_name["0.75-224"]
    assert ours["paper_mmacs"] == 325
    assert round(ours["mmacs"], 1) == 325.4
    assert ours["note"] == "TF-Slim table inconsistent with paper Table 6 (325)"


def test_tfslim_0_25_192_vs_its_own_scaling(by_name: dict[str, dict[str, Any]]) -> None:
    own_scaling = 41 * (192 / 224) ** 2
    assert round(own_scaling, 1) == 30.1
    ours = by_name["0.25-192"]
    assert round(ours["mmacs"], 1) == 30.2
    assert macs_match(ours["mmacs"], own_scaling)
    assert ours["tfslim_mmacs"] == 34


@pytest.mark.parametrize(("pair", "reference"), PAPER_MMACS.items(), ids=lambda v: str(v))
def test_paper_table_figures(pair: tuple[float, int], reference, by_name: dict[str, dict[str, Any]]) -> None:
    ours = by_name[f"{pair[0]}-{pair[1]}"]
    assert ours["paper_mmacs"] == reference.mmacs
    assert macs_match(ours["mmacs"], reference.mmacs), (ours["mmacs"], reference)


def test_macs_scale_exactly_with_input_area(rows: list[dict[str, Any]]) -> None:
    """All resolutions are multiples of 32, so every conv scales with (r/224)^2; the logits do not."""
    for width in EXACT_MPARAMS:
        group = {row["resolution"]: row for row in rows if row["width"] == width}
        logits_macs = (group[224]["params"] - count_parameters(_base(width))) - NUM_CLASSES  # fc weights, not bias
        base_224 = group[224]["macs"] - logits_macs
        for resolution, row in group.items():
            assert (row["macs"] - logits_macs) * 224**2 == base_224 * resolution**2


@pytest.mark.parametrize(("width", "params"), [(1.0, 4_233_001), (0.75, 2_586_329), (0.5, 1_332_105), (0.25, 470_329)])
def test_params_with_1001_logits(width: float, params: int, rows: list[dict[str, Any]]) -> None:
    group = [row for row in rows if row["width"] == width]
    assert {row["params"] for row in group} == {params}
    assert all(abs(row["params_reference_diff_pct"]) <= 0.5 for row in group)
    assert all(row["params_reference_mparams"] == EXACT_MPARAMS[width] for row in group)


@pytest.mark.slow  # profiles the 16 TF-Slim models (several seconds on a busy 2-core machine)
def test_profile_rows_restores_threads() -> None:
    before = torch.get_num_threads()
    profile_rows(latency=False, threads=1 if before > 1 else 2)
    assert torch.get_num_threads() == before


# --- model picker ---


def _fake(name: str, *, top1: float, latency_ms: float | None, mparams: float) -> dict[str, Any]:
    return {"name": name, "top1": top1, "latency_ms": latency_ms, "mparams": mparams}


def test_fit_budget_filters_and_ranks_by_top1() -> None:
    rows = [
        _fake("a", top1=60, latency_ms=5, mparams=1.3),
        _fake("b", top1=70, latency_ms=20, mparams=4.2),
        _fake("c", top1=65, latency_ms=9, mparams=2.6),
    ]
    assert [r["name"] for r in fit_budget(rows, max_latency_ms=10)] == ["c", "a"]
    assert [r["name"] for r in fit_budget(rows, max_mparams=1.5)] == ["a"]
    assert [r["name"] for r in fit_budget(rows, max_latency_ms=10, max_mparams=2.0)] == ["a"]
    assert fit_budget(rows, max_latency_ms=1) == []


def test_fit_budget_needs_latency_for_a_latency_budget() -> None:
    with pytest.raises(ValueError, match="latency"):
        fit_budget([_fake("a", top1=60, latency_ms=None, mparams=1.3)], max_latency_ms=10)
