"""Mixing augmentations written once: CutMix and ClassMix masks, and their application.

A mix of batch element i takes the pixels where ``mask[i]`` is True from its partner
``partner[i]`` (another element of the same batch, never i itself) and keeps the rest:

    mixed[i] = where(mask[i], x[partner[i]], x[i])

and the *same* ``(mask, partner)`` is applied to every tensor of a sample — images, pseudo-labels,
confidences, validity masks, disparities — so they stay aligned (:func:`apply_mix`).

- CutMix (Yun et al., ICCV 2019; U2PL / S4MC use a box of half the image area).
- ClassMix (Olsson et al., WACV 2021): half of the classes present in the partner's (pseudo-)label
  are pasted onto the image.
"""

from __future__ import annotations

import math

import torch


def partner_indices(batch_size: int, generator: torch.Generator | None = None,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """For each i a partner j ≠ i drawn uniformly from the other elements of the batch.

    Returns:
        (B,) int64 partner indices.

    Raises:
        ValueError: batch_size < 2 (an image mixed with itself is no augmentation: S4MC's released
            code does exactly that with one image per GPU, ``experiments/pascal/config.yml``).
    """
    if batch_size < 2:
        raise ValueError(f"mixing needs at least 2 images in the batch to draw partners from, got "
                         f"{batch_size}; increase the (unlabeled) batch size")
    offset = torch.randint(1, batch_size, (batch_size,), generator=generator)
    return ((torch.arange(batch_size) + offset) % batch_size).to(device)


def cutmix_masks(batch_size: int, height: int, width: int, area_ratio: float = 0.5,
                 generator: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """One random axis-aligned box per image covering ``area_ratio`` of it (to the nearest pixel).

    The box height h is drawn log-uniformly in [area / W, H] and the width is w = round(area / h),
    so both sides fit the image; its position is uniform. Returns (B, H, W) bool, True inside the
    box (pixels taken from the partner).

    Versus the reference (U2PL's ``generate_cutout_mask(img_size, ratio=2)``, used unchanged by
    S4MC's ``s4mc_utils/dataset/augmentation.py``): the same area (half the image for
    ``area_ratio=0.5``) and the same ranges of sides, h ∈ [H/2, H] and w ∈ [W/2, W], and a
    uniform position; the reference draws the *width* uniformly (an integer in (W/2, W), W
    itself excluded) and sets h = round(area / w). Both aspect ratios w/h span
    [W/(2H), 2W/H]; here log(w/h) is uniform on it (median W/H, the image's own aspect), in the
    reference w is (median 3W/4, so median w/h = 9W/(8H): boxes somewhat wider). Neither paper
    specifies the shape; the difference changes which box shapes are common, not their area.
    """
    if not 0.0 < area_ratio < 1.0:
        raise ValueError(f"cutmix area_ratio must be in (0, 1), got {area_ratio}")
    masks = torch.zeros(batch_size, height, width, dtype=torch.bool)
    area = area_ratio * height * width
    # box height h in [area / W, H] keeps both h <= H and w = area / h <= W
    lo, hi = math.log(max(area / width, 1.0)), math.log(height)
    for i in range(batch_size):
        u = torch.rand(3, generator=generator).tolist()
        h = min(height, max(1, round(math.exp(lo + (hi - lo) * u[0]))))
        w = min(width, max(1, round(area / h)))
        y0 = int(u[1] * (height - h + 1))
        x0 = int(u[2] * (width - w + 1))
        masks[i, y0:y0 + h, x0:x0 + w] = True
    return masks.to(device)


def classmix_masks(labels: torch.Tensor, partner: torch.Tensor, ignore_index: int = 255,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """ClassMix masks: pixels of half (rounded up) of the classes present in the partner's label.

    Args:
        labels: (B, H, W) int64 (pseudo-)labels; ``ignore_index`` is never selected as a class.
        partner: (B,) partner indices from :func:`partner_indices`.

    Returns:
        (B, H, W) bool, True where image i takes the partner's pixels.
    """
    masks = torch.zeros_like(labels, dtype=torch.bool)
    for i in range(labels.shape[0]):
        src = labels[partner[i]]
        classes = torch.unique(src)
        classes = classes[classes != ignore_index]
        if classes.numel() == 0:
            continue
        n = (classes.numel() + 1) // 2
        chosen = classes[torch.randperm(classes.numel(), generator=generator)[:n].to(classes.device)]
        masks[i] = torch.isin(src, chosen)
    return masks


def apply_mix(mask: torch.Tensor, partner: torch.Tensor, *tensors: torch.Tensor
              ) -> tuple[torch.Tensor, ...]:
    """Mix every tensor with the same masks and partners.

    Args:
        mask: (B, H, W) bool, True where the partner's pixels are taken.
        partner: (B,) int64.
        tensors: each (B, H, W) or (B, C, H, W) (images, probabilities, labels, validity, ...).

    Returns:
        The mixed tensors, in order, same shapes and dtypes.

    Raises:
        ValueError: a tensor whose batch or spatial size differs from the mask's.
    """
    out = []
    for t in tensors:
        if t.shape[0] != mask.shape[0] or t.shape[-2:] != mask.shape[-2:]:
            raise ValueError(f"apply_mix: tensor of shape {tuple(t.shape)} does not match mask "
                             f"{tuple(mask.shape)} (batch and spatial size must agree)")
        m = mask if t.dim() == 3 else mask.unsqueeze(1)
        out.append(torch.where(m, t[partner], t))
    return tuple(out)
