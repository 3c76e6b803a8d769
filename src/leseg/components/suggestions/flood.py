"""Flood-based suggestion (S5 ``--suggestion <int>``): the reference's cascading tile flood.

Reference semantics (Magolor/S5 ``get_image_with_suggestion``, ``transforms_vision.py``), on the
binary target S (H × W), a gh × gw tile grid (S5: 10 × 10), I = H // gh, J = W // gw and the
"blur threshold" t (S5: 20 or 50):

    for tile (i, j) in raster order:
        x = max(min(U{1..t−1}, H − (i+1)·I − 1, i·I), 0)        # row shift bound
        y = max(min(U{1..t−1}, W − (j+1)·J − 1, j·J), 0)        # column shift bound
        T = rows [i·I, (i+1)·I − 1) × cols [j·J, (j+1)·J − 1)  # last row/col of the tile skipped
        repeat 1000 times:
            (m, n) ~ U{−x..x} × U{−y..y}
            S[T] = S[T] | S[T + (m, n)]                          # reads the *current* S

Because the OR is written back in place, a tile reads pixels its earlier shifts (and earlier
tiles) already set: ones spread through the whole tile and cascade into later tiles, which is
why the S5 flood hint covers a large part of the image (Magolor/S5). The first tile
row/column gets x = 0 / y = 0 (no shift along that axis) and the last one is clipped so reads stay
inside the image.

Implementations:

- :func:`flood_loop` — the reference loop, shift by shift (exact; ~100k slice operations per
  image; used by ``FloodSuggestion(exact=True)``, the tests and the benchmark).
- :func:`flood_suggestion` — per tile, the 1,000 sequential in-place ORs are replaced by their
  *closure*: with x, y > 0 the covered tile becomes all ones iff a one lies in some window
  T + (m, n) of a drawn shift (checked for all shifts at once with an integral image of
  the tile's neighbourhood); with x = 0 (first tile row) each row of the tile is flooded
  independently from the drawn column windows, with y = 0 each column; x = y = 0 leaves the tile
  unchanged. Tiles are still processed in raster order, so the cascade is kept.
  **Approximation**: the exact loop reaches this closure only if the random shift sequence
  connects every pixel of the tile to a one (paths use the shifts in reverse draw order and must
  stay inside the tile); with 1,000 shifts this nearly always holds, but a one that only the
  last few shifts can read, or very small shift bounds, leave the exact result partly unflooded.
  The closure is monotone and dominates each exact tile step, so
  ``mask ⊆ flood_loop(...) ⊆ flood_suggestion(...)`` with the same draws (tested), and both
  consume the random generator identically (:func:`draw_flood_shifts`). The numbers come from
  torch, not numpy, so runs match the reference in distribution, not bit for bit.
- ``reference_quirks=False`` — the clean variant: dilate the original mask by a random
  rectangle of half-sizes ry, rx ~ U{1..t−1} (a bounded, local dilation; identical to a max-pool
  with kernel (2ry+1, 2rx+1) and "same" padding, computed with O(log r) shifted ORs per axis).
"""

from __future__ import annotations

import numpy as np
import torch

from leseg.components.suggestions.base import (
    SuggestionGenerator,
    check_mask,
    generator_device,
    register_suggestion,
)
from leseg.components.suggestions.block import _grid_pair

__all__ = [
    "FloodDraws",
    "FloodSuggestion",
    "box_dilate",
    "draw_flood_shifts",
    "flood_loop",
    "flood_suggestion",
]


class FloodDraws:
    """The random numbers of one reference flood, drawn once and shared by both implementations.

    Attributes:
        bounds: (T, 2) long raw shift bounds U{1..t−1} per tile (rows, cols) before clipping,
            T = gh·gw tiles in raster order (CPU).
        unit: (T, K, 2) float32 uniform [0, 1) numbers turned into the K shifts of each tile by
            :meth:`shifts` (on the generator's device).
    """

    def __init__(self, bounds: torch.Tensor, unit: torch.Tensor) -> None:
        self.bounds, self.unit = bounds, unit

    def shifts(self, tile: int, x: int, y: int) -> torch.Tensor:
        """(K, 2) long shifts (m, n) of ``tile`` with m ∈ [−x, x], n ∈ [−y, y] (uniform)."""
        span = torch.tensor([2 * x + 1, 2 * y + 1], device=self.unit.device)
        steps = (self.unit[tile] * span).floor().long()
        steps = torch.minimum(steps, span - 1)  # guard against rounding up to the span
        return steps - torch.tensor([x, y], device=self.unit.device)


