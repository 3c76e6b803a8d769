"""The synthetic_voc object classes: one shape family and colour/texture distribution per class.

Each class is drawn in object coordinates (u right, v down, the object roughly fills
[−1, 1]²) as an ordered list of parts ``(sdf, rgb)``: ``sdf`` a signed distance (negative inside,
object units) and ``rgb`` an (…, 3) float32 albedo in [0, 1]. The object's mask is the union of its
parts; later parts are painted over earlier ones. Colour distributions deliberately overlap between
classes (grey cars and monitors, green bottles and plants, orange cats and terracotta pots, white
boats, planes and cars) so that shape, not colour alone, identifies the class.

=========  =====  =============================================================================
class      index  shape family
=========  =====  =============================================================================
aeroplane  1      cross: fuselage capsule + swept wings + tail (top view, any rotation)
boat       4      trapezoid hull + mast + one or two triangular sails
bottle     5      tall rounded body + shoulder + neck + cap (+ paper label)
car        7      rectangle with wheels: rounded body + cabin with windows + two wheels
cat        8      ellipse body + round head with triangular ears + four legs + tail
person     15     head + torso + arms + legs (front view)
pottedplant 16    star-shaped foliage (5–9 spikes) over a trapezoid pot
tvmonitor  20     rectangle frame with a screen + stand
=========  =====  =============================================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import sdf2d
from .textures import fbm, value_noise

__all__ = ["VOC_OBJECT_CLASSES", "draw_object", "sample_object_params"]

VOC_OBJECT_CLASSES: dict[int, str] = {1: "aeroplane", 4: "boat", 5: "bottle", 7: "car", 8: "cat",
                                      15: "person", 16: "pottedplant", 20: "tvmonitor"}
"""VOC class index → name of the classes that synthetic_voc draws (0 = background)."""

Parts = list[tuple[np.ndarray, np.ndarray]]

_GREYS = [(0.15, 0.15, 0.16), (0.45, 0.46, 0.48), (0.70, 0.71, 0.72), (0.90, 0.90, 0.88)]
_VIVID = [(0.75, 0.12, 0.10), (0.12, 0.25, 0.65), (0.90, 0.75, 0.15), (0.15, 0.45, 0.20),
          (0.85, 0.45, 0.12), (0.45, 0.20, 0.50), (0.20, 0.55, 0.65)]
_GREENS = [(0.15, 0.40, 0.12), (0.30, 0.55, 0.18), (0.22, 0.32, 0.14), (0.45, 0.60, 0.25)]
_BROWNS = [(0.45, 0.28, 0.15), (0.65, 0.40, 0.22), (0.30, 0.20, 0.12), (0.80, 0.62, 0.40)]
_SKIN = [(0.92, 0.75, 0.62), (0.78, 0.58, 0.44), (0.55, 0.38, 0.26), (0.36, 0.24, 0.16)]


def _colour(rng: np.random.Generator, *palettes: list, jitter: float = 0.06) -> np.ndarray:
    """A colour from the concatenated palettes with uniform per-channel jitter, in [0, 1]."""
    options = [c for palette in palettes for c in palette]
    base = np.array(options[int(rng.integers(len(options)))], np.float32)
    return np.clip(base + rng.uniform(-jitter, jitter, 3), 0.0, 1.0).astype(np.float32)


def _textured(colour: np.ndarray, u: np.ndarray, v: np.ndarray, seed: int, scale: float = 3.0,
              strength: float = 0.25) -> np.ndarray:
    """(…, 3) albedo: ``colour`` modulated by fractal noise of the object coordinates."""
    n = fbm(u * scale, v * scale, seed, 2)
    return colour * (1.0 - strength / 2 + strength * n)[..., None]


def _flat(colour: np.ndarray | tuple, u: np.ndarray) -> np.ndarray:
    return np.broadcast_to(np.asarray(colour, np.float32), np.shape(u) + (3,))


# ------------------------------------------------------------------------------------ classes

def _aeroplane(u: np.ndarray, v: np.ndarray, prm: dict[str, Any]) -> Parts:
    sweep = prm["sweep"]
    body = _textured(prm["body"], u, v, prm["seed"], 2.0, 0.15)
    wings = np.minimum(
        sdf2d.convex_polygon(u, v, [(0.3, 0.0), (-0.2 - sweep, -0.95), (-0.48 - sweep, -0.95),
                                    (-0.25, 0.0)]),
        sdf2d.convex_polygon(u, v, [(0.3, 0.0), (-0.2 - sweep, 0.95), (-0.48 - sweep, 0.95),
                                    (-0.25, 0.0)]))
    tail = np.minimum(
        sdf2d.convex_polygon(u, v, [(-0.7, 0.0), (-0.88, -0.38), (-1.0, -0.38), (-0.93, 0.0)]),
        sdf2d.convex_polygon(u, v, [(-0.7, 0.0), (-0.88, 0.38), (-1.0, 0.38), (-0.93, 0.0)]))
    fuselage = sdf2d.capsule(u, v, (-0.92, 0.0), (0.92, 0.0), 0.15)
    stripe = np.maximum(fuselage, np.abs(v) - 0.035)
    return [(wings, body * 0.85), (tail, body * 0.9), (fuselage, body),
            (stripe, _flat(prm["stripe"], u))]


def _boat(u: np.ndarray, v: np.ndarray, prm: dict[str, Any]) -> Parts:
    hull = sdf2d.convex_polygon(u, v, [(-1.0, 0.25), (1.0, 0.25), (0.75, 0.62), (-0.8, 0.62)])
    band = np.maximum(hull, 0.33 - v)
    mast = sdf2d.box(u, v, 0.0, -0.35, 0.025, 0.62)
    sail = sdf2d.convex_polygon(u, v, [(0.05, -0.95), (0.05, 0.18), (0.72, 0.18)])
    parts = [(mast, _flat((0.35, 0.25, 0.15), u)),
             (sail, _textured(prm["sail"], u, v, prm["seed"], 2.0, 0.12))]
    if prm["jib"]:
        jib = sdf2d.convex_polygon(u, v, [(-0.05, -0.8), (-0.05, 0.18), (-0.58, 0.18)])
        parts.append((jib, _textured(prm["sail"] * 0.95, u, v, prm["seed"] + 1, 2.0, 0.12)))
    hull_rgb = _textured(prm["hull"], u, v, prm["seed"] + 2, 4.0, 0.2)
    parts += [(hull, hull_rgb), (band, _flat(prm["band"], u))]
    return parts


def _bottle(u: np.ndarray, v: np.ndarray, prm: dict[str, Any]) -> Parts:
    glass = prm["glass"] * (0.75 + 0.5 * np.exp(-((u + 0.15) / 0.08) ** 2))[..., None]
    body = np.minimum(sdf2d.box(u, v, 0.0, 0.3, 0.32, 0.65, 0.12),
                      sdf2d.ellipse(u, v, 0.0, -0.33, 0.32, 0.2))
    neck = sdf2d.box(u, v, 0.0, -0.62, 0.11, 0.3, 0.03)
    cap = sdf2d.box(u, v, 0.0, -0.93, 0.13, 0.06, 0.02)
    label = sdf2d.box(u, v, 0.0, 0.3, 0.33, 0.22)
    return [(np.minimum(body, neck), glass), (cap, _flat(prm["cap"], u)),
            (np.maximum(label, body), _textured(prm["label"], u, v, prm["seed"], 6.0, 0.3))]


def _car(u: np.ndarray, v: np.ndarray, prm: dict[str, Any]) -> Parts:
    paint = _textured(prm["paint"], u, v, prm["seed"], 2.0, 0.12) * (
        1.1 - 0.25 * (v + 0.45))[..., None]
    body = sdf2d.box(u, v, 0.0, 0.15, 1.0, 0.22, 0.1)
    cabin = sdf2d.convex_polygon(u, v, [(-0.58, -0.05), (0.52, -0.05), (0.3, -0.45),
                                        (-0.38, -0.45)])
    window = sdf2d.convex_polygon(u, v, [(-0.5, -0.08), (0.44, -0.08), (0.26, -0.39),
                                         (-0.33, -0.39)])
    pillar = sdf2d.box(u, v, -0.02, -0.24, 0.03, 0.2)
    parts = [(cabin, paint), (body, paint),
             (window, _flat(prm["glass"], u)), (np.maximum(pillar, cabin), paint)]
    for cu in (-0.6, 0.6):
        parts.append((sdf2d.circle(u, v, cu, 0.38, 0.2), _flat((0.06, 0.06, 0.06), u)))
        parts.append((sdf2d.circle(u, v, cu, 0.38, 0.08), _flat((0.6, 0.6, 0.62), u)))
    parts.append((sdf2d.box(u, v, 0.95, 0.05, 0.05, 0.05), _flat((0.95, 0.9, 0.7), u)))
    parts.append((sdf2d.box(u, v, -0.96, 0.05, 0.04, 0.05), _flat((0.8, 0.1, 0.08), u)))
    return parts


def _cat(u: np.ndarray, v: np.ndarray, prm: dict[str, Any]) -> Parts:
    fur = _textured(prm["fur"], u, v, prm["seed"], 5.0, 0.3)
    if prm["striped"]:
        stripes = np.sin(u * 22.0 + 3.0 * value_noise(u * 3, v * 3, prm["seed"])) > 0.35
        fur = np.where(stripes[..., None], fur * 0.55, fur)
    body = sdf2d.ellipse(u, v, 0.0, 0.1, 0.62, 0.3)
    head = sdf2d.circle(u, v, 0.68, -0.25, 0.26)
    ears = np.minimum(
        sdf2d.convex_polygon(u, v, [(0.5, -0.38), (0.58, -0.7), (0.7, -0.44)]),
        sdf2d.convex_polygon(u, v, [(0.72, -0.46), (0.86, -0.68), (0.9, -0.36)]))
    legs = np.min([sdf2d.capsule(u, v, (lu, 0.25), (lu + 0.03, 0.72), 0.09)
                   for lu in (-0.42, -0.25, 0.25, 0.42)], axis=0)
    tail = np.minimum(sdf2d.capsule(u, v, (-0.58, 0.0), (-0.85, -0.25), 0.075),
                      sdf2d.capsule(u, v, (-0.85, -0.25), (-0.9, -0.6), 0.075))
    eyes = np.minimum(sdf2d.circle(u, v, 0.7, -0.3, 0.045), sdf2d.circle(u, v, 0.84, -0.3, 0.045))
    return [(np.min([body, head, ears, legs, tail], axis=0), fur),
            (eyes, _flat(prm["eyes"], u))]


def _person(u: np.ndarray, v: np.ndarray, prm: dict[str, Any]) -> Parts:
    stride, reach = prm["stride"], prm["reach"]
    head = sdf2d.circle(u, v, 0.0, -0.78, 0.17)
    hair = np.maximum(head, v + 0.82)
    torso = sdf2d.box(u, v, 0.0, -0.22, 0.26, 0.36, 0.08)
    arms = np.minimum(sdf2d.capsule(u, v, (-0.28, -0.5), (-0.36 - reach, 0.12), 0.085),
                      sdf2d.capsule(u, v, (0.28, -0.5), (0.36 + reach, 0.12), 0.085))
    hands = np.minimum(sdf2d.circle(u, v, -0.36 - reach, 0.14, 0.075),
                       sdf2d.circle(u, v, 0.36 + reach, 0.14, 0.075))
    legs = np.minimum(sdf2d.capsule(u, v, (-0.13, 0.1), (-0.16 - stride, 0.92), 0.11),
                      sdf2d.capsule(u, v, (0.13, 0.1), (0.16 + stride, 0.92), 0.11))
    return [(legs, _textured(prm["trousers"], u, v, prm["seed"], 4.0, 0.2)),
            (np.minimum(torso, arms), _textured(prm["shirt"], u, v, prm["seed"] + 1, 4.0, 0.2)),
            (np.minimum(head, hands), _flat(prm["skin"], u)), (hair, _flat(prm["hair"], u))]


def _pottedplant(u: np.ndarray, v: np.ndarray, prm: dict[str, Any]) -> Parts:
    foliage = sdf2d.star(u, v, 0.0, -0.28, 0.5, 0.35, prm["points"], prm["phase"])
    leaves = _textured(prm["leaves"], u, v, prm["seed"], 6.0, 0.5)
    pot = np.minimum(sdf2d.convex_polygon(u, v, [(-0.36, 0.35), (0.36, 0.35), (0.26, 0.95),
                                                 (-0.26, 0.95)]),
                     sdf2d.box(u, v, 0.0, 0.36, 0.42, 0.07, 0.02))
    parts = [(foliage, leaves), (pot, _textured(prm["pot"], u, v, prm["seed"] + 1, 3.0, 0.2))]
    if prm["flowers"]:
        flowers = np.min([sdf2d.circle(u, v, fu, fv, 0.07) for fu, fv in prm["flowers"]], axis=0)
        parts.append((np.maximum(flowers, foliage), _flat(prm["flower"], u)))
    return parts


def _tvmonitor(u: np.ndarray, v: np.ndarray, prm: dict[str, Any]) -> Parts:
    frame = sdf2d.box(u, v, 0.0, -0.1, 0.95, 0.62, 0.05)
    screen = sdf2d.box(u, v, 0.0, -0.1, 0.85, 0.52)
    if prm["content"] == 0:  # dark, switched off, with a reflection
        shown = _flat((0.06, 0.07, 0.08), u) + (0.15 * np.clip(1.0 - np.abs(u + v) * 2, 0, 1))[
            ..., None]
    elif prm["content"] == 1:  # desktop-like gradient
        shown = prm["screen"] * (0.6 + 0.4 * (v + 0.6))[..., None]
    else:  # a colourful "picture"
        shown = np.stack([fbm(u * 2, v * 2, prm["seed"] + k, 2) for k in range(3)], axis=-1)
    stand = np.minimum(sdf2d.convex_polygon(u, v, [(-0.08, 0.5), (0.08, 0.5), (0.12, 0.8),
                                                   (-0.12, 0.8)]),
                       sdf2d.box(u, v, 0.0, 0.83, 0.36, 0.05, 0.02))
    casing = _flat(prm["casing"], u)
    return [(stand, casing * 0.9), (frame, casing), (screen, shown.astype(np.float32))]


_DRAW: dict[int, Callable[[np.ndarray, np.ndarray, dict[str, Any]], Parts]] = {
    1: _aeroplane, 4: _boat, 5: _bottle, 7: _car, 8: _cat, 15: _person, 16: _pottedplant,
    20: _tvmonitor,
}

_ROTATION_DEG = {1: 180.0, 4: 12.0, 5: 20.0, 7: 10.0, 8: 15.0, 15: 10.0, 16: 10.0, 20: 10.0}
_ASPECT = {1: 1.0, 4: 1.0, 5: 0.6, 7: 1.0, 8: 1.0, 15: 0.65, 16: 0.8, 20: 1.0}  # width/height


def sample_object_params(cls: int, rng: np.random.Generator) -> dict[str, Any]:
    """Random appearance and pose parameters of one object of VOC class ``cls``.

    Returns a dict with ``rotation`` (radians), ``aspect`` (object-unit width/height ratio),
    ``flip`` (mirror u) and the class-specific colours/shape parameters.

    Raises:
        KeyError: ``cls`` is not one of :data:`VOC_OBJECT_CLASSES`.
    """
    if cls not in _DRAW:
        raise KeyError(f"VOC class {cls} is not drawn by synthetic_voc; expected one of "
                       f"{sorted(_DRAW)}")
    prm: dict[str, Any] = {
        "rotation": float(np.deg2rad(rng.uniform(-1, 1) * _ROTATION_DEG[cls])),
        "aspect": float(_ASPECT[cls] * np.exp(rng.uniform(-0.2, 0.2))),
        "flip": bool(rng.random() < 0.5), "seed": int(rng.integers(1 << 30)),
    }
    if cls == 1:
        prm |= {"body": _colour(rng, _GREYS[1:], _GREYS[2:], _VIVID[:2]),
                "stripe": _colour(rng, _VIVID), "sweep": float(rng.uniform(0.0, 0.25))}
    elif cls == 4:
        prm |= {"hull": _colour(rng, _VIVID[:2], _GREYS[::3], _BROWNS[:1], _GREENS[:1]),
                "band": _colour(rng, _GREYS[3:], _VIVID), "sail": _colour(rng, _GREYS[3:],
                                                                        [(0.95, 0.9, 0.8)]),
                "jib": bool(rng.random() < 0.5)}
    elif cls == 5:
        prm |= {"glass": _colour(rng, _GREENS[:2], _BROWNS[:1], [(0.6, 0.75, 0.8)]),
                "cap": _colour(rng, _VIVID[:3], _GREYS[2:]), "label": _colour(rng, _VIVID, _GREYS)}
    elif cls == 7:
        prm |= {"paint": _colour(rng, _VIVID[:4], _GREYS), "glass": _colour(rng, [(0.2, 0.25,
                                                                                 0.3)])}
    elif cls == 8:
        prm |= {"fur": _colour(rng, _BROWNS, _GREYS, [(0.9, 0.55, 0.2)]),
                "eyes": _colour(rng, [(0.6, 0.75, 0.2), (0.85, 0.7, 0.1)]),
                "striped": bool(rng.random() < 0.5)}
    elif cls == 15:
        prm |= {"shirt": _colour(rng, _VIVID, _GREYS), "trousers": _colour(rng, _GREYS[:2],
                                                                         _VIVID[1:2], _BROWNS),
                "skin": _colour(rng, _SKIN, jitter=0.03), "hair": _colour(rng, _BROWNS[2:3],
                                                                         _GREYS[:1]),
                "stride": float(rng.uniform(-0.05, 0.15)), "reach": float(rng.uniform(-0.05, 0.2))}
    elif cls == 16:
        n = int(rng.integers(0, 5))
        prm |= {"leaves": _colour(rng, _GREENS), "pot": _colour(rng, _BROWNS, _GREYS[2:],
                                                                 [(0.8, 0.45, 0.25)]),
                "points": int(rng.integers(5, 10)), "phase": float(rng.uniform(0, 2 * np.pi)),
                "flowers": [tuple(rng.uniform(-0.35, 0.35, 2) + (0.0, -0.28)) for _ in range(n)],
                "flower": _colour(rng, _VIVID, _GREYS[3:])}
    else:
        prm |= {"casing": _colour(rng, _GREYS), "content": int(rng.integers(3)),
                "screen": _colour(rng, _VIVID[1:2], [(0.3, 0.6, 0.9)], _GREENS[:1])}
    return prm


def draw_object(cls: int, u: np.ndarray, v: np.ndarray, prm: dict[str, Any]) -> Parts:
    """Parts ``[(sdf, rgb), …]`` of an object of class ``cls`` at object coordinates (u, v).

    Args:
        cls: VOC class index (a key of :data:`VOC_OBJECT_CLASSES`).
        u, v: float arrays of one shape, object coordinates (unit ≈ half the object size).
        prm: from :func:`sample_object_params`.

    Returns:
        Parts in painting order; each sdf has the shape of u (object units, < 0 inside), each rgb
        that shape + (3,), float32 in [0, 1] (before scene lighting).
    """
    return _DRAW[cls](u, v, prm)
