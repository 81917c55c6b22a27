"""Import torchvision's ``ssdlite320_mobilenet_v3_large`` weights (COCO, 21.3 AP) into ``SSDDetector``.

torchvision splits its MobileNetV3 ``features`` at the C4 expansion layer into two Sequentials and names
its conv/BN pairs by position; ``SSDDetector`` keeps the backbone's ``features`` whole (so ImageNet
classifier weights load unchanged) and names them ``conv`` / ``bn``. This module renames the keys; the
tensors are used as they are, and a unit test checks that both models then compute the same outputs.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from mobivision.errors import WeightFileError

TORCHVISION_SSDLITE_URL = "https://download.pytorch.org/models/ssdlite320_mobilenet_v3_large_coco-a79551df.pth"


def _conv_bn(rest: str) -> str:
    """``0.weight`` -> ``conv.weight``, ``1.running_mean`` -> ``bn.running_mean`` (Conv2dNormActivation)."""
    index, _, name = rest.partition(".")
    return f"{'conv' if index == '0' else 'bn'}.{name}"


def _rename(key: str, c4_index: int) -> str | None:
    if m := re.fullmatch(r"backbone\.features\.0\.(\d+)\.(.+)", key):
        block, rest = int(m[1]), m[2]
        if block < c4_index:
            return f"backbone.features.{block}.{rest}"
        return f"backbone.features.{c4_index}.block.0.{rest}"  # the C4 expansion layer
    if m := re.fullmatch(r"backbone\.features\.1\.0\.(\d+)\.(.+)", key):
        return f"backbone.features.{c4_index}.block.{m[1]}.{m[2]}"  # a Sequential slice keeps its child names
    if m := re.fullmatch(r"backbone\.features\.1\.(\d+)\.(.+)", key):
        return f"backbone.features.{c4_index + int(m[1])}.{m[2]}"
    if m := re.fullmatch(r"backbone\.extra\.(\d+)\.(\d+)\.(.+)", key):
        return f"extras.{m[1]}.{m[2]}.{_conv_bn(m[3])}"
    if m := re.fullmatch(r"head\.(classification|regression)_head\.module_list\.(\d+)\.(0|1)\.(.+)", key):
        target = "classifier" if m[1] == "classification" else "box_regressor"
        rest = _conv_bn(m[4]) if m[3] == "0" else m[4]
        return f"{target}.levels.{m[2]}.{m[3]}.{rest}"
    return None


def convert_torchvision_ssdlite(state_dict: dict[str, torch.Tensor], *, c4_index: int) -> dict[str, torch.Tensor]:
    """Rename a torchvision SSDLite state dict to ``SSDDetector`` keys; unknown keys are an error."""
    converted, unknown = {}, []
    for key, tensor in state_dict.items():
        new = _rename(key, c4_index)
        if new is None:
            unknown.append(key)
        else:
            converted[new] = tensor
    if unknown:
        raise WeightFileError(f"not a torchvision SSDLite state dict: unexpected keys {unknown[:5]}")
    return converted


def load_torchvision_ssdlite(detector: torch.nn.Module, source: str | Path | dict[str, torch.Tensor]) -> None:
    """Load torchvision SSDLite weights (a ``.pth`` file or a state dict) into a matching ``SSDDetector``.

    The detector must be ``ssdlite`` on ``mobilenet_v3_large`` with ``reduced_tail=True`` and 91 classes.
    """
    state = torch.load(source, map_location="cpu", weights_only=True) if isinstance(source, str | Path) else source
    c4_index = detector.backbone._expansion_block
    missing, unexpected = detector.load_state_dict(convert_torchvision_ssdlite(state, c4_index=c4_index), strict=False)
    if missing or unexpected:
        raise WeightFileError(
            f"torchvision SSDLite weights do not fit this detector: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
