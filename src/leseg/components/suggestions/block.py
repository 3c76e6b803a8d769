"""Block-based suggestion (S5 ``--suggestion block``): coarse tiles of the class, united with the mask.

Magolor/S5 ``get_image_with_block_suggestion`` (``transforms_vision.py``): the image is cut into a
32 × 32 grid of tiles (32 × 64 px at 1024 × 2048); a tile is filled when the class covers at least
20 % of it; the suggestion is ``mask ∪ filled tiles``.

Two tile geometries:

- ``reference_quirks=True`` (the released code): tile (i, j) has size I × J with I = H // gh,
  J = W // gw; only rows [i·I, (i+1)·I − 1) and columns [j·J, (j+1)·J − 1) are counted and filled
  (the last row/column of every tile is skipped, leaving a 1-px grid of untouched mask values),
  the count is divided by the *full* area I·J, and the remainder rows/columns beyond gh·I / gw·J
  belong to no tile.
- ``reference_quirks=False`` (clean): tile edges at ⌊i·H/gh⌋, ⌊j·W/gw⌋ cover the image exactly,
  the fraction is count / tile area, and the whole tile is filled.

:class:`BlockSuggestion` is vectorised (per-tile counts and the fill as matrix products with 0/1
tile-membership matrices);
:func:`block_loop` is the straightforward per-tile Python loop used as the reference in tests and
the benchmark. Both compare ``count / area >= threshold`` in float64 (the reference divides in
float32; they differ only when a fraction lies within float32 rounding of the threshold).
"""

from __future__ import annotations

import torch

from leseg.components.suggestions.base import (
    SuggestionGenerator,
    check_mask,
    register_suggestion,
)

__all__ = ["BlockSuggestion", "block_loop", "block_suggestion", "tile_bounds"]


def _grid_pair(grid: int | tuple[int, int] | list[int], who: str) -> tuple[int, int]:
    if isinstance(grid, int) and not isinstance(grid, bool):
        grid = (grid, grid)
    try:
        gh, gw = (int(g) for g in grid)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: grid must be an int or a pair (rows, cols), got {grid!r}") from None
    if gh < 1 or gw < 1:
        raise ValueError(f"{who}: grid must be positive, got {grid!r}")
    return gh, gw