def draw_flood_shifts(num_tiles: int, threshold: int, num_shifts: int,
                      generator: torch.Generator | None) -> FloodDraws:
    """Draw the per-tile shift bounds and unit numbers for :func:`flood_loop` / :func:`flood_suggestion`.

    Order on the generator: one ``randint(1, threshold, (T, 2))`` then one ``rand(T, K, 2)``.
    """
    dev = generator_device(generator)
    bounds = torch.randint(1, threshold, (num_tiles, 2), generator=generator, device=dev)
    unit = torch.rand(num_tiles, num_shifts, 2, generator=generator, device=dev)
    return FloodDraws(bounds.cpu(), unit)


def _check_flood_args(who: str, threshold: int, num_shifts: int) -> None:
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 2:
        raise ValueError(f"{who}: threshold must be an int >= 2 (shift bounds are drawn from "
                         f"U{{1..threshold-1}}), got {threshold!r}")
    if isinstance(num_shifts, bool) or not isinstance(num_shifts, int) or num_shifts < 1:
        raise ValueError(f"{who}: num_shifts must be a positive int, got {num_shifts!r}")


def _tile_geometry(h: int, w: int, grid: tuple[int, int], who: str
                   ) -> tuple[int, int, int, int]:
    gh, gw = grid
    if gh > h or gw > w:
        raise ValueError(f"{who}: a {gh}x{gw} tile grid does not fit a {h}x{w} mask")
    return gh, gw, h // gh, w // gw


def _check_draws(draws: FloodDraws, tiles: int, num_shifts: int, who: str) -> None:
    if draws.bounds.shape != (tiles, 2) or tuple(draws.unit.shape) != (tiles, num_shifts, 2):
        raise ValueError(f"{who}: draws hold bounds {tuple(draws.bounds.shape)} and unit numbers "
                         f"{tuple(draws.unit.shape)}, expected ({tiles}, 2) and "
                         f"({tiles}, {num_shifts}, 2) for this grid and num_shifts")


def _clipped_bounds(draws: FloodDraws, tile: int, i: int, j: int, h: int, w: int, ti: int,
                    tj: int) -> tuple[int, int]:
    """The reference's clipping of the raw bounds: no shift in the first tile row / column, and
    reads of the last tile row / column stay inside the image."""
    raw_x, raw_y = draws.bounds[tile].tolist()
    x = max(min(raw_x, h - (i + 1) * ti - 1, i * ti), 0)
    y = max(min(raw_y, w - (j + 1) * tj - 1, j * tj), 0)
    return x, y


def flood_loop(mask: torch.Tensor, threshold: int = 20, grid: int | tuple[int, int] = 10,
               num_shifts: int = 1000, generator: torch.Generator | None = None,
               draws: FloodDraws | None = None, max_tiles: int | None = None) -> torch.Tensor:
    """The S5 reference flood, one shifted in-place OR at a time (exact semantics).

    Args:
        mask: (H, W) bool binary target.
        threshold: the reference's blur threshold t >= 2; shift bounds are drawn from U{1..t−1}.
        grid: tiles per axis (S5: 10).
        num_shifts: shifts per tile (S5: 1000).
        generator: randomness (ignored when ``draws`` is given).
        draws: pre-drawn numbers from :func:`draw_flood_shifts` (to compare implementations);
            must match the grid and ``num_shifts``.
        max_tiles: stop after this many tiles in raster order (bounded benchmarks only; the
            result is then incomplete).

    Returns:
        (H, W) bool ``mask ∪ flood`` on ``mask.device``.

    Raises:
        ValueError: bad threshold / num_shifts / grid, or draws of the wrong shape.
        TypeError / ValueError: bad mask.
    """
    check_mask(mask, "flood_loop")
    _check_flood_args("flood_loop", threshold, num_shifts)
    h, w = mask.shape
    gh, gw, ti, tj = _tile_geometry(h, w, _grid_pair(grid, "flood_loop"), "flood_loop")
    if draws is None:
        draws = draw_flood_shifts(gh * gw, threshold, num_shifts, generator)
    _check_draws(draws, gh * gw, num_shifts, "flood_loop")
    out = mask.clone()
    for i in range(gh):
        for j in range(gw):
            tile = i * gw + j
            if max_tiles is not None and tile >= max_tiles:
                return out
            x, y = _clipped_bounds(draws, tile, i, j, h, w, ti, tj)
            r0, r1, c0, c1 = i * ti, (i + 1) * ti - 1, j * tj, (j + 1) * tj - 1
            for m, n in draws.shifts(tile, x, y).tolist():
                out[r0:r1, c0:c1] = out[r0:r1, c0:c1] | out[r0 + m:r1 + m, c0 + n:c1 + n]
    return out


