"""Albumentations presets for classification (Inception-style training crops, centre-crop evaluation).

The ImageNet recipe of the MobileNets paper (Sec. 4) uses Inception-style random-size crops and flips;
evaluation resizes the short side to ``resolution / crop_pct`` and takes the central crop (TF-Slim and
timm use crop_pct 0.875).

Training transforms can leave the normalisation to the device (``normalize=False``): they then emit uint8 CHW
tensors, a quarter of the bytes through worker queues, pinned memory and the host-to-device copy, and
``normalize_uint8`` maps them on the device to the very floats ``A.Normalize`` would have made.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2


def to_tensor(mean: tuple[float, ...], std: tuple[float, ...], *, normalize: bool = True) -> list[A.BasicTransform]:
    """The last steps of every preset: normalise (mean and std of 0..1 pixels) and make a CHW float tensor, or
    without ``normalize`` the CHW uint8 tensor that ``normalize_uint8`` finishes on the device."""
    steps: list[A.BasicTransform] = [A.Normalize(mean=mean, std=std, max_pixel_value=255.0)] if normalize else []
    return [*steps, ToTensorV2()]


def normalization_table(mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``(channels, 256)`` float32: what ``A.Normalize`` makes of each uint8 value in each channel.

    Read off ``A.Normalize`` itself (it normalises uint8 images by table lookup too), so that ``normalize_uint8``
    reproduces the loader's floats bit for bit rather than nearly.
    """
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], len(mean), axis=2)
    table = A.Normalize(mean=mean, std=std, max_pixel_value=255.0)(image=ramp)["image"]  # (256, 1, channels)
    return torch.from_numpy(np.ascontiguousarray(table[:, 0, :].T, dtype=np.float32))


def normalized_batch(batch: Any, table: torch.Tensor) -> Any:
    """``batch`` with its uint8 ``image`` normalised by ``table`` (``normalization_table``); any other batch as is."""
    if isinstance(batch, dict) and isinstance(batch.get("image"), torch.Tensor) and batch["image"].dtype == torch.uint8:
        return {**batch, "image": normalize_uint8(batch["image"], table)}
    return batch


def normalize_uint8(images: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """A ``(N, C, H, W)`` uint8 batch as normalised float32 on the images' device (``table``:
    ``normalization_table``)."""
    channels, values = table.shape
    offsets = torch.arange(channels, device=images.device, dtype=torch.int32).view(1, -1, 1, 1) * values
    return table.to(images.device, non_blocking=True).flatten()[images.int() + offsets]


def classification_train_transform(
    *,
    resolution: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    scale: tuple[float, float] = (0.08, 1.0),
    hflip: float = 0.5,
    color_jitter: float = 0.0,
    normalize: bool = True,
) -> A.Compose:
    """Random-resized crop, horizontal flip, optional colour jitter, ``to_tensor``."""
    steps: list[A.BasicTransform] = [
        A.RandomResizedCrop(size=(resolution, resolution), scale=tuple(scale)),
        A.HorizontalFlip(p=hflip),
    ]
    if color_jitter > 0:
        steps.append(A.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter, p=0.8))
    return A.Compose(steps + to_tensor(mean, std, normalize=normalize))


def classification_eval_transform(
    *, resolution: int, mean: tuple[float, ...], std: tuple[float, ...], crop_pct: float = 0.875
) -> A.Compose:
    """Resize the short side to ``resolution / crop_pct``, centre crop, normalise, CHW float tensor."""
    return A.Compose(
        [
            A.SmallestMaxSize(max_size=round(resolution / crop_pct)),
            A.CenterCrop(height=resolution, width=resolution),
            *to_tensor(mean, std),
        ]
    )
