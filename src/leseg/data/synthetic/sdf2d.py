"""2-D signed distance functions (negative inside) used to draw the synthetic_voc shapes.

All functions take coordinate arrays ``u, v`` of one shape (any units; v points down as in images)
and return float arrays of that shape: exact Euclidean distances for circles, boxes and segments,
and a lower-bound-like approximation (exact sign) for ellipses, convex polygons and stars, which is
all anti-aliasing and inside tests need.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["box", "capsule", "circle", "convex_polygon", "ellipse", "star"]


def circle(u: np.ndarray, v: np.ndarray, cu: float, cv: float, r: float) -> np.ndarray:
    """Distance to a disc of centre (cu, cv) and radius r."""
    return np.hypot(u - cu, v - cv) - r


def ellipse(u: np.ndarray, v: np.ndarray, cu: float, cv: float, ru: float,
            rv: float) -> np.ndarray:
    """Approximate distance to an axis-aligned ellipse with radii (ru, rv) (exact sign)."""
    return (np.hypot((u - cu) / ru, (v - cv) / rv) - 1.0) * min(ru, rv)


def box(u: np.ndarray, v: np.ndarray, cu: float, cv: float, hu: float, hv: float,
        radius: float = 0.0) -> np.ndarray:
    """Distance to an axis-aligned box of half sizes (hu, hv), corners rounded by ``radius``."""
    du = np.abs(u - cu) - (hu - radius)
    dv = np.abs(v - cv) - (hv - radius)
    outside = np.hypot(np.maximum(du, 0.0), np.maximum(dv, 0.0))
    inside = np.minimum(np.maximum(du, dv), 0.0)
    return outside + inside - radius


def capsule(u: np.ndarray, v: np.ndarray, a: tuple[float, float], b: tuple[float, float],
            r: float) -> np.ndarray:
    """Distance to the segment a–b thickened by radius r."""
    pu, pv = u - a[0], v - a[1]
    bu, bv = b[0] - a[0], b[1] - a[1]
    t = np.clip((pu * bu + pv * bv) / max(bu * bu + bv * bv, 1e-12), 0.0, 1.0)
    return np.hypot(pu - t * bu, pv - t * bv) - r


def convex_polygon(u: np.ndarray, v: np.ndarray,
                   vertices: Sequence[tuple[float, float]]) -> np.ndarray:
    """Approximate distance to a convex polygon (max of the edge half-plane distances).

    Args:
        vertices: (N >= 3) corners in either winding order.

    Raises:
        ValueError: fewer than 3 vertices or a degenerate (zero-area) polygon.
    """
    pts = np.asarray(vertices, dtype=np.float64)
    if pts.shape[0] < 3:
        raise ValueError(f"a polygon needs >= 3 vertices, got {pts.shape[0]}")
    area = 0.5 * np.sum(pts[:, 0] * np.roll(pts[:, 1], -1) - np.roll(pts[:, 0], -1) * pts[:, 1])
    if abs(area) < 1e-12:
        raise ValueError("degenerate polygon (zero area)")
    sign = 1.0 if area > 0 else -1.0
    d = np.full(np.shape(u), -np.inf)
    for i in range(len(pts)):
        (u0, v0), (u1, v1) = pts[i], pts[(i + 1) % len(pts)]
        eu, ev = u1 - u0, v1 - v0
        length = np.hypot(eu, ev)
        # outward normal for counter-clockwise (area > 0) order is (ev, -eu)
        d = np.maximum(d, sign * ((u - u0) * ev - (v - v0) * eu) / length)
    return d


def star(u: np.ndarray, v: np.ndarray, cu: float, cv: float, r: float, amplitude: float,
         points: int, phase: float = 0.0) -> np.ndarray:
    """Approximate distance to a star with radius r·(1 + amplitude·cos(points·θ + phase))."""
    du, dv = u - cu, v - cv
    rho = np.hypot(du, dv)
    theta = np.arctan2(dv, du)
    radius = r * (1.0 + amplitude * np.cos(points * theta + phase))
    slope = r * amplitude * points * np.sin(points * theta + phase) / np.maximum(rho, 1e-6)
    return (rho - radius) / np.sqrt(1.0 + slope * slope)  # first-order distance estimate
