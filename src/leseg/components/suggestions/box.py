"""Box suggestion: the filled axis-aligned bounding box of the mask (S5's ``--suggestion box``).

As in Magolor/S5 ``get_image_with_box_suggestion`` (margin 0): the box spans *all* positive pixels
of the chosen class, so for a class with several instances it can cover most of the image
(Magolor/S5 ``--suggestion box``). A weak baseline by construction.
"""

from __future__ import annotations

import torch

from leseg.components.suggestions.base import (
    SuggestionGenerator,
    check_mask,
    register_suggestion,
)

__all__ = ["BoxSuggestion", "bounding_box"]


def bounding_box(mask: torch.Tensor, margin: int = 0) -> torch.Tensor:
    """(H, W) bool filled bounding box of the True pixels, grown by ``margin`` px and clipped.

    Vectorised (no host synchronisation).

    Raises:
        ValueError: empty mask or negative margin.
    """
    check_mask(mask, "bounding_box", need_positive=True)
    if margin < 0:
        raise ValueError(f"bounding_box: margin must be >= 0 px, got {margin}")
    rows, cols = mask.any(1), mask.any(0)
    h, w = mask.shape
    r = torch.arange(h, device=mask.device)
    c = torch.arange(w, device=mask.device)
    top, bottom = torch.where(rows, r, h).min(), torch.where(rows, r, -1).max()
    left, right = torch.where(cols, c, w).min(), torch.where(cols, c, -1).max()
    in_rows = (r >= top - margin) & (r <= bottom + margin)
    in_cols = (c >= left - margin) & (c <= right + margin)
    return in_rows[:, None] & in_cols[None, :]


@register_suggestion("box")
class BoxSuggestion(SuggestionGenerator):
    """Filled bounding box as one channel, values in {0, 1}; deterministic.

    Args:
        margin: px added on every side (S5: 0), clipped to the image.
    """

    num_channels = 1

    def __init__(self, margin: int = 0) -> None:
        if margin < 0:
            raise ValueError(f"BoxSuggestion: margin must be >= 0 px, got {margin}")
        self.margin = int(margin)

    def generate(self, mask: torch.Tensor, generator: torch.Generator | None,
                 training: bool) -> torch.Tensor:
        return bounding_box(mask, self.margin).float().unsqueeze(0)

    def __repr__(self) -> str:
        return f"BoxSuggestion(margin={self.margin})"