def _all_drawn_sets(draws: FloodDraws, bounds: list[tuple[int, int]]) -> list[np.ndarray]:
    """Per tile, the (2x+1, 2y+1) bool numpy set of drawn shifts, for all tiles in one pass.

    The same arithmetic as :meth:`FloodDraws.shifts` (float32 ``floor(unit · span)`` clamped to
    ``span − 1``), batched over the tiles in numpy: identical shifts, one device round trip.
    """
    span = np.array([[2 * x + 1, 2 * y + 1] for x, y in bounds], dtype=np.int64)[:, None, :]
    unit = draws.unit.detach().cpu().numpy()  # float32, times the span in float32 as in torch
    steps = np.minimum(np.floor(unit * span.astype(np.float32)).astype(np.int64), span - 1)
    flat = steps[..., 0] * span[..., 1] + steps[..., 1]  # (T, K)
    sets = []
    for (x, y), index in zip(bounds, flat, strict=True):
        drawn = np.zeros((2 * x + 1) * (2 * y + 1), dtype=bool)
        drawn[index] = True
        sets.append(drawn.reshape(2 * x + 1, 2 * y + 1))
    return sets


def _flood_tile_closure(out: np.ndarray, r0: int, r1: int, c0: int, c1: int, x: int, y: int,
                        drawn: np.ndarray) -> None:
    """Closure of one tile's sequential ORs (see the module docstring), written into ``out``.

    ``out`` is the (H, W) bool numpy image being flooded, ``drawn`` the tile's (2x+1, 2y+1) set
    of drawn shifts. A neighbourhood without ones, or a tile already all ones, is left as is
    (the closure cannot change it); so is a one in the tile's core (read by every shift).
    """
    th, tw = r1 - r0, c1 - c0
    if th <= 0 or tw <= 0 or (x == 0 and y == 0):
        return
    local = out[r0 - x:r1 + x, c0 - y:c1 + y]
    tile = out[r0:r1, c0:c1]
    if not local.any() or tile.all():
        return
    if x > 0 and y > 0:
        if out[r0 + x:r1 - x, c0 + y:c1 - y].any():
            # the core lies in every window T + (m, n) with |m| <= x, |n| <= y: a one there is
            # read by any drawn shift
            tile[...] = True
            return
        integral = np.zeros((th + 2 * x + 1, tw + 2 * y + 1), dtype=np.int32)
        np.cumsum(local, axis=0, dtype=np.int32, out=integral[1:, 1:])
        np.cumsum(integral[1:, 1:], axis=1, out=integral[1:, 1:])
        window = (integral[th:th + 2 * x + 1, tw:tw + 2 * y + 1]
                  - integral[:2 * x + 1, tw:tw + 2 * y + 1]
                  - integral[th:th + 2 * x + 1, :2 * y + 1]
                  + integral[:2 * x + 1, :2 * y + 1])  # (2x+1, 2y+1) ones per shifted window
        if ((window > 0) & drawn).any():
            tile[...] = True
    elif x == 0:  # rows evolve independently: per-row window sums over the column shifts
        cum = np.zeros((th, tw + 2 * y + 1), dtype=np.int32)
        np.cumsum(local, axis=1, dtype=np.int32, out=cum[:, 1:])
        window = cum[:, tw:tw + 2 * y + 1] - cum[:, :2 * y + 1]  # (th, 2y+1)
        tile |= ((window > 0) & drawn[0]).any(1, keepdims=True)
    else:  # y == 0: columns evolve independently
        cum = np.zeros((th + 2 * x + 1, tw), dtype=np.int32)
        np.cumsum(local, axis=0, dtype=np.int32, out=cum[1:])
        window = cum[th:th + 2 * x + 1, :] - cum[:2 * x + 1, :]  # (2x+1, tw)
        tile |= ((window > 0) & drawn[:, 0:1]).any(0, keepdims=True)


def flood_suggestion(mask: torch.Tensor, threshold: int = 20, grid: int | tuple[int, int] = 10,
                     num_shifts: int = 1000, generator: torch.Generator | None = None,
                     draws: FloodDraws | None = None) -> torch.Tensor:
    """Vectorised S5 flood: per-tile closure of the reference's shifted ORs, tiles in raster order.

    Same arguments and random-number consumption as :func:`flood_loop`; the shifts of all tiles
    are turned into drawn-shift sets in one batched pass, then each tile costs a few numpy
    operations on its neighbourhood (an integral image) instead of ``num_shifts`` slice ORs.
    The result is a superset of ``flood_loop(mask, ..., draws=same)`` and equal to it whenever
    every tile saturates (see the module docstring for the approximation). The tiles run on the
    CPU (the cascade is sequential); a mask on another device is copied there and back.

    Returns:
        (H, W) bool ``mask ∪ flood`` on ``mask.device`` (⊇ ``mask``).
    """
    check_mask(mask, "flood_suggestion")
    _check_flood_args("flood_suggestion", threshold, num_shifts)
    h, w = mask.shape
    gh, gw, ti, tj = _tile_geometry(h, w, _grid_pair(grid, "flood_suggestion"),
                                    "flood_suggestion")
    if draws is None:
        draws = draw_flood_shifts(gh * gw, threshold, num_shifts, generator)
    _check_draws(draws, gh * gw, num_shifts, "flood_suggestion")
    bounds = [_clipped_bounds(draws, i * gw + j, i, j, h, w, ti, tj)
              for i in range(gh) for j in range(gw)]
    sets = _all_drawn_sets(draws, bounds)
    out = mask.detach().cpu().numpy().copy()
    for i in range(gh):
        for j in range(gw):
            x, y = bounds[i * gw + j]
            _flood_tile_closure(out, i * ti, (i + 1) * ti - 1, j * tj, (j + 1) * tj - 1, x, y,
                                sets[i * gw + j])
    return torch.from_numpy(out).to(mask.device)


