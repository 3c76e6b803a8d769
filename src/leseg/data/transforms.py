"""Joint image/label augmentation (albumentations 2.0.x) and the one normalise-to-tensor step.

:func:`build_transforms` builds the geometric + photometric pipeline used by U2PL / S4MC / UniMatch
style training (random rescale 0.5–2.0, pad with ``ignore_index``, random crop, horizontal flip,
optional colour jitter). It runs on uint8 numpy arrays, image and every mask-type target with the
*same* sampled geometry (masks use nearest-neighbour interpolation and no photometric change).

:func:`to_sample` is the single place where an (H, W, 3) uint8 image becomes the normalised
(3, H, W) float32 tensor and a label becomes an int64 tensor; every dataset calls it.

Pitfall guarded against: albumentations 2 renamed ``value``/``mask_value`` to ``fill``/``fill_mask``
and only *warns* about the old names, padding masks with 0 (a real class). Every ``A.Compose``
here is built with ``strict=True``, which turns invalid arguments into errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
COLOR_JITTER_KEYS = ("brightness", "contrast", "saturation", "hue", "p")
_RESERVED_TARGETS = ("image", "mask", "masks", "images")


def _pair(value: Any, key: str, kind: type) -> tuple:
    """(h, w) from an int or a 2-sequence (lists, tuples, OmegaConf ListConfig)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = (value, value)
    try:
        items = tuple(value)
    except TypeError:
        raise ValueError(f"{key} must be a number or a pair, got {value!r}") from None
    if len(items) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool)
                                  for v in items):
        raise ValueError(f"{key} must be a pair of numbers, got {value!r}")
    if kind is int:
        if any(int(v) != v or v <= 0 for v in items):
            raise ValueError(f"{key} must be two positive integers (h, w), got {value!r}")
        return int(items[0]), int(items[1])
    return float(items[0]), float(items[1])


