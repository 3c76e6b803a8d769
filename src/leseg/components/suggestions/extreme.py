"""Extreme-point suggestion, DEXTR style (Maninis et al., "Deep Extreme Cut", CVPR 2018).

Four extreme points of the mask — leftmost, rightmost, topmost, bottommost pixel — each rendered
as a Gaussian with σ used as the full width at half maximum, exp(−4·ln2·d²/σ²) (DEXTR's
``make_gt``, σ = 10), and merged by a pixel-wise max into one channel in [0, 1] (DEXTR scales it
to 0–255 and crops around the object; we keep [0, 1] on the full image). In training each point is
drawn uniformly among the mask pixels within ``jitter`` px of the extreme coordinate (DEXTR's
``pert``); at evaluation the middle one of the pixels exactly at the extreme is used.
"""

from __future__ import annotations

import math

import torch

from leseg.components.suggestions.base import (
    SuggestionGenerator,
    check_mask,
    generator_device,
    register_suggestion,
)

__all__ = ["ExtremePointSuggestion", "extreme_points", "gaussian_heatmap"]


def extreme_points(mask: torch.Tensor, jitter: int = 0, generator: torch.Generator | None = None
                   ) -> list[tuple[int, int]]:
    """Left, right, top and bottom extreme points of ``mask`` as (y, x) pairs, in that order.

    Args:
        mask: (H, W) bool with at least one True pixel.
        jitter: 0 → deterministic: among the pixels exactly at the extreme coordinate (e.g. all
            pixels in the leftmost column), the middle one in raster order. > 0 → uniform among
            the pixels within ``jitter`` px of the extreme coordinate (DEXTR training).
        generator: randomness for ``jitter > 0``.

    Raises:
        ValueError: empty mask or negative jitter.
    """
    check_mask(mask, "extreme_points", need_positive=True)
    if jitter < 0:
        raise ValueError(f"extreme_points: jitter must be >= 0 px, got {jitter}")
    ys, xs = torch.nonzero(mask, as_tuple=True)
    candidates = (xs <= xs.min() + jitter, xs >= xs.max() - jitter,
                  ys <= ys.min() + jitter, ys >= ys.max() - jitter)
    points = []
    for cand in candidates:
        index = torch.nonzero(cand).view(-1)
        if jitter > 0:
            pick = int(torch.randint(len(index), (1,), generator=generator,
                                     device=generator_device(generator)))
        else:
            pick = (len(index) - 1) // 2
        k = int(index[pick])
        points.append((int(ys[k]), int(xs[k])))
    return points


def gaussian_heatmap(points: list[tuple[int, int]], shape: tuple[int, int], sigma: float = 10.0,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """Pixel-wise max of exp(−4·ln2·d²/σ²) over ``points`` (σ = FWHM in px); (H, W) float32 in [0, 1].

    Raises:
        ValueError: sigma <= 0.
    """
    if sigma <= 0:
        raise ValueError(f"gaussian_heatmap: sigma must be > 0 px, got {sigma}")
    h, w = shape
    rate = 4.0 * math.log(2.0) / sigma ** 2
    yy = torch.arange(h, device=device, dtype=torch.float32)
    xx = torch.arange(w, device=device, dtype=torch.float32)
    heat = torch.zeros(h, w, device=device)
    for y, x in points:  # separable: exp(−a(dy² + dx²)) = exp(−a·dy²) · exp(−a·dx²)
        gy, gx = torch.exp(-rate * (yy - y) ** 2), torch.exp(-rate * (xx - x) ** 2)
        heat = torch.maximum(heat, gy[:, None] * gx[None, :])
    return heat


@register_suggestion("extreme")
class ExtremePointSuggestion(SuggestionGenerator):
    """DEXTR extreme points as one Gaussian heat-map channel, values in [0, 1] (1 at the points).

    Args:
        sigma: Gaussian FWHM in px (DEXTR: 10).
        jitter: training-time perturbation in px (DEXTR: 5); none when called with
            ``training=False``.

    Raises:
        ValueError: sigma <= 0 or jitter < 0; at call time, an empty mask.
    """

    num_channels = 1

    def __init__(self, sigma: float = 10.0, jitter: int = 5) -> None:
        if sigma <= 0 or jitter < 0:
            raise ValueError(f"ExtremePointSuggestion: need sigma > 0 and jitter >= 0, got "
                             f"sigma={sigma}, jitter={jitter}")
        self.sigma, self.jitter = float(sigma), int(jitter)

    def generate(self, mask: torch.Tensor, generator: torch.Generator | None,
                 training: bool) -> torch.Tensor:
        points = extreme_points(mask, self.jitter if training else 0, generator)
        return gaussian_heatmap(points, tuple(mask.shape), self.sigma, mask.device).unsqueeze(0)

    def __repr__(self) -> str:
        return f"ExtremePointSuggestion(sigma={self.sigma}, jitter={self.jitter})"
