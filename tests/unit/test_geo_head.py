"""``mobivision.heads.geo``: one cell classifier per partitioning and the hierarchical combination."""

from __future__ import annotations

import pytest
import torch

from mobivision import create_geolocator, create_model
from mobivision.errors import ConfigError
from mobivision.heads.geo import GeoHead, GeoLocator, hierarchical_probabilities


def test_locator_has_one_classifier_per_partitioning_on_the_pooled_features() -> None:
    classifier = create_model("mobilenet_v1", width_mult=0.25, num_classes=10)
    images = torch.rand(2, 3, 64, 64)
    classifier.eval()
    with torch.no_grad():
        pooled = classifier.forward_head(classifier.forward_features(images), pre_logits=True)
    locator = GeoLocator(classifier, [3, 7, 20]).eval()
    with torch.no_grad():
        logits = locator(images)
    assert [x.shape for x in logits] == [(2, 3), (2, 7), (2, 20)]
    for layer, x in zip(locator.head.classifiers, logits, strict=True):
        torch.testing.assert_close(x, pooled @ layer.weight.T + layer.bias)
    assert locator.backbone is classifier.backbone
    assert not any(isinstance(m, torch.nn.Linear) for m in locator.pool.modules())  # the 10 logits are gone


@pytest.mark.parametrize("name", ["mobilenet_v1", "mobilenet_v3_small"])
def test_create_geolocator_has_the_structure_of_the_geo_task(name: str) -> None:
    options = {"width_mult": 0.25, "output_stride": 32}
    locator = create_geolocator(name, cells_per_partition=[3, 7], dropout=0.1, **options).eval()
    with torch.no_grad():
        assert [x.shape for x in locator(torch.rand(2, 3, 64, 64))] == [(2, 3), (2, 7)]
    # What tasks/geo.py assembles, so its checkpoints' state dicts load.
    task_built = GeoLocator(create_model(num_classes=0, name=name, **options), [3, 7], dropout=0.1)
    shapes = {k: v.shape for k, v in locator.state_dict().items()}
    assert list(shapes.items()) == [(k, v.shape) for k, v in task_built.state_dict().items()]
    assert locator.head.dropout.p == 0.1
    with pytest.raises(ConfigError, match="at least one cell"):
        create_geolocator(name, cells_per_partition=[])


def test_head_refuses_an_empty_partitioning() -> None:
    with pytest.raises(ValueError, match=r"at least one cell, got \[4, 0\]"):
        GeoHead(8, [4, 0])


def test_hierarchical_probabilities_multiply_the_parents() -> None:
    coarse = torch.tensor([[0.7, 0.3]])
    middle = torch.tensor([[0.2, 0.5, 0.3]])
    fine = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    to_coarse = torch.tensor([0, 0, 1, -1])  # the last fine cell's coarse parent was dropped
    to_middle = torch.tensor([0, 1, 2, 2])
    combined = hierarchical_probabilities([coarse, middle, fine], [to_coarse, to_middle])
    expected = torch.tensor([[0.1 * 0.7 * 0.2, 0.2 * 0.7 * 0.5, 0.3 * 0.3 * 0.3, 0.4 * 1.0 * 0.3]])
    torch.testing.assert_close(combined, expected)
    torch.testing.assert_close(hierarchical_probabilities([fine], []), fine)
    with pytest.raises(ValueError, match="one parent map per coarser partitioning"):
        hierarchical_probabilities([coarse, fine], [])
