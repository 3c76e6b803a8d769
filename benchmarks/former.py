"""The implementations that issue 19's fast paths replaced, kept as references.

``tests/test_fast_paths.py`` checks the new code against them on hand-made and random inputs, and
the benchmarks time old against new in one process (``benchmarks/suggestions.py``,
``benchmarks/ssenet_stages.py``). Not part of the package: nothing in ``src/`` imports this.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from leseg.components.suggestions import FloodDraws
from leseg.components.suggestions.block import _grid_pair
from leseg.components.suggestions.flood import _clipped_bounds, _tile_geometry

__all__ = ["reference_disks", "reference_distance", "reference_farthest", "reference_flood",
           "reference_aggregate_cams", "reference_sparse_walk"]


def reference_distance(region: torch.Tensor) -> torch.Tensor:
    """The former distance_to_boundary(pad_border=True): one EDT over the whole region's box."""
    out = torch.zeros(region.shape, dtype=torch.float32)
    rows, cols = torch.nonzero(region.any(1)).view(-1), torch.nonzero(region.any(0)).view(-1)
    if len(rows) == 0:
        return out
    h, w = region.shape
    y0, y1 = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, h)
    x0, x1 = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, w)
    arr = np.pad(region[y0:y1, x0:x1].numpy(), 1)
    dist = ndimage.distance_transform_edt(arr)[1:-1, 1:-1]
    out[y0:y1, x0:x1] = torch.from_numpy(np.ascontiguousarray(dist, dtype=np.float32))
    return out


def reference_farthest(region: torch.Tensor, exclude: torch.Tensor | None = None
                       ) -> tuple[int, int, float] | None:
    """The former farthest_interior_point: argmax of the full distance map (None: no pixel)."""
    dist = reference_distance(region)
    if exclude is not None:
        dist = dist.masked_fill(exclude, 0.0)
    flat = int(torch.argmax(dist))
    best = float(dist.view(-1)[flat])
    if best <= 0.0:
        return None
    return flat // region.shape[1], flat % region.shape[1], best


def reference_disks(points, shape, radius) -> torch.Tensor:
    """The former disk encoding: the full (H, W) squared-distance map, then the radius test."""
    h, w = shape
    yy = torch.arange(h, dtype=torch.float32)[:, None]
    xx = torch.arange(w, dtype=torch.float32)[None, :]
    nearest = torch.full((h, w), float("inf"))
    for y, x in points:
        nearest = torch.minimum(nearest, (yy - y) ** 2 + (xx - x) ** 2)
    return (nearest <= radius ** 2).float()


def reference_flood(mask: torch.Tensor, threshold: int, grid, num_shifts: int,
                     draws: FloodDraws) -> torch.Tensor:
    """The former torch flood_suggestion: per tile its own shifts and integral image."""
    h, w = mask.shape
    gh, gw, ti, tj = _tile_geometry(h, w, _grid_pair(grid, "ref"), "ref")
    out = mask.clone()
    for i in range(gh):
        for j in range(gw):
            tile = i * gw + j
            x, y = _clipped_bounds(draws, tile, i, j, h, w, ti, tj)
            shifts = draws.shifts(tile, x, y)
            r0, r1, c0, c1 = i * ti, (i + 1) * ti - 1, j * tj, (j + 1) * tj - 1
            th, tw = r1 - r0, c1 - c0
            if th <= 0 or tw <= 0 or (x == 0 and y == 0):
                continue
            drawn = torch.zeros((2 * x + 1) * (2 * y + 1), dtype=torch.bool)
            drawn[(shifts[:, 0] + x) * (2 * y + 1) + shifts[:, 1] + y] = True
            drawn = drawn.view(2 * x + 1, 2 * y + 1)
            local = out[r0 - x:r1 + x, c0 - y:c1 + y].int()
            if x > 0 and y > 0:
                integral = F.pad(local.cumsum(0).cumsum(1), (1, 0, 1, 0))
                window = (integral[th:th + 2 * x + 1, tw:tw + 2 * y + 1]
                          - integral[:2 * x + 1, tw:tw + 2 * y + 1]
                          - integral[th:th + 2 * x + 1, :2 * y + 1]
                          + integral[:2 * x + 1, :2 * y + 1])
                out[r0:r1, c0:c1] |= ((window > 0) & drawn).any()
            elif x == 0:
                cum = F.pad(local.cumsum(1), (1, 0))
                window = cum[:, tw:tw + 2 * y + 1] - cum[:, :2 * y + 1]
                out[r0:r1, c0:c1] |= ((window > 0) & drawn[0]).any(1, keepdim=True)
            else:
                cum = F.pad(local.cumsum(0), (0, 0, 1, 0))
                window = cum[th:th + 2 * x + 1, :] - cum[:2 * x + 1, :]
                out[r0:r1, c0:c1] |= ((window > 0) & drawn[:, 0:1]).any(0, keepdim=True)
    return out


def reference_sparse_walk(scores: torch.Tensor, aff: torch.Tensor, h: int, w: int,
                          log_t: int = 8) -> torch.Tensor:
    """The former CPU sparse random walk: torch COO Tᵀ applied 2^log_t times (torch.sparse.mm)."""
    from leseg.components.random_walk import affinity_matrix, transition_matrix

    trans_t = transition_matrix(affinity_matrix(aff, h, w, dense=False)).t().coalesce()
    out = scores.reshape(scores.shape[0], h * w).t()
    for _ in range(2 ** log_t):
        out = torch.sparse.mm(trans_t, out)
    return out.t().reshape(scores.shape[0], h, w)


def reference_aggregate_cams(cam_fn, image: torch.Tensor, labels: torch.Tensor, scales,
                             flip: bool = True, eps: float = 1e-5) -> torch.Tensor:
    """The former aggregate_cams: one forward pass per scale and per flip."""
    height, width = image.shape[-2:]
    total = None
    for scale in scales:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        x = image if size == (height, width) else F.interpolate(
            image, size=size, mode="bicubic", align_corners=False)
        for flipped in ((False, True) if flip else (False,)):
            inp = x.flip(-1) if flipped else x
            cam = F.relu(cam_fn(inp))
            cam = F.interpolate(cam, size=(height, width), mode="bilinear", align_corners=False)
            if flipped:
                cam = cam.flip(-1)
            total = cam if total is None else total + cam
    total = total * labels.to(total.dtype)[..., None, None]
    peak = total.flatten(2).max(dim=2).values[..., None, None]
    return total / (peak + eps)
