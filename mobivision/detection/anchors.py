"""SSD default boxes (anchors) for any input size (SSD paper Sec. 2.2; MobileNets paper Sec. 4.7).

Two layouts are supported because the two reference recipes differ:

- ``"tf"``: the TF Object Detection API's ``ssd_anchor_generator`` used by ``ssd_mobilenet_v1_coco``:
  the listed aspect ratios at scale s_k plus one box at sqrt(s_k s_k+1) with ratio 1; the lowest layer
  is reduced to (0.1, 1), (s_0, 2), (s_0, 1/2); box sides are relative to the image's shorter side, so
  a ratio-1 anchor is square in pixels; no clipping.
- ``"torchvision"``: torchvision's ``DefaultBoxGenerator`` used by ``ssdlite320_mobilenet_v3_large``:
  s_k and sqrt(s_k s_k+1) at ratio 1, then each ratio r as (r, 1/r) pairs; sides relative to the image
  width and height, clipped to [0, 1].

torchvision's generator cannot express the TF layout (reduced lowest layer, shorter-side scaling), so
both are written here in one small function; a unit test checks the torchvision layout against
``DefaultBoxGenerator`` box for box. Centres sit at ((j + 0.5) / W_k, (i + 0.5) / H_k) of the feature
map the backbone really produced, so any input size gets matching anchors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from mobivision.errors import ConfigError

LAYOUTS = ("tf", "torchvision")


class AnchorGenerator:
    """Default boxes per feature level, as absolute ``xyxy`` pixels of the network input.

    Args:
        num_levels: Number of feature maps the head predicts from.
        min_scale / max_scale: Box scale of the first and last level (linear in between; the level
            after the last has scale 1.0).
        aspect_ratios: ``tf``: every ratio used at each level (the TF config lists 1, 2, 0.5, 3, 0.3333);
            ``torchvision``: the ratios r > 1 that give the pairs (r, 1/r).
        layout: ``"tf"`` or ``"torchvision"`` (see the module docstring).
        reduce_lowest_level: TF's ``reduce_boxes_in_lowest_layer`` (3 boxes on the first level).
        clip: Clip box sides to the image (torchvision's ``clip=True``).
    """

    def __init__(
        self,
        *,
        num_levels: int,
        min_scale: float = 0.2,
        max_scale: float = 0.95,
        aspect_ratios: Sequence[float] = (2.0, 3.0),
        layout: str = "torchvision",
        reduce_lowest_level: bool = False,
        clip: bool = True,
    ) -> None:
        if layout not in LAYOUTS:
            raise ConfigError(f"anchors.layout must be one of {LAYOUTS}, got {layout!r}")
        if num_levels < 2 or not 0 < min_scale < max_scale <= 1.0:
            raise ConfigError(
                f"anchors need num_levels >= 2 and 0 < min_scale < max_scale <= 1, got {num_levels}, "
                f"{min_scale}, {max_scale}"
            )
        if any(r <= 0 for r in aspect_ratios):
            raise ConfigError(f"anchors.aspect_ratios must be positive, got {list(aspect_ratios)}")
        self.layout = layout
        self.clip = clip
        step = (max_scale - min_scale) / (num_levels - 1)
        scales = [min_scale + step * k for k in range(num_levels)] + [1.0]
        self.box_specs = [
            self._level_specs(k, scales[k], scales[k + 1], tuple(aspect_ratios), reduce_lowest_level)
            for k in range(num_levels)
        ]
        self._cache: dict[tuple, torch.Tensor] = {}

    def _level_specs(
        self, level: int, scale: float, next_scale: float, ratios: tuple[float, ...], reduce_lowest: bool
    ) -> list[tuple[float, float]]:
        """(width, height) of each box at one location, relative to the image."""
        interpolated = math.sqrt(scale * next_scale)
        if self.layout == "tf":
            if level == 0 and reduce_lowest:
                pairs = [(0.1, 1.0), (scale, 2.0), (scale, 0.5)]
            else:
                pairs = [(scale, r) for r in ratios] + [(interpolated, 1.0)]
            return [(s * math.sqrt(r), s / math.sqrt(r)) for s, r in pairs]
        specs = [(scale, scale), (interpolated, interpolated)]
        for r in ratios:
            w, h = scale * math.sqrt(r), scale / math.sqrt(r)
            specs += [(w, h), (h, w)]
        return specs

    def num_anchors_per_location(self) -> list[int]:
        return [len(specs) for specs in self.box_specs]

    def __call__(self, feature_sizes: Sequence[tuple[int, int]], image_size: tuple[int, int]) -> torch.Tensor:
        """Anchors ``[sum(H_k * W_k * A_k), 4]`` for feature maps of ``feature_sizes`` on an ``image_size``
        (height, width) input, ordered level, row, column, box (the head's output order)."""
        key = (tuple(tuple(int(v) for v in s) for s in feature_sizes), tuple(int(v) for v in image_size))
        if key not in self._cache:
            if len(key[0]) != len(self.box_specs):
                raise ConfigError(f"{len(key[0])} feature maps but anchors for {len(self.box_specs)} levels")
            self._cache[key] = self._generate(*key)
        return self._cache[key]

    def _generate(self, feature_sizes: tuple[tuple[int, int], ...], image_size: tuple[int, int]) -> torch.Tensor:
        height, width = image_size
        if self.layout == "tf":  # box sides relative to the shorter side (TF's MultipleGridAnchorGenerator)
            side = min(height, width)
            size_scale = torch.tensor([side / width, side / height], dtype=torch.float64)
        else:
            size_scale = torch.ones(2, dtype=torch.float64)
        levels = []
        for (rows, cols), specs in zip(feature_sizes, self.box_specs, strict=True):
            ys = (torch.arange(rows, dtype=torch.float64) + 0.5) / rows
            xs = (torch.arange(cols, dtype=torch.float64) + 0.5) / cols
            cy, cx = torch.meshgrid(ys, xs, indexing="ij")
            centres = torch.stack([cx, cy], dim=-1).reshape(-1, 1, 2).expand(-1, len(specs), 2)
            sizes = torch.tensor(specs, dtype=torch.float64) * size_scale
            if self.clip:
                sizes = sizes.clamp(0.0, 1.0)
            sizes = sizes.expand_as(centres)
            levels.append(torch.cat([centres - 0.5 * sizes, centres + 0.5 * sizes], dim=-1).reshape(-1, 4))
        scale = torch.tensor([width, height, width, height], dtype=torch.float64)
        return (torch.cat(levels) * scale).to(torch.float32)
