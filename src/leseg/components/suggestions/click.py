"""Click suggestions, RITM style (Sofiiuk et al., "Reviving Iterative Training with Mask Guidance
for Interactive Segmentation", arXiv 2102.06583; ``isegm/inference/clicker.py``).

Clicks are encoded as binary disks of radius 5 px (RITM's HRNet models, ``use_disks=True``) or as
RITM distance maps ``tanh(2·d / radius)`` (``DistMaps`` without disks), one channel for positive
and, optionally, one for negative clicks. The first positive click goes to the interior point
farthest from the mask boundary (as RITM's evaluation clicker does); further positive clicks are
uniform over the mask, negative clicks uniform over the background near it.

``reference_quirks=True`` reproduces S5's weak click baseline instead (``--suggestion click``):
a single uniformly random positive pixel set to 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from leseg.components.suggestions.base import (
    SuggestionGenerator,
    check_mask,
    generator_device,
    register_suggestion,
)
from leseg.components.suggestions.distance import farthest_interior_point
from leseg.components.suggestions.flood import box_dilate

__all__ = ["CLICK_ENCODINGS", "ClickSuggestion", "encode_clicks", "random_pixels"]

CLICK_ENCODINGS = ("disk", "distance")


def random_pixels(eligible: torch.Tensor, count: int, generator: torch.Generator | None
                  ) -> list[tuple[int, int]]:
    """Up to ``count`` distinct pixels drawn uniformly from the True pixels of ``eligible``.

    Uniform keys for the eligible pixels (drawn on the generator's device), top-k of them.

    Args:
        eligible: (H, W) bool. count: number of pixels wanted (>= 0).

    Returns:
        list of (y, x), length min(count, number of eligible pixels), in draw order.
    """
    if count <= 0:
        return []
    w = eligible.shape[1]
    candidates = torch.nonzero(eligible.reshape(-1)).view(-1)
    if len(candidates) == 0:
        return []
    keys = torch.rand(len(candidates), generator=generator, device=generator_device(generator))
    chosen = candidates[keys.topk(min(count, len(candidates))).indices.to(candidates.device)]
    return [(i // w, i % w) for i in chosen.tolist()]


def encode_clicks(points: Sequence[tuple[int, int]], shape: tuple[int, int], radius: float = 5.0,
                  encoding: str = "disk", device: torch.device | str | None = None) -> torch.Tensor:
    """Encode clicks of one polarity as an (H, W) float32 map.

    Args:
        points: (y, x) pixel coordinates (rows, columns), any number.
        shape: (H, W).
        radius: disk radius in pixels (``disk``), or RITM's ``norm_radius`` (``distance``).
        encoding: ``"disk"`` → 1 where the Euclidean distance to the nearest click is <= radius,
            else 0; ``"distance"`` → tanh(2·d / radius) in [0, 1): 0 at a click, towards 1 far
            away, all ones without clicks (RITM ``DistMaps``).
        device: output device.

    Raises:
        ValueError: unknown encoding, radius <= 0 or a point outside the image.
    """
    if encoding not in CLICK_ENCODINGS:
        raise ValueError(f"click encoding must be one of {CLICK_ENCODINGS}, got {encoding!r}")
    if radius <= 0:
        raise ValueError(f"click radius must be > 0 pixels, got {radius}")
    h, w = shape
    for y, x in points:
        if not (0 <= y < h and 0 <= x < w):
            raise ValueError(f"click ({y}, {x}) lies outside the {h}x{w} image")
    if encoding == "disk":
        # A disk only covers its (2⌈r⌉+1)² box: outside it dy² or dx² alone exceeds r², so the
        # box-wise test equals the test on the full squared-distance map.
        out = torch.zeros(h, w, device=device)
        reach = math.ceil(radius)
        for y, x in points:
            y0, y1, x0, x1 = max(y - reach, 0), min(y + reach + 1, h), max(x - reach, 0), min(
                x + reach + 1, w)
            yy = torch.arange(y0, y1, device=device, dtype=torch.float32)[:, None]
            xx = torch.arange(x0, x1, device=device, dtype=torch.float32)[None, :]
            out[y0:y1, x0:x1] += (((yy - y) ** 2 + (xx - x) ** 2 <= radius ** 2)
                                  & (out[y0:y1, x0:x1] == 0)).float()
        return out
    yy = torch.arange(h, device=device, dtype=torch.float32)[:, None]
    xx = torch.arange(w, device=device, dtype=torch.float32)[None, :]
    nearest = torch.full((h, w), float("inf"), device=device)
    for y, x in points:
        nearest = torch.minimum(nearest, (yy - y) ** 2 + (xx - x) ** 2)
    return torch.tanh(2.0 * nearest.sqrt() / radius)


def _count(low: int, high: int | None, generator: torch.Generator | None) -> int:
    """``low`` when ``high`` is None, else uniform in ``low..high`` (inclusive)."""
    if high is None or high == low:
        return low
    return int(torch.randint(low, high + 1, (1,), generator=generator,
                             device=generator_device(generator)))


@register_suggestion("click")
class ClickSuggestion(SuggestionGenerator):
    """Positive (and optional negative) clicks encoded as disks or distance maps.

    Channels: k = 1 (positive) or 2 (positive, negative) when ``num_negative > 0``; values as in
    :func:`encode_clicks` (disks {0, 1}, distance maps [0, 1)).

    Args:
        num_positive: positive clicks (>= 1). The first one is at the interior point farthest
            from the mask boundary (``first_click="center"``, deterministic, image border counts
            as boundary) or uniform over the mask (``"random"``); the rest are uniform over the
            mask's other pixels.
        num_negative: negative clicks (>= 0), uniform over background pixels within
            ``negative_band`` px (Chebyshev distance) of the mask, or anywhere in the background
            when ``negative_band`` is None. Fewer are placed if fewer such pixels exist.
        radius: disk radius / distance-map norm radius in pixels (RITM: 5).
        encoding: ``"disk"`` or ``"distance"``.
        reference_quirks: S5's click baseline: one random positive pixel, 1 channel, no disk
            (requires ``num_positive=1, num_negative=0``).
        max_positive, max_negative: when given, each call draws the number of positive clicks
            uniformly from ``num_positive..max_positive`` and of negative clicks from
            ``num_negative..max_negative`` (with the call's generator): a model trained on a
            varying number of clicks, as RITM's iterative training shows it, can be evaluated
            by NoC with more clicks than it was trained on. None = fixed counts.

    Raises:
        ValueError: bad counts, encoding, radius, first_click or band; at call time, an empty
            mask.
    """

    def __init__(self, num_positive: int = 1, num_negative: int = 0, radius: float = 5.0,
                 encoding: str = "disk", first_click: str = "center",
                 negative_band: int | None = 40, reference_quirks: bool = False,
                 max_positive: int | None = None, max_negative: int | None = None) -> None:
        if num_positive < 1 or num_negative < 0:
            raise ValueError(f"ClickSuggestion: need num_positive >= 1 and num_negative >= 0, "
                             f"got {num_positive}, {num_negative}")
        if encoding not in CLICK_ENCODINGS:
            raise ValueError(f"ClickSuggestion: encoding must be one of {CLICK_ENCODINGS}, got "
                             f"{encoding!r}")
        if radius <= 0:
            raise ValueError(f"ClickSuggestion: radius must be > 0 pixels, got {radius}")
        if first_click not in ("center", "random"):
            raise ValueError(f"ClickSuggestion: first_click must be 'center' or 'random', got "
                             f"{first_click!r}")
        if negative_band is not None and negative_band < 1:
            raise ValueError(f"ClickSuggestion: negative_band must be >= 1 px or None, got "
                             f"{negative_band}")
        if reference_quirks and (num_positive != 1 or num_negative != 0):
            raise ValueError("ClickSuggestion: reference_quirks (S5's single-pixel click) needs "
                             "num_positive=1 and num_negative=0")
        if (max_positive is not None and max_positive < num_positive) or (
                max_negative is not None and max_negative < num_negative):
            raise ValueError(f"ClickSuggestion: need max_positive >= num_positive and "
                             f"max_negative >= num_negative, got {max_positive}, {max_negative}")
        if reference_quirks and (max_positive or max_negative):
            raise ValueError("ClickSuggestion: reference_quirks takes fixed counts (no "
                             "max_positive / max_negative)")
        self.num_positive, self.num_negative = int(num_positive), int(num_negative)
        self.max_positive = None if max_positive is None else int(max_positive)
        self.max_negative = None if max_negative is None else int(max_negative)
        self.radius, self.encoding, self.first_click = float(radius), encoding, first_click
        self.negative_band, self.reference_quirks = negative_band, bool(reference_quirks)
        self.num_channels = 2 if num_negative > 0 or (max_negative or 0) > 0 else 1

    def sample_clicks(self, mask: torch.Tensor, generator: torch.Generator | None
                      ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Click positions: (positive (y, x) list, negative (y, x) list)."""
        check_mask(mask, "ClickSuggestion", need_positive=True)
        num_positive = _count(self.num_positive, self.max_positive, generator)
        num_negative = _count(self.num_negative, self.max_negative, generator)
        positive: list[tuple[int, int]] = []
        if self.first_click == "center" and not self.reference_quirks:
            y, x, _ = farthest_interior_point(mask)
            positive.append((y, x))
        remaining = mask.clone()
        for y, x in positive:
            remaining[y, x] = False
        positive += random_pixels(remaining, num_positive - len(positive), generator)
        negative: list[tuple[int, int]] = []
        if num_negative:
            background = ~mask
            if self.negative_band is not None:
                background &= box_dilate(mask, self.negative_band, self.negative_band)
            negative = random_pixels(background, num_negative, generator)
        return positive, negative

    def generate(self, mask: torch.Tensor, generator: torch.Generator | None,
                 training: bool) -> torch.Tensor:
        positive, negative = self.sample_clicks(mask, generator)
        if self.reference_quirks:
            out = torch.zeros(1, *mask.shape, device=mask.device)
            out[0, positive[0][0], positive[0][1]] = 1.0
            return out
        maps = [encode_clicks(positive, tuple(mask.shape), self.radius, self.encoding,
                              mask.device)]
        if self.num_channels == 2:
            maps.append(encode_clicks(negative, tuple(mask.shape), self.radius, self.encoding,
                                      mask.device))
        return torch.stack(maps)

    def __repr__(self) -> str:
        return (f"ClickSuggestion(num_positive={self.num_positive}, "
                f"num_negative={self.num_negative}, radius={self.radius}, "
                f"encoding={self.encoding!r}, first_click={self.first_click!r}, "
                f"negative_band={self.negative_band}, reference_quirks={self.reference_quirks}, "
                f"max_positive={self.max_positive}, max_negative={self.max_negative})")