def build_transforms(*, crop_size: int | Sequence[int] | None = None,
                     scale_range: Sequence[float] | None = None, hflip: float = 0.0,
                     color_jitter: Mapping[str, float] | None = None,
                     resize: int | Sequence[int] | None = None, ignore_index: int = 255,
                     mask_targets: Sequence[str] = ()) -> A.Compose:
    """Build the joint image/mask augmentation, in this order:

    1. ``resize`` (h, w): fixed resize (image bilinear, masks nearest);
    2. ``scale_range`` (lo, hi): rescale by a factor drawn uniformly from [lo, hi] (e.g. 0.5–2.0);
    3. pad to ``crop_size`` if smaller: image filled with 0, masks with ``ignore_index``;
    4. random crop ``crop_size`` (h, w);
    5. horizontal flip with probability ``hflip``;
    6. colour jitter of the image only (``color_jitter`` = dict with keys brightness, contrast,
       saturation, hue — albumentations ranges — and probability ``p``, default 1.0).

    Args:
        crop_size: (h, w) or an int for a square crop, in pixels; None = no pad/crop.
        scale_range: (lo, hi) with 0 < lo ≤ hi; None = no random rescale.
        hflip: flip probability in [0, 1].
        color_jitter: see step 6; None = none.
        resize: (h, w) or int, in pixels; None = keep the size.
        ignore_index: fill value for padded mask pixels (0..255, usually 255).
        mask_targets: names of extra mask-type targets (e.g. ``"depth"``) that get the same
            geometry. Caveat: padding fills *every* mask target with ``ignore_index``.

    Returns:
        ``A.Compose`` (strict) called as ``t(image=(H,W,3) uint8, mask=(H,W) uint8, **extras)``;
        an empty pipeline when every argument is left at its default.

    Raises:
        TypeError: an unknown keyword argument (the signature is keyword-only and closed).
        ValueError: a malformed value (names the key and what was expected), or an unknown
            ``color_jitter`` key.
    """
    if not 0 <= ignore_index <= 255:
        raise ValueError(f"ignore_index must be in 0..255 (uint8 masks), got {ignore_index}")
    if not 0.0 <= float(hflip) <= 1.0:
        raise ValueError(f"hflip must be a probability in [0, 1], got {hflip}")
    extra = {}
    for name in mask_targets:
        if not isinstance(name, str) or not name or name in _RESERVED_TARGETS:
            raise ValueError(f"mask_targets: invalid target name {name!r}")
        extra[name] = "mask"

    steps: list[A.BasicTransform] = []
    if resize is not None:
        h, w = _pair(resize, "resize", int)
        steps.append(A.Resize(height=h, width=w, interpolation=cv2.INTER_LINEAR,
                              mask_interpolation=cv2.INTER_NEAREST))
    if scale_range is not None:
        lo, hi = _pair(scale_range, "scale_range", float)
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < lo <= hi, got {scale_range!r}")
        # albumentations samples the factor as 1 + uniform(scale_limit)
        steps.append(A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), interpolation=cv2.INTER_LINEAR,
                                   mask_interpolation=cv2.INTER_NEAREST, p=1.0))
    if crop_size is not None:
        ch, cw = _pair(crop_size, "crop_size", int)
        steps.append(A.PadIfNeeded(min_height=ch, min_width=cw, border_mode=cv2.BORDER_CONSTANT,
                                   fill=0, fill_mask=ignore_index, position="center"))
        steps.append(A.RandomCrop(height=ch, width=cw, fill=0, fill_mask=ignore_index))
    if hflip > 0:
        steps.append(A.HorizontalFlip(p=float(hflip)))
    if color_jitter is not None:
        cj = dict(color_jitter)
        unknown = sorted(set(cj) - set(COLOR_JITTER_KEYS))
        if unknown:
            raise ValueError(f"color_jitter: unknown key(s) {unknown}; allowed {COLOR_JITTER_KEYS}")
        p = float(cj.pop("p", 1.0))
        cj = {k: tuple(v) if not isinstance(v, int | float) else v for k, v in cj.items()}
        cj.setdefault("brightness", 0.0)
        cj.setdefault("contrast", 0.0)
        cj.setdefault("saturation", 0.0)
        cj.setdefault("hue", 0.0)
        steps.append(A.ColorJitter(**cj, p=p))
    return A.Compose(steps, additional_targets=extra or None, strict=True)


def to_image_tensor(image: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN,
                    std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """(H, W, 3) uint8 RGB → (3, H, W) float32, ``(x / 255 - mean) / std`` per channel.

    Raises:
        ValueError: the array is not (H, W, 3) uint8.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got shape {image.shape} "
                         f"dtype {image.dtype}")
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    return x.sub_(m).div_(s)


def to_sample(image: np.ndarray, label: np.ndarray, name: str,
              transforms: Callable[..., dict] | None = None,
              mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
              **extras: np.ndarray) -> dict[str, Any]:
    """Apply ``transforms`` jointly, then normalise and convert: the one sample-building step.

    Args:
        image: (H, W, 3) uint8 RGB.
        label: (H, W) integer class indices (values 0..255).
        name: sample name.
        transforms: an ``A.Compose`` from :func:`build_transforms` (or any callable with the same
            ``image=, mask=, **extras`` → dict interface); None = no change.
        mean, std: per-channel normalisation of the [0, 1] image (ImageNet by default).
        **extras: further mask-type arrays (H, W[, C]) transformed with the same geometry; must be
            declared in ``mask_targets`` of the pipeline. Returned as tensors of their dtype.

    Returns:
        dict with ``image`` float32 (3, H', W'), ``label`` int64 (H', W'), ``name`` str, and one
        tensor per extra key.
    """
    if transforms is not None:
        out = transforms(image=image, mask=np.ascontiguousarray(label), **extras)
        image, label = out["image"], out["mask"]
        extras = {k: out[k] for k in extras}
    sample: dict[str, Any] = {
        "image": to_image_tensor(image, mean, std),
        "label": torch.from_numpy(np.ascontiguousarray(label).astype(np.int64)),
        "name": name,
    }
    for key, value in extras.items():
        sample[key] = torch.from_numpy(np.ascontiguousarray(value))
    return sample