def tile_bounds(size: int, tiles: int, reference_quirks: bool) -> tuple[list[int], list[int],
                                                                         list[int]]:
    """Start / end (exclusive) of the covered pixels and the fraction denominator per tile, on one axis.

    Args:
        size: image extent along the axis (H or W) in pixels.
        tiles: number of tiles along the axis (gh or gw).
        reference_quirks: S5 geometry (step = size // tiles, last pixel of each tile skipped,
            denominator = step) or the clean one (edges at ⌊i·size/tiles⌋, denominator = length).

    Returns:
        (starts, ends, lengths): lists of ``tiles`` ints; the 2-D fraction denominator of tile
        (i, j) is ``lengths_rows[i] · lengths_cols[j]``.

    Raises:
        ValueError: more tiles than pixels along the axis.
    """
    if tiles > size:
        raise ValueError(f"block suggestion: {tiles} tiles do not fit in {size} pixels; use a "
                         f"smaller grid")
    if reference_quirks:
        step = size // tiles
        starts = [i * step for i in range(tiles)]
        return starts, [s + step - 1 for s in starts], [step] * tiles
    edges = [i * size // tiles for i in range(tiles + 1)]
    return edges[:-1], edges[1:], [b - a for a, b in zip(edges[:-1], edges[1:])]


def _membership(size: int, starts: list[int], ends: list[int], device: torch.device) -> torch.Tensor:
    """(size, tiles) float32 one-hot: pixel p along the axis is counted in / filled by tile t."""
    index = torch.arange(size, device=device)[:, None]
    lo = torch.tensor(starts, device=device)[None, :]
    hi = torch.tensor(ends, device=device)[None, :]
    return ((index >= lo) & (index < hi)).float()


def block_suggestion(mask: torch.Tensor, grid: int | tuple[int, int] = 32, threshold: float = 0.2,
                     reference_quirks: bool = True) -> torch.Tensor:
    """Vectorised block suggestion: ``mask ∪ {tiles whose class fraction >= threshold}``.

    Args:
        mask: (H, W) bool binary target (CPU or CUDA).
        grid: tiles per axis, an int (square grid, S5: 32) or (rows, cols).
        threshold: minimum class fraction in (0, 1] for a tile to be filled (S5: 0.2).
        reference_quirks: see the module docstring.

    Returns:
        (H, W) bool on ``mask.device``; a superset of ``mask``.

    Raises:
        TypeError / ValueError: bad mask; ValueError: threshold outside (0, 1] or a grid finer
            than the image.
    """
    check_mask(mask, "block_suggestion")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"block_suggestion: threshold must be in (0, 1], got {threshold}")
    (h, w), (gh, gw) = mask.shape, _grid_pair(grid, "block_suggestion")
    r0, r1, rl = tile_bounds(h, gh, reference_quirks)
    c0, c1, cl = tile_bounds(w, gw, reference_quirks)
    rows = _membership(h, r0, r1, mask.device)  # (H, gh)
    cols = _membership(w, c0, c1, mask.device)  # (W, gw)
    # Two matmuls give the per-tile counts and paint the filled tiles back. Values are 0/1 and
    # sums stay far below 2**24, so float32 (or TF32) arithmetic is exact; autocast is disabled
    # so a surrounding bf16/fp16 region cannot round the counts.
    with torch.autocast(mask.device.type, enabled=False):
        counts = rows.T @ mask.float() @ cols  # (gh, gw) positives per tile
        area = (torch.tensor(rl, device=mask.device, dtype=torch.float64)[:, None]
                * torch.tensor(cl, device=mask.device, dtype=torch.float64)[None, :])
        filled = (counts.double() / area >= threshold).float()
        fill = (rows @ filled @ cols.T) > 0.5
    return mask | fill


def block_loop(mask: torch.Tensor, grid: int | tuple[int, int] = 32, threshold: float = 0.2,
               reference_quirks: bool = True) -> torch.Tensor:
    """Straightforward per-tile loop with the same semantics as :func:`block_suggestion`.

    One slice sum and one slice write per tile, as the S5 reference does (1,024 tiles at the
    default grid). Kept for tests and ``benchmarks/suggestions.py``; same arguments and result.
    """
    check_mask(mask, "block_loop")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"block_loop: threshold must be in (0, 1], got {threshold}")
    (h, w), (gh, gw) = mask.shape, _grid_pair(grid, "block_loop")
    r0, r1, rl = tile_bounds(h, gh, reference_quirks)
    c0, c1, cl = tile_bounds(w, gw, reference_quirks)
    out = mask.clone()
    for i in range(gh):
        for j in range(gw):
            count = int(mask[r0[i]:r1[i], c0[j]:c1[j]].sum())
            if count / (rl[i] * cl[j]) >= threshold:
                out[r0[i]:r1[i], c0[j]:c1[j]] = True
    return out


@register_suggestion("block")
class BlockSuggestion(SuggestionGenerator):
    """S5 block suggestion as a generator: 1 channel, values in {0, 1} (float32).

    Deterministic (ignores the random generator). Args as :func:`block_suggestion`; defaults are
    the S5 ones (32 × 32 grid, 20 %, reference tile geometry).
    """

    num_channels = 1

    def __init__(self, grid: int | tuple[int, int] = 32, threshold: float = 0.2,
                 reference_quirks: bool = True) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"BlockSuggestion: threshold must be in (0, 1], got {threshold}")
        self.grid = _grid_pair(grid, "BlockSuggestion")
        self.threshold = float(threshold)
        self.reference_quirks = bool(reference_quirks)

    def generate(self, mask: torch.Tensor, generator: torch.Generator | None,
                 training: bool) -> torch.Tensor:
        return block_suggestion(mask, self.grid, self.threshold,
                                self.reference_quirks).float().unsqueeze(0)

    def __repr__(self) -> str:
        return (f"BlockSuggestion(grid={self.grid}, threshold={self.threshold}, "
                f"reference_quirks={self.reference_quirks})")
