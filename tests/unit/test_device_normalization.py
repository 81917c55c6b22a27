"""uint8 training batches normalised on the device (``data.normalize_on_device``) give the loader's floats exactly."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from albumentations.pytorch import ToTensorV2

from mobivision.data.detection_transforms import ssd_train_transform, ssdlite_train_transform
from mobivision.data.transforms import (
    classification_train_transform,
    normalization_table,
    normalize_uint8,
    normalized_batch,
)
from mobivision.tasks.classification_data import ClassificationDataModule
from mobivision.tasks.detection_data import DetectionDataModule
from mobivision.tasks.multitask_data import MultiTaskDataModule

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
INCEPTION = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@pytest.mark.parametrize(("mean", "std"), [IMAGENET, INCEPTION])
def test_the_table_lookup_gives_albumentations_floats_bit_for_bit(mean, std) -> None:
    images = np.random.default_rng(0).integers(0, 256, (4, 37, 29, 3), dtype=np.uint8)
    images[0, 0, :4] = [[0, 0, 0], [255, 255, 255], [1, 128, 254], [127, 0, 255]]  # both ends of the range
    loader = A.Compose([A.Normalize(mean=mean, std=std, max_pixel_value=255.0), ToTensorV2()])
    expected = torch.stack([loader(image=image)["image"] for image in images])
    uint8 = torch.stack([A.Compose([ToTensorV2()])(image=image)["image"] for image in images])
    out = normalize_uint8(uint8, normalization_table(mean, std))
    assert uint8.dtype == torch.uint8 and out.dtype == torch.float32
    assert torch.equal(out, expected)
    channels_last = normalize_uint8(uint8.contiguous(memory_format=torch.channels_last), normalization_table(mean, std))
    assert torch.equal(channels_last, expected)


PRESETS = {
    "ssd": lambda **kw: ssd_train_transform(resolution=48, mean=IMAGENET[0], std=IMAGENET[1], **kw),
    "ssdlite": lambda **kw: ssdlite_train_transform(resolution=40, mean=INCEPTION[0], std=INCEPTION[1], **kw),
}


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_detection_presets_without_normalisation_emit_uint8_that_normalises_to_the_same_sample(preset: str) -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    boxes, labels = np.array([[10.0, 12.0, 50.0, 40.0], [30.0, 5.0, 70.0, 55.0]]), [1, 2]
    floats, uint8 = PRESETS[preset](), PRESETS[preset](normalize=False)
    for seed in range(6):  # different crops, flips, zooms and colours
        floats.set_random_seed(seed)
        uint8.set_random_seed(seed)
        expected, got = (
            floats(image=image, bboxes=boxes, labels=labels),
            uint8(image=image, bboxes=boxes, labels=labels),
        )
        assert got["image"].dtype == torch.uint8 and expected["image"].dtype == torch.float32
        mean_std = IMAGENET if preset == "ssd" else INCEPTION
        assert torch.equal(normalize_uint8(got["image"][None], normalization_table(*mean_std))[0], expected["image"])
        np.testing.assert_array_equal(got["bboxes"], expected["bboxes"])
        assert list(got["labels"]) == list(expected["labels"])


def test_the_classification_preset_without_normalisation_normalises_to_the_same_sample() -> None:
    image = np.random.default_rng(2).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    options = {"resolution": 32, "mean": IMAGENET[0], "std": IMAGENET[1], "color_jitter": 0.4}
    floats, uint8 = (
        classification_train_transform(**options),
        classification_train_transform(**options, normalize=False),
    )
    floats.set_random_seed(3)
    uint8.set_random_seed(3)
    got = uint8(image=image)["image"]
    assert got.dtype == torch.uint8
    assert torch.equal(normalize_uint8(got[None], normalization_table(*IMAGENET))[0], floats(image=image)["image"])


def test_only_uint8_batches_are_normalised() -> None:
    table = normalization_table(*INCEPTION)
    uint8 = {"image": torch.tensor([[[[0, 255]]] * 3], dtype=torch.uint8), "target": [1]}
    out = normalized_batch(uint8, table)
    assert torch.equal(out["image"], torch.tensor([[[[-1.0, 1.0]]] * 3])) and out["target"] == [1]
    assert uint8["image"].dtype == torch.uint8  # the caller's batch is not changed
    floats = {"image": torch.zeros(1, 3, 1, 2)}
    assert normalized_batch(floats, table) is floats
    assert normalized_batch([1, 2], table) == [1, 2]


def test_a_multi_source_batch_is_normalised_with_each_sources_mean_and_std(tmp_path) -> None:
    half = ClassificationDataModule(root=str(tmp_path), mean=[0.5] * 3, std=[0.5] * 3, normalize_on_device=True)
    unit = DetectionDataModule(root=str(tmp_path), splits={}, mean=[0.0] * 3, std=[1.0] * 3, normalize_on_device=True)
    data = MultiTaskDataModule(sources={"birds": half, "faces": unit})
    pixels = torch.tensor([0, 51, 255], dtype=torch.uint8).view(1, 1, 1, 3).expand(2, 3, 1, 3)
    out = data.on_after_batch_transfer({"birds": {"image": pixels}, "faces": {"image": pixels, "target": [7]}}, 0)
    assert torch.allclose(out["birds"]["image"], torch.tensor([-1.0, -0.6, 1.0]).expand(2, 3, 1, 3))
    assert torch.allclose(out["faces"]["image"], torch.tensor([0.0, 0.2, 1.0]).expand(2, 3, 1, 3))
    assert out["faces"]["target"] == [7]
    evaluation = {"image": pixels}  # loader 1 is the faces source's
    assert torch.allclose(data.on_after_batch_transfer(evaluation, 1)["image"], out["faces"]["image"])
    example = torch.zeros(1, 3, 8, 8)  # Lightning's model summary sends its example input through the hook
    assert data.on_after_batch_transfer(example, 0) is example
