"""Deterministic procedural textures evaluated at arbitrary (world or object) coordinates.

Everything here is a pure function of its coordinates and an integer seed: the same point gets
the same value whichever image, frame or pixel grid it is evaluated on. That is what makes the
synthetic street textures fixed in world coordinates (no view-dependent effects), so that frames of
one sequence can be warped onto each other exactly (see :mod:`leseg.data.synthetic.city`).

Value noise: pseudo-random values on the integer lattice (an integer hash of the lattice point and
the seed), interpolated with a smoothstep; fractal noise (fBm) sums octaves of it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fbm", "hash_uniform", "interval_coverage", "smoothstep", "stripe_coverage",
           "value_noise"]

_M1 = np.uint32(0x27D4EB2D)
_M2 = np.uint32(0x165667B1)
_M3 = np.uint32(0x85EBCA6B)
_M4 = np.uint32(0xC2B2AE35)


def _finalise(h: np.ndarray) -> np.ndarray:
    """murmur3-style avalanche of uint32 values, mapped to float32 in [0, 1)."""
    h ^= h >> np.uint32(15)
    h *= _M3
    h ^= h >> np.uint32(13)
    h *= _M4
    h ^= h >> np.uint32(16)
    return (h >> np.uint32(8)).astype(np.float32) * np.float32(1.0 / (1 << 24))


def _seed_word(seed: int) -> np.uint32:
    return np.uint32((int(seed) * 0x9E3779B1) & 0xFFFFFFFF)


def hash_uniform(ix: np.ndarray, iy: np.ndarray, seed: int) -> np.ndarray:
    """Hash integer lattice points to uniform pseudo-random numbers.

    Args:
        ix, iy: integer-valued arrays (int or float dtype) of broadcastable shapes; values wrap
            mod 2**32.
        seed: integer seed (any Python int; reduced mod 2**32).

    Returns:
        float32 array of the broadcast shape with values in [0, 1).
    """
    hx = np.asarray(ix).astype(np.int64).astype(np.uint32) * _M1
    hy = np.asarray(iy).astype(np.int64).astype(np.uint32) * _M2
    return _finalise(hx ^ hy ^ _seed_word(seed))


def smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """Hermite step: 0 for x <= edge0, 1 for x >= edge1, 3t² − 2t³ in between (same shape as x)."""
    t = np.clip((np.asarray(x, dtype=np.float32) - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


_LATTICE_BITS = 8
_LATTICE_MASK = (1 << _LATTICE_BITS) - 1
_LATTICE = _finalise(np.arange(1 << (2 * _LATTICE_BITS), dtype=np.uint32) * _M1 ^ np.uint32(0x5BD1E995))
"""Random values of a 256 x 256 lattice (value noise repeats every 256 units), from the hash."""


def value_noise(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Smooth 2-D value noise with one lattice cell per coordinate unit.

    The lattice values come from a fixed 256 x 256 table (so the pattern repeats every 256 units);
    the seed selects an offset into it.

    Args:
        x, y: float arrays of broadcastable shapes (coordinates in lattice units, e.g. metres /
            scale); |x|, |y| < 2**30.
        seed: integer seed selecting the lattice offset.

    Returns:
        float32 array of the broadcast shape, values in [0, 1), continuous in (x, y).
    """
    s = int(_finalise(np.array([_seed_word(seed)], np.uint32))[0] * (1 << 24))
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    fx = np.floor(x)
    fy = np.floor(y)
    tx = x - fx
    ty = y - fy
    tx = tx * tx * (3.0 - 2.0 * tx)
    ty = ty * ty * (3.0 - 2.0 * ty)
    ix = fx.astype(np.int32) + np.int32(s & _LATTICE_MASK)
    iy = fy.astype(np.int32) + np.int32((s >> _LATTICE_BITS) & _LATTICE_MASK)
    i0 = ix & _LATTICE_MASK
    i1 = (ix + 1) & _LATTICE_MASK
    j0 = (iy & _LATTICE_MASK) << _LATTICE_BITS
    j1 = ((iy + 1) & _LATTICE_MASK) << _LATTICE_BITS
    v00 = _LATTICE[i0 | j0]
    v10 = _LATTICE[i1 | j0]
    v01 = _LATTICE[i0 | j1]
    v11 = _LATTICE[i1 | j1]
    top = v00 + (v10 - v00) * tx
    bottom = v01 + (v11 - v01) * tx
    return top + (bottom - top) * ty