def _dilate_axis(mask: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """OR over the window [p − radius, p + radius] along ``dim`` (zeros outside the image).

    Doubling: after the loop ``window[q]`` is the OR of ``padded[q : q + span]``; the input is
    padded with ``radius`` zeros in front so that ``window[p]`` covers [p − radius, p + radius].
    O(log radius) shifted ORs of the whole mask.
    """
    n, length = mask.shape[dim], 2 * radius + 1
    front = torch.zeros_like(mask.narrow(dim, 0, 1)).expand(
        *[radius if d == dim else s for d, s in enumerate(mask.shape)])
    window = torch.cat([front, mask], dim=dim)
    total, span = window.shape[dim], 1
    while span < length:
        step = min(span, length - span)  # [0, span) ∪ [step, step + span) = [0, span + step)
        shifted = window.clone()
        shifted.narrow(dim, 0, total - step).logical_or_(window.narrow(dim, step, total - step))
        window, span = shifted, span + step
    return window.narrow(dim, 0, n).contiguous()


def box_dilate(mask: torch.Tensor, radius_rows: int, radius_cols: int) -> torch.Tensor:
    """Binary dilation by a (2·radius_rows+1) × (2·radius_cols+1) rectangle ("same" size output).

    Equal to ``max_pool2d(mask, kernel, stride 1, padding radius) > 0`` (tested) but
    O(H·W·log radius) and bool-only: separable, each axis by doubling shifted ORs.

    Args:
        mask: (H, W) bool. radius_rows, radius_cols: half-sizes >= 0 in pixels.

    Returns:
        (H, W) bool on ``mask.device`` (a new tensor).

    Raises:
        ValueError: a negative radius.
    """
    if radius_rows < 0 or radius_cols < 0:
        raise ValueError(f"box_dilate: radii must be >= 0, got ({radius_rows}, {radius_cols})")
    out = mask.clone()
    if radius_rows:
        out = _dilate_axis(out, radius_rows, 0)
    if radius_cols:
        out = _dilate_axis(out, radius_cols, 1)
    return out


@register_suggestion("flood")
class FloodSuggestion(SuggestionGenerator):
    """S5 flood suggestion as a generator: 1 channel, values in {0, 1} (float32), ⊇ the mask.

    Args:
        threshold: the reference's blur threshold t >= 2 (``--suggestion 20`` / ``50``); shift
            bounds / dilation radii are drawn from U{1..t−1}.
        grid: tiles per axis for the reference flood (S5: 10).
        num_shifts: shifts per tile (S5: 1000).
        reference_quirks: True → the cascading tile flood (S5's reference); False → the
            clean bounded dilation of the original mask by a random rectangle.
        exact: with ``reference_quirks``, run :func:`flood_loop` (exact, ~100k operations per
            image) instead of the vectorised closure :func:`flood_suggestion`.
    """

    num_channels = 1

    def __init__(self, threshold: int = 20, grid: int | tuple[int, int] = 10,
                 num_shifts: int = 1000, reference_quirks: bool = True,
                 exact: bool = False) -> None:
        _check_flood_args("FloodSuggestion", threshold, num_shifts)
        self.threshold, self.num_shifts = threshold, num_shifts
        self.grid = _grid_pair(grid, "FloodSuggestion")
        self.reference_quirks, self.exact = bool(reference_quirks), bool(exact)

    def generate(self, mask: torch.Tensor, generator: torch.Generator | None,
                 training: bool) -> torch.Tensor:
        if self.reference_quirks:
            fn = flood_loop if self.exact else flood_suggestion
            out = fn(mask, self.threshold, self.grid, self.num_shifts, generator)
        else:
            radii = torch.randint(1, self.threshold, (2,), generator=generator,
                                  device=generator_device(generator)).tolist()
            out = box_dilate(mask, radii[0], radii[1])
        return out.float().unsqueeze(0)

    def __repr__(self) -> str:
        return (f"FloodSuggestion(threshold={self.threshold}, grid={self.grid}, "
                f"num_shifts={self.num_shifts}, reference_quirks={self.reference_quirks}, "
                f"exact={self.exact})")
