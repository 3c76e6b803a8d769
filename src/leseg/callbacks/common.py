"""Helpers shared by the callbacks: palette lookup and image de-normalisation."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def dataset_info(trainer: Any) -> tuple[list[str] | None, np.ndarray | None]:
    """Class names and palette (K, 3) uint8 of the trainer's DataModule, or (None, None)."""
    dm = getattr(trainer, "datamodule", None)
    names = getattr(dm, "class_names", None)
    palette = getattr(dm, "palette", None)
    return (list(names) if names is not None else None,
            np.asarray(palette, dtype=np.uint8) if palette is not None else None)


def denormalize(image: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """(3, H, W) normalised float tensor → (H, W, 3) uint8 RGB."""
    m = torch.tensor(mean, device=image.device).view(3, 1, 1)
    s = torch.tensor(std, device=image.device).view(3, 1, 1)
    img = (image[:3].float() * s + m).clamp(0, 1) * 255
    return img.round().byte().permute(1, 2, 0).cpu().numpy()


def colorize(label: np.ndarray, palette: np.ndarray | None, ignore_index: int = 255) -> np.ndarray:
    """(H, W) class indices → (H, W, 3) uint8; ignore_index and out-of-palette values are black."""
    if palette is None:
        rng = np.random.default_rng(0)
        palette = rng.integers(0, 256, size=(256, 3), dtype=np.uint8)
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(palette)] = palette[:256]
    if ignore_index < 256:
        lut[ignore_index] = 0
    return lut[np.clip(label, 0, 255).astype(np.uint8)]