def fbm(x: np.ndarray, y: np.ndarray, seed: int, octaves: int = 3,
        footprint: np.ndarray | float | None = None) -> np.ndarray:
    """Fractal Brownian motion: ``octaves`` octaves of :func:`value_noise` (lacunarity 2, gain 1/2).

    With ``footprint`` (the size of a pixel in the same units as x and y), octaves whose cells are
    smaller than a pixel fade to their mean 0.5 (fully at one cell per pixel, starting at two
    pixels per cell), which pre-filters the texture instead of letting it alias.

    Args:
        x, y: float arrays of broadcastable shapes; the coarsest octave has one cell per unit.
        seed: integer seed; each octave uses a different derived seed.
        octaves: number of octaves (>= 1).
        footprint: None, or the pixel footprint (scalar or array broadcastable to x, y), > 0.

    Returns:
        float32 array of the broadcast shape, values in [0, 1) (normalised by the total amplitude).
    """
    shape = np.broadcast_shapes(np.shape(x), np.shape(y))
    x, y = np.broadcast_to(x, shape), np.broadcast_to(y, shape)
    fp = None if footprint is None else np.broadcast_to(np.asarray(footprint, np.float32), shape)
    total = np.zeros(shape, dtype=np.float32)
    amplitude, frequency, norm = 1.0, 1.0, 0.0
    for octave in range(octaves):
        octave_seed = seed * 7919 + octave * 104729
        norm += amplitude
        if fp is None:
            total += amplitude * value_noise(x * frequency, y * frequency, octave_seed)
        else:  # fade octaves finer than the pixel; skip the work where they are fully faded
            weight = np.clip(2.0 - 2.0 * fp * np.float32(frequency), 0.0, 1.0)
            total += amplitude * 0.5
            sel = weight > 0
            if sel.all():
                total += amplitude * weight * (value_noise(x * frequency, y * frequency,
                                                           octave_seed) - 0.5)
            elif sel.any():
                layer = value_noise(x[sel] * frequency, y[sel] * frequency, octave_seed)
                total[sel] += amplitude * weight[sel] * (layer - 0.5)
        amplitude *= 0.5
        frequency *= 2.0
    return total / np.float32(norm)


def interval_coverage(pos: np.ndarray, lo: float | np.ndarray, hi: float | np.ndarray,
                      footprint: np.ndarray | float) -> np.ndarray:
    """Fraction of the box [pos − footprint/2, pos + footprint/2] inside [lo, hi] (box-filtered step).

    Args:
        pos: positions (any units); lo, hi: interval bounds (broadcastable); footprint: box width
            (> 0, broadcastable), e.g. the size of a pixel on the textured surface.

    Returns:
        float32 array in [0, 1]: 1 deep inside, 0 far outside, linear ramps over one footprint.
    """
    half = 0.5 * np.asarray(footprint)
    overlap = np.minimum(pos + half, hi) - np.maximum(pos - half, lo)
    return np.clip(overlap / (2.0 * half), 0.0, 1.0).astype(np.float32)


def stripe_coverage(pos: np.ndarray, period: float | np.ndarray, width: float | np.ndarray,
                    footprint: np.ndarray | float, phase: float | np.ndarray = 0.0) -> np.ndarray:
    """Box-filtered coverage of periodic stripes of ``width`` centred at ``phase + k·period``.

    Uses the nearest stripe (exact while the footprint is below the gap between stripes), blended
    to the mean coverage ``width / period`` as the footprint grows from half a period to a period.

    Returns:
        float32 array in [0, 1] of the broadcast shape.
    """
    centre = np.round((pos - phase) / period) * period + phase
    nearest = interval_coverage(pos, centre - width / 2, centre + width / 2, footprint)
    mean = np.asarray(width / np.asarray(period), np.float32)
    blend = smoothstep(0.5, 1.0, np.asarray(footprint) / period)
    return (nearest + (mean - nearest) * blend).astype(np.float32)
