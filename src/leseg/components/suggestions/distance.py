"""Euclidean distance transform and the "farthest interior point" used by click placement.

RITM's click simulator (arXiv 2102.06583; ``isegm/inference/clicker.py``) pads
the region by 1 px so the image border counts as boundary, takes the exact L2 distance transform,
and clicks at the first (raster order) pixel of maximal distance. The transform runs on CPU with
``scipy.ndimage.distance_transform_edt`` (exact); inputs on another device are copied to CPU and
the result is moved back.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

__all__ = ["distance_to_boundary", "farthest_interior_point"]


def distance_to_boundary(region: torch.Tensor, pad_border: bool = True) -> torch.Tensor:
    """Distance of every pixel of ``region`` to the nearest pixel outside it (0 outside).

    Args:
        region: (H, W) bool.
        pad_border: treat the image border as boundary (RITM pads by 1 px): a pixel in the first
            row then has distance 1. Without padding, distances only count pixels of the array.

    Returns:
        (H, W) float32 Euclidean distances in pixels on ``region.device``; 0 where ``region`` is
        False. Without padding, an all-True region has no outside pixel and the values are
        meaningless (scipy measures them to a virtual corner) — keep the padding for that case.

    Raises:
        TypeError / ValueError: not a 2-D bool tensor.
    """
    if not isinstance(region, torch.Tensor) or region.dtype != torch.bool or region.ndim != 2:
        got = (f"{region.dtype} {tuple(region.shape)}" if isinstance(region, torch.Tensor)
               else type(region).__name__)
        raise TypeError(f"distance_to_boundary: region must be a 2-D bool tensor, got {got}")
    out = torch.zeros(region.shape, dtype=torch.float32)
    rows, cols = torch.nonzero(region.any(1)).view(-1), torch.nonzero(region.any(0)).view(-1)
    if len(rows) == 0:
        return out.to(region.device)
    # Only the bounding box (+1 px of outside pixels) matters: the outside pixel nearest to an
    # interior point is never farther than its projection onto that ring, which is outside too.
    h, w = region.shape
    y0, y1 = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, h)
    x0, x1 = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, w)
    arr = region[y0:y1, x0:x1].detach().cpu().numpy()
    if pad_border:
        arr = np.pad(arr, 1, mode="constant", constant_values=False)
    dist = ndimage.distance_transform_edt(arr)
    if pad_border:
        dist = dist[1:-1, 1:-1]
    out[y0:y1, x0:x1] = torch.from_numpy(np.ascontiguousarray(dist, dtype=np.float32))
    return out.to(region.device)


def farthest_interior_point(region: torch.Tensor, exclude: torch.Tensor | None = None
                            ) -> tuple[int, int, float]:
    """The pixel of ``region`` farthest from its boundary (image border included), RITM style.

    Args:
        region: (H, W) bool, at least one True pixel.
        exclude: optional (H, W) bool of pixels that may not be chosen (already clicked); their
            distance is zeroed after the transform, as RITM's ``not_clicked_map`` does.

    Returns:
        (y, x, distance): row and column of the first pixel in raster order with the maximal
        distance, and that distance in pixels (float).

    Raises:
        ValueError: ``region`` has no True pixel (outside ``exclude``).
    """
    dist = distance_to_boundary(region)
    if exclude is not None:
        dist = dist.masked_fill(exclude.to(dist.device), 0.0)
    flat = int(torch.argmax(dist))
    best = float(dist.view(-1)[flat])
    if best <= 0.0:
        raise ValueError("farthest_interior_point: the region has no selectable pixel")
    return flat // region.shape[1], flat % region.shape[1], best
