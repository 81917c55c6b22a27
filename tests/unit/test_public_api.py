"""The package's public names: ``mobivision.__all__`` lists every lazily resolved name (``load`` included), each
resolves, and every head result of the inference API shares ``HeadResult``."""

from __future__ import annotations

import mobivision
from mobivision import inference


def test_every_public_name_is_listed_and_resolves() -> None:
    assert set(mobivision.__all__) == set(mobivision._LAZY)
    assert "load" in mobivision.__all__ and mobivision.load is inference.load
    for name in mobivision.__all__:
        assert getattr(mobivision, name) is not None, name


def test_every_head_result_shares_one_base_class_with_its_protocol() -> None:
    kinds = [inference.Detections, inference.Classes, inference.Attributes, inference.Location, inference.Values]
    assert all(issubclass(kind, inference.HeadResult) for kind in kinds)
    location = inference.Location(1.5, 2.5, [{"token": "47", "probability": 0.9}])
    assert location.to_dict("a.jpg") == location.entries("a.jpg")[0] == {
        "image": "a.jpg", "lat": 1.5, "lon": 2.5, "top_k": [{"token": "47", "probability": 0.9}]
    }  # fmt: skip
    assert location.picture(None) is None  # the base class's default: no picture
