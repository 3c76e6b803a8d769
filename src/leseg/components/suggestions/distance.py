"""Euclidean distance transform and the "farthest interior point" used by click placement.

RITM's click simulator (arXiv 2102.06583; ``isegm/inference/clicker.py``) pads
the region by 1 px so the image border counts as boundary, takes the exact L2 distance transform,
and clicks at the first (raster order) pixel of maximal distance. The transform runs on CPU with
``scipy.ndimage.distance_transform_edt`` (exact); inputs on another device are copied to CPU and
the result is moved back.

Speed: with the border padding, the transform runs once per *group* of connected components, on
the group's bounding box + 1 px only (:func:`_component_crops`), instead of on the bounding box of
the whole region. The values are identical to one transform of the whole padded image:

- for a pixel p of a 4-connected component C at distance d, every pixel closer than d to p is in
  the region (else d would be smaller), and the pixels of an open Euclidean disc around a pixel
  centre form a 4-connected set (each row of it contains p's column), so they all lie in C;
- hence the nearest outside pixel o of p is within 1 px of C's bounding box (the neighbour of o
  one step towards p along o − p's larger axis is closer than d, so in C), and any pixel the crop's
  padding turns into a virtual outside pixel lies outside that box + 1 px, so not in C, so at
  distance >= d. The crop's transform therefore gives exactly d at every pixel of C.

Groups come from connected components of the region's 8×8-block occupancy (8-connected), which
are unions of whole 4-connected components, so the argument holds group-wise; a group's values are
kept only at its own pixels. On a 1024×2048 frame with a few objects this transforms a few % of
the frame instead of nearly all of it (``benchmarks/suggestions.py``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from scipy import ndimage

__all__ = ["distance_to_boundary", "farthest_interior_point"]

_BLOCK = 8
"""Side in pixels of the occupancy blocks that group connected components (8: one block row of
bools is read as one uint64 word)."""


def _check_region(region: object, who: str) -> None:
    if not isinstance(region, torch.Tensor) or region.dtype != torch.bool or region.ndim != 2:
        got = (f"{region.dtype} {tuple(region.shape)}" if isinstance(region, torch.Tensor)
               else type(region).__name__)
        raise TypeError(f"{who}: region must be a 2-D bool tensor, got {got}")


def _component_crops(arr: np.ndarray) -> Iterator[tuple[slice, slice, np.ndarray, np.ndarray]]:
    """Per group of connected components of ``arr`` (H, W) bool: its crop and exact distances.

    Yields:
        (rows, cols, member, dist): the crop (the group's bounding box + 1 px, clipped to the
        image), the (h, w) bool pixels of the group inside it, and the (h, w) float64 distance
        transform of ``arr[rows, cols]`` padded by 1 px of outside pixels (exact at ``member``,
        see the module docstring; other values are not meaningful).
    """
    h, w = arr.shape
    bh, bw = -(-h // _BLOCK), -(-w // _BLOCK)
    if (h, w) == (bh * _BLOCK, bw * _BLOCK) and arr.flags.c_contiguous:
        padded = arr
    else:
        padded = np.zeros((bh * _BLOCK, bw * _BLOCK), dtype=bool)
        padded[:h, :w] = arr
    # 8 bools of a row = the 8 bytes of one uint64: a nonzero word is an occupied row segment
    rows = padded.view(np.uint64) != 0  # (bh·8, bw)
    blocks = rows.reshape(bh, _BLOCK, bw).any(axis=1)
    labels, _ = ndimage.label(blocks, structure=np.ones((3, 3), dtype=bool))
    for index, found in enumerate(ndimage.find_objects(labels), start=1):
        if found is None:
            continue
        by, bx = found
        y0, y1 = max(by.start * _BLOCK - 1, 0), min(by.stop * _BLOCK + 1, h)
        x0, x1 = max(bx.start * _BLOCK - 1, 0), min(bx.stop * _BLOCK + 1, w)
        # the block labels covering the crop (it reaches 1 px into neighbouring blocks)
        cy0, cy1 = y0 // _BLOCK, -(-y1 // _BLOCK)
        cx0, cx1 = x0 // _BLOCK, -(-x1 // _BLOCK)
        own = np.repeat(np.repeat(labels[cy0:cy1, cx0:cx1] == index, _BLOCK, 0), _BLOCK, 1)
        own = own[y0 - cy0 * _BLOCK:y1 - cy0 * _BLOCK, x0 - cx0 * _BLOCK:x1 - cx0 * _BLOCK]
        crop = arr[y0:y1, x0:x1]
        dist = ndimage.distance_transform_edt(np.pad(crop, 1))[1:-1, 1:-1]
        yield slice(y0, y1), slice(x0, x1), crop & own, dist


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
    _check_region(region, "distance_to_boundary")
    arr = region.detach().cpu().numpy()
    out = np.zeros(arr.shape, dtype=np.float32)
    if pad_border:
        for rows, cols, member, dist in _component_crops(arr):
            out[rows, cols][member] = dist[member]
        return torch.from_numpy(out).to(region.device)
    rows, cols = np.nonzero(arr.any(1))[0], np.nonzero(arr.any(0))[0]
    if len(rows) == 0:
        return torch.from_numpy(out).to(region.device)
    # Only the bounding box (+1 px of outside pixels) matters: the outside pixel nearest to an
    # interior point is never farther than its projection onto that ring, which is outside too.
    h, w = arr.shape
    y0, y1 = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, h)
    x0, x1 = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, w)
    out[y0:y1, x0:x1] = ndimage.distance_transform_edt(arr[y0:y1, x0:x1])
    return torch.from_numpy(out).to(region.device)


def farthest_interior_point(region: torch.Tensor, exclude: torch.Tensor | None = None
                            ) -> tuple[int, int, float]:
    """The pixel of ``region`` farthest from its boundary (image border included), RITM style.

    Equal to the first-in-raster-order argmax of :func:`distance_to_boundary` (float32) with
    ``exclude`` zeroed, computed group by group (:func:`_component_crops`) without the full map.

    Args:
        region: (H, W) bool, at least one True pixel.
        exclude: optional (H, W) bool of pixels that may not be chosen (already clicked); their
            distance is zeroed after the transform, as RITM's ``not_clicked_map`` does.

    Returns:
        (y, x, distance): row and column of the first pixel in raster order with the maximal
        distance, and that distance in pixels (float).

    Raises:
        TypeError: ``region`` is not a 2-D bool tensor.
        ValueError: ``region`` has no True pixel (outside ``exclude``).
    """
    _check_region(region, "farthest_interior_point")
    arr = region.detach().cpu().numpy()
    skip = None if exclude is None else exclude.detach().cpu().numpy().astype(bool)
    best, best_yx = 0.0, (0, 0)
    for rows, cols, member, dist in _component_crops(arr):
        keep = member if skip is None else member & ~skip[rows, cols]
        values = np.where(keep, dist, 0.0).astype(np.float32)
        flat = int(np.argmax(values))
        y, x = divmod(flat, values.shape[1])
        value, yx = float(values.flat[flat]), (rows.start + y, cols.start + x)
        if value > best or (value == best and value > 0.0 and yx < best_yx):
            best, best_yx = value, yx
    if best <= 0.0:
        raise ValueError("farthest_interior_point: the region has no selectable pixel")
    return best_yx[0], best_yx[1], best
