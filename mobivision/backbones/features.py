"""Declared feature maps of a backbone: what each endpoint holds, without running it."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from mobivision.errors import ConfigError


@dataclass(frozen=True)
class FeatureSpec:
    """Channels and stride (input size / feature size) of one backbone endpoint."""

    channels: int
    stride: int


class Backbone(nn.Module):
    """Contract for every backbone: ``forward(x) -> dict[name, Tensor]`` ordered high to low resolution.

    Subclasses fill ``all_feature_specs`` (every endpoint they can return, in forward order) and call
    ``_select_features`` with the user's ``out_features``.
    """

    all_feature_specs: dict[str, FeatureSpec]
    feature_specs: dict[str, FeatureSpec]
    default_out_features: tuple[str, ...]

    def _select_features(self, out_features: list[str] | tuple[str, ...] | None) -> None:
        names = list(self.default_out_features if out_features is None else out_features)
        unknown = [n for n in names if n not in self.all_feature_specs]
        if unknown or not names:
            raise ConfigError(
                f"{type(self).__name__}: unknown out_features {unknown or names}; "
                f"expected names from {list(self.all_feature_specs)}"
            )
        order = list(self.all_feature_specs)
        names = sorted(set(names), key=order.index)
        self.out_features = names
        self.feature_specs = {n: self.all_feature_specs[n] for n in names}
