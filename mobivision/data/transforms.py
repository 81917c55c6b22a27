"""Albumentations presets for classification (Inception-style training crops, centre-crop evaluation).

The ImageNet recipe of the MobileNets paper (Sec. 4) uses Inception-style random-size crops and flips;
evaluation resizes the short side to ``resolution / crop_pct`` and takes the central crop (TF-Slim and
timm use crop_pct 0.875).
"""

from __future__ import annotations

import albumentations as A
from albumentations.pytorch import ToTensorV2


def classification_train_transform(
    *,
    resolution: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    scale: tuple[float, float] = (0.08, 1.0),
    hflip: float = 0.5,
    color_jitter: float = 0.0,
) -> A.Compose:
    """Random-resized crop, horizontal flip, optional colour jitter, normalisation, CHW float tensor."""
    steps: list[A.BasicTransform] = [
        A.RandomResizedCrop(size=(resolution, resolution), scale=tuple(scale)),
        A.HorizontalFlip(p=hflip),
    ]
    if color_jitter > 0:
        steps.append(A.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter, p=0.8))
    steps += [A.Normalize(mean=mean, std=std, max_pixel_value=255.0), ToTensorV2()]
    return A.Compose(steps)


def classification_eval_transform(
    *, resolution: int, mean: tuple[float, ...], std: tuple[float, ...], crop_pct: float = 0.875
) -> A.Compose:
    """Resize the short side to ``resolution / crop_pct``, centre crop, normalise, CHW float tensor."""
    return A.Compose(
        [
            A.SmallestMaxSize(max_size=round(resolution / crop_pct)),
            A.CenterCrop(height=resolution, width=resolution),
            A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
            ToTensorV2(),
        ]
    )
