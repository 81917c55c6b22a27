"""The torch-free evaluation pre-processing equals the albumentations pipeline bit for bit."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mobivision.inference.preprocess import Placement, Preprocessing, prepare, prepare_batch

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
SYMMETRIC = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
# (512, 1025) at resolution 224, crop_pct 0.875: the long side is round(512.5), half to even: 512.
SIZES = [
    (1, 1),
    (1, 7),
    (17, 300),
    (300, 17),
    (224, 224),
    (480, 640),
    (641, 479),
    (257, 255),
    (33, 45),
    (999, 2),
    (512, 1025),
]
RESOLUTIONS = [224, 160, 300, 320]


def _image(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("crop_pct", [0.875, 1.0])
@pytest.mark.parametrize(("mean", "std"), [IMAGENET, SYMMETRIC])
def test_crop_path_equals_classification_eval_transform(crop_pct, mean, std):
    from mobivision.data.transforms import classification_eval_transform

    for resolution in RESOLUTIONS:
        reference = classification_eval_transform(resolution=resolution, mean=mean, std=std, crop_pct=crop_pct)
        spec = Preprocessing(resolution=resolution, mean=mean, std=std, crop_pct=crop_pct)
        for index, (height, width) in enumerate(SIZES):
            image = _image(height, width, index)
            expected = reference(image=image)["image"].numpy()
            actual, _ = prepare(image, spec)
            assert actual.dtype == np.float32 and actual.flags.c_contiguous
            assert np.array_equal(actual, expected), (resolution, height, width)


@pytest.mark.parametrize(("mean", "std"), [IMAGENET, SYMMETRIC])
def test_square_path_equals_detection_eval_transform(mean, std):
    from mobivision.data.detection_transforms import detection_eval_transform

    for resolution in RESOLUTIONS:
        reference = detection_eval_transform(resolution=resolution, mean=mean, std=std)
        spec = Preprocessing(resolution=resolution, mean=mean, std=std, crop_pct=None)
        for index, (height, width) in enumerate([*SIZES, (resolution, resolution)]):
            image = _image(height, width, 100 + index)
            expected = reference(image=image, bboxes=np.zeros((0, 4)), labels=[])["image"].numpy()
            actual, placement = prepare(image, spec)
            assert actual.dtype == np.float32 and actual.flags.c_contiguous
            assert np.array_equal(actual, expected), (resolution, height, width)
            assert placement == Placement(width / resolution, height / resolution, 0.0, 0.0, (height, width))


def test_prepare_batch_stacks():
    spec = Preprocessing(resolution=160, mean=IMAGENET[0], std=IMAGENET[1], crop_pct=0.875)
    images = [_image(480, 640, 1), _image(17, 300, 2)]
    batch, placements = prepare_batch(images, spec)
    assert batch.shape == (2, 3, 160, 160) and batch.dtype == np.float32
    for row, image, placement in zip(batch, images, placements, strict=True):
        single, single_placement = prepare(image, spec)
        assert np.array_equal(row, single) and placement == single_placement


def test_to_original_square_scales_by_original_over_resolution():
    _, placement = prepare(_image(480, 640, 0), Preprocessing(300, *SYMMETRIC, crop_pct=None))
    boxes = np.array([[30.0, 60.0, 150.0, 240.0], [0.0, 0.0, 300.0, 300.0]])
    expected = boxes * np.array([640 / 300, 480 / 300, 640 / 300, 480 / 300])
    assert np.allclose(placement.to_original(boxes), expected)
    assert placement.original_size == (480, 640)


def test_to_original_crop_matches_hand_computation():
    # 480x640, resolution 224, crop_pct 0.875: short side to 256, long side round(640 * 256 / 480) = 341;
    # crop corner ((341 - 224) // 2, (256 - 224) // 2) = (58, 16); scales 640 / 341 and 480 / 256.
    _, placement = prepare(_image(480, 640, 0), Preprocessing(224, *IMAGENET, crop_pct=0.875))
    assert (placement.offset_x, placement.offset_y) == (58.0, 16.0)
    boxes = np.array([[0.0, 0.0, 224.0, 224.0], [10.0, 20.0, 30.0, 40.0]])
    expected = np.array(
        [
            [58 * 640 / 341, 16 * 1.875, 282 * 640 / 341, 240 * 1.875],
            [68 * 640 / 341, 36 * 1.875, 88 * 640 / 341, 56 * 1.875],
        ]
    )
    assert np.allclose(placement.to_original(boxes), expected)


def test_to_original_clips_to_the_image():
    _, placement = prepare(_image(100, 50, 0), Preprocessing(100, *SYMMETRIC, crop_pct=None))
    clipped = placement.to_original(np.array([[-10.0, -5.0, 120.0, 130.0]]))
    assert np.array_equal(clipped, np.array([[0.0, 0.0, 50.0, 100.0]]))


def test_rejects_non_uint8_or_wrong_channels():
    spec = Preprocessing(224, *IMAGENET, crop_pct=0.875)
    with pytest.raises(ValueError):
        prepare(np.zeros((10, 10, 3), dtype=np.float32), spec)
    with pytest.raises(ValueError):
        prepare(np.zeros((10, 10), dtype=np.uint8), spec)


def test_imports_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['albumentations'] = None; "
        "sys.modules['lightning'] = None; import mobivision.inference.preprocess; "
        "assert not any(sys.modules.get(n) for n in ('torch', 'albumentations', 'lightning'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
