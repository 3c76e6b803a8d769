"""Strong photometric perturbation of mixed images: colour jitter and Gaussian blur (DACS style).

Hoyer et al. (CVPR 2021, §3.3; ``loader/transformsgpu.py``), after DACS (Tranheden et al., WACV
2021): after mixing, with u ~ U(0, 1) drawn once per batch, colour jitter of strength s = 0.25
(brightness, contrast, saturation factors ~ U(1 − s, 1 + s), hue shift ~ U(−s, s) of the hue
circle, drawn per image) is applied when u > 0.2; with an independent u', a Gaussian blur with
σ ~ U(0.15, 1.15) and a kernel of about 10 % of the image side (rounded to an odd size) when
u' > 0.5. The reference uses kornia's ColorJitter; here torchvision's functional ops (same
operations; the exact kornia sampling of the brightness offset is not reproduced).

Images are RGB in [0, 1]; the functions know nothing of normalisation.
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms.v2 import functional as TF

__all__ = ["blur_kernel_size", "color_jitter", "gaussian_blur", "strong_photometric"]


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


def color_jitter(images: torch.Tensor, strength: float = 0.25,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image brightness, contrast, saturation and hue jitter.

    Args:
        images: (B, 3, H, W) float RGB in [0, 1].
        strength: s ≥ 0; factors ~ U(max(0, 1 − s), 1 + s), hue shift ~ U(−s, s) with s ≤ 0.5.

    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    if not 0.0 <= strength <= 0.5:
        raise ValueError(f"colour jitter strength must be in [0, 0.5], got {strength}")
    out = []
    lo = max(0.0, 1.0 - strength)
    for img in images:
        img = TF.adjust_brightness(img, _uniform(lo, 1 + strength, generator))
        img = TF.adjust_contrast(img, _uniform(lo, 1 + strength, generator))
        img = TF.adjust_saturation(img, _uniform(lo, 1 + strength, generator))
        img = TF.adjust_hue(img, _uniform(-strength, strength, generator))
        out.append(img.clamp(0, 1))
    return torch.stack(out)


def blur_kernel_size(side: int, ratio: float = 0.1) -> int:
    """Odd kernel size of about ``ratio`` · side (DACS: ⌈0.1·side⌉, made odd), at least 3."""
    k = int(math.ceil(ratio * side))
    if k % 2 == 0:
        k -= 1
    return max(k, 3)


def gaussian_blur(images: torch.Tensor, sigma_range: tuple[float, float] = (0.15, 1.15),
                  kernel_ratio: float = 0.1,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian blur with one σ ~ U(sigma_range) for the batch, kernel ≈ ``kernel_ratio``·side.

    Args:
        images: (B, C, H, W) float.

    Returns:
        (B, C, H, W) float (reflect-padded blur).
    """
    sigma = _uniform(*sigma_range, generator)
    kh = blur_kernel_size(images.shape[-2], kernel_ratio)
    kw = blur_kernel_size(images.shape[-1], kernel_ratio)
    return TF.gaussian_blur(images, kernel_size=[kw, kh], sigma=[sigma, sigma])


def strong_photometric(images: torch.Tensor, jitter_strength: float = 0.25,
                       jitter_prob: float = 0.8, blur_prob: float = 0.5,
                       sigma_range: tuple[float, float] = (0.15, 1.15),
                       kernel_ratio: float = 0.1,
                       generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, dict[str, bool]]:
    """Colour jitter with probability ``jitter_prob`` then blur with probability ``blur_prob``.

    One draw per batch for each (reference: u > 0.2 → jitter, u' > 0.5 → blur).

    Args:
        images: (B, 3, H, W) float RGB in [0, 1].

    Returns:
        ``(images, {"jitter": bool, "blur": bool})``.
    """
    applied = {"jitter": float(torch.rand((), generator=generator)) < jitter_prob,
               "blur": float(torch.rand((), generator=generator)) < blur_prob}
    if applied["jitter"] and jitter_strength > 0:
        images = color_jitter(images, jitter_strength, generator)
    if applied["blur"]:
        images = gaussian_blur(images, sigma_range, kernel_ratio, generator)
    return images, applied
