"""S5 suggestion generators: a binary target (H, W) bool → hint channels (k, H, W) float32.

Plugins chosen by name (``method.suggestion=block|flood|click|extreme|box``) through
:func:`build_suggestion`; a list builds :class:`Combined` (channels concatenated in order).

=========  ==========================================  ========  =============================
name       class                                       k         values
=========  ==========================================  ========  =============================
block      :class:`BlockSuggestion` (S5)               1         {0, 1}, ⊇ mask
flood      :class:`FloodSuggestion` (S5)               1         {0, 1}, ⊇ mask
click      :class:`ClickSuggestion` (RITM)             1 or 2    disks {0, 1} / distance [0, 1)
extreme    :class:`ExtremePointSuggestion` (DEXTR)     1         [0, 1], 1 at the four points
box        :class:`BoxSuggestion` (S5 baseline)        1         {0, 1}, ⊇ mask
=========  ==========================================  ========  =============================

All generators are vectorised on tensors (CPU or CUDA); the click placement's distance transform
runs on CPU (scipy). :func:`block_loop` and :func:`flood_loop` are the straightforward loop
implementations of the S5 reference, for tests and ``benchmarks/suggestions.py``.
"""

from leseg.components.suggestions.base import (
    SUGGESTIONS,
    Combined,
    SuggestionGenerator,
    build_suggestion,
    check_mask,
    register_suggestion,
)
from leseg.components.suggestions.block import BlockSuggestion, block_loop, block_suggestion
from leseg.components.suggestions.box import BoxSuggestion, bounding_box
from leseg.components.suggestions.click import ClickSuggestion, encode_clicks, random_pixels
from leseg.components.suggestions.distance import distance_to_boundary, farthest_interior_point
from leseg.components.suggestions.extreme import (
    ExtremePointSuggestion,
    extreme_points,
    gaussian_heatmap,
)
from leseg.components.suggestions.flood import (
    FloodDraws,
    FloodSuggestion,
    box_dilate,
    draw_flood_shifts,
    flood_loop,
    flood_suggestion,
)

__all__ = [
    "SUGGESTIONS",
    "BlockSuggestion",
    "BoxSuggestion",
    "ClickSuggestion",
    "Combined",
    "ExtremePointSuggestion",
    "FloodDraws",
    "FloodSuggestion",
    "SuggestionGenerator",
    "block_loop",
    "block_suggestion",
    "bounding_box",
    "box_dilate",
    "build_suggestion",
    "check_mask",
    "distance_to_boundary",
    "draw_flood_shifts",
    "encode_clicks",
    "extreme_points",
    "farthest_interior_point",
    "flood_loop",
    "flood_suggestion",
    "gaussian_heatmap",
    "random_pixels",
    "register_suggestion",
]
