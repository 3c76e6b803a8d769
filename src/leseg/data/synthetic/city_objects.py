"""Camera-facing object cut-outs of synthetic_city: persons, poles, traffic signs, trees, cars.

Each shader gets an object's :class:`~leseg.data.synthetic.city_scene.Sprite` and the object
coordinates of a pixel region — p lateral offset from the object's centre line and q height above
the ground, both in metres — plus the pixel footprint w (metres per output pixel at the object's
depth, used to pre-filter fine textures), and returns a :data:`Shaded` triple. All textures are
functions of (p, q) only, i.e. fixed on the object.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .city_scene import Sprite
from .textures import fbm, smoothstep, value_noise

__all__ = ["OBJECT_SHADERS", "Shaded", "car_side"]

_POLE, _SIGN, _VEG, _PERSON, _CAR = 17, 20, 21, 24, 26

Shaded = tuple[np.ndarray, "int | np.ndarray", Callable[[np.ndarray], np.ndarray]]
"""What a shader returns for its region: (mask (bool, region shape), labelId or per-pixel labelIds,
albedo(m) → (N, 3) float32 albedo of the N region pixels selected by the boolean mask m). The albedo
is only computed for the pixels that end up visible."""


def _person(sp: Sprite, p: np.ndarray, q: np.ndarray, w: float) -> Shaded:
    """A pedestrian (front or side view): head, hair, torso, arms, legs, shoes, optional bag."""
    prm = sp.params
    hgt = prm["height"]
    sc = hgt / 1.75
    head_c = hgt - 0.115 * sc
    head = (p / (0.095 * sc)) ** 2 + ((q - head_c) / (0.115 * sc)) ** 2 <= 1.0
    neck = (np.abs(p) < 0.05 * sc) & (q > hgt - 0.27 * sc) & (q <= head_c)
    hip, shoulder = 0.48 * hgt, hgt - 0.24 * sc
    t = np.clip((q - hip) / (shoulder - hip), 0.0, 1.0)
    side = prm["side_view"]
    half = (0.12 + 0.02 * t) * sc if side else (0.16 + 0.06 * t) * sc
    torso = (np.abs(p) <= half) & (q >= hip - 0.03 * sc) & (q <= shoulder + 0.02 * sc)
    arm_q = (q >= 0.46 * hgt) & (q <= shoulder)
    swing = prm["stride"] * 0.16 * sc * (shoulder - q) / (shoulder - 0.46 * hgt)
    if side:
        arms = arm_q & (np.abs(p - swing) < 0.045 * sc)
        leg_c = prm["stride"] * 0.24 * sc * np.clip((hip - q) / hip, 0, 1)
        legs = (q <= hip) & ((np.abs(p - leg_c) < 0.07 * sc) | (np.abs(p + leg_c) < 0.07 * sc))
    else:
        arms = arm_q & (np.abs(np.abs(p) - (0.22 * sc + 0.02 * sc * (shoulder - q))) < 0.04 * sc)
        leg_c = 0.085 * sc + prm["stride"] * 0.06 * sc * np.clip((hip - q) / hip, 0, 1)
        legs = (q <= hip) & (np.abs(np.abs(p) - leg_c) < 0.065 * sc)
    bag = np.zeros_like(torso)
    if prm["bag"]:
        bag = (np.abs(p - 0.24 * sc) < 0.09 * sc) & (q > 0.42 * hgt) & (q < 0.6 * hgt)
    mask = head | neck | torso | arms | legs | bag

    def albedo(m: np.ndarray) -> np.ndarray:
        rgb = np.broadcast_to(prm["bottom"], mask.shape + (3,)).copy()
        rgb[torso | arms] = prm["top"]
        rgb[bag] = prm["bottom"] * 0.6
        rgb[(q < 0.05 * hgt) & legs] = 0.08
        rgb[head | neck | (arms & (q < 0.5 * hgt))] = prm["skin"]
        rgb[head & ((q > head_c + 0.02 * sc) | (side & (p < -0.03 * sc)))] = prm["hair"]
        cloth = fbm(p[m] * 8.0, q[m] * 8.0, prm["seed"], 2, footprint=8.0 * w)
        return rgb[m] * (0.85 + 0.3 * cloth)[:, None]

    return mask, _PERSON, albedo


def _pole(sp: Sprite, p: np.ndarray, q: np.ndarray, w: float) -> Shaded:
    """A street lamp (tapered shaft, arm, lamp head) or a short post; all labelled pole."""
    prm = sp.params
    hgt, width, arm = prm["height"], prm["width"], prm["arm"]
    shaft = (np.abs(p) <= width / 2 * (1.2 - 0.3 * q / hgt)) & (q <= hgt)
    lo, hi = min(0.0, arm), max(0.0, arm)
    arm_m = (q >= hgt - 0.12) & (q <= hgt) & (p >= lo) & (p <= hi) if arm != 0 else np.zeros_like(
        shaft)
    lamp = (np.abs(p - arm) < 0.28) & (q >= hgt - 0.3) & (q <= hgt - 0.05) if arm != 0 else (
        np.zeros_like(shaft))
    mask = shaft | arm_m | lamp

    def albedo(m: np.ndarray) -> np.ndarray:
        cyl = 0.7 + 0.4 * np.sqrt(np.clip(1.0 - (2.0 * p[m] / width) ** 2, 0.0, 1.0))
        rgb = prm["colour"] * np.where(shaft[m], cyl, 0.9)[:, None]
        return np.where(lamp[m][:, None], np.float32(0.75), rgb)

    return mask, _POLE, albedo


def _sign_shape(shape: str, pn: np.ndarray, qn: np.ndarray) -> np.ndarray:
    """Inside test of a sign plate in normalised plate coordinates (unit half-size, q up)."""
    if shape == "circle":
        return pn ** 2 + qn ** 2 <= 1.0
    if shape in ("triangle", "triangle_down"):
        qq = qn if shape == "triangle" else -qn
        return (qq >= -0.8) & (qq <= 1.0 - 1.8 * np.abs(pn))
    if shape == "square":
        return (np.abs(pn) <= 0.85) & (np.abs(qn) <= 0.85)
    if shape == "diamond":
        return np.abs(pn) + np.abs(qn) <= 1.0
    if shape == "octagon":
        return (np.abs(pn) <= 0.92) & (np.abs(qn) <= 0.92) & (np.abs(pn) + np.abs(qn) <= 1.3)
    return (np.abs(pn) <= 1.0) & (np.abs(qn) <= 0.55)  # rectangle


_SIGN_COLOURS = {  # shape -> list of (outer, inner) colour schemes
    "circle": [((0.75, 0.08, 0.08), (0.92, 0.92, 0.92)), ((0.10, 0.25, 0.65), (0.92, 0.92, 0.92)),
               ((0.78, 0.10, 0.10), (0.78, 0.10, 0.10)), ((0.92, 0.92, 0.92), (0.10, 0.10, 0.10))],
    "triangle": [((0.78, 0.08, 0.08), (0.93, 0.93, 0.90))],
    "triangle_down": [((0.78, 0.08, 0.08), (0.93, 0.93, 0.90))],
    "square": [((0.10, 0.30, 0.70), (0.92, 0.92, 0.92)), ((0.92, 0.92, 0.92), (0.10, 0.30, 0.70))],
    "diamond": [((0.92, 0.92, 0.92), (0.95, 0.78, 0.10))],
    "octagon": [((0.80, 0.08, 0.08), (0.92, 0.92, 0.92))],
    "rectangle": [((0.10, 0.30, 0.70), (0.92, 0.92, 0.92)), ((0.10, 0.45, 0.25), (0.9, 0.9, 0.9)),
                  ((0.95, 0.85, 0.20), (0.10, 0.10, 0.10))],
}


def _sign(sp: Sprite, p: np.ndarray, q: np.ndarray, w: float) -> Shaded:
    """A traffic sign: plate (traffic sign) with rim and symbol, on a post (pole)."""
    prm = sp.params
    half = prm["size"] / 2
    pn, qn = p / half, (q - prm["centre"]) / half
    plate = _sign_shape(prm["shape"], pn, qn)
    post = (np.abs(p) <= prm["post_width"] / 2) & (q <= prm["centre"])
    mask = plate | post
    label = np.where(plate, _SIGN, _POLE).astype(np.uint8)
    schemes = _SIGN_COLOURS[prm["shape"]]
    outer, inner = (np.array(c, np.float32) for c in schemes[prm["scheme"] % len(schemes)])

    def albedo(m: np.ndarray) -> np.ndarray:
        pm, qm = pn[m], qn[m]
        inside = _sign_shape(prm["shape"], pm / 0.75, qm / 0.75)
        rgb = np.where(inside[:, None], inner, outer)
        symbol = inside & (np.abs(pm) < 0.12) & (np.abs(qm) < 0.4)
        rgb = np.where(symbol[:, None], outer * 0.5, rgb)
        if prm["back"]:
            rgb = np.full_like(rgb, 0.55)
        rgb = np.where(plate[m][:, None], rgb, np.float32(0.5))
        grain = fbm(p[m] * 6, q[m] * 6, prm["seed"], 1, footprint=6.0 * w)
        return rgb * (0.9 + 0.15 * grain)[:, None]

    return mask, label, albedo


def _tree(sp: Sprite, p: np.ndarray, q: np.ndarray, w: float) -> Shaded:
    """A tree: ragged crown of overlapping discs and a trunk, all labelled vegetation."""
    prm = sp.params
    blobs = prm["blobs"]
    ragged = 0.45 * (value_noise(p * 1.6, q * 1.6, prm["seed"]) - 0.5)
    dist = np.min([((p - bx) ** 2 + (q - by) ** 2) / r ** 2 for bx, by, r in blobs], axis=0)
    crown = dist <= 1.0 + ragged
    trunk_top = float(np.min(blobs[:, 1]))
    trunk = (np.abs(p) <= prm["trunk_width"] / 2 * (1.0 + 0.3 * (q < 0.3))) & (q <= trunk_top)
    mask = crown | trunk

    def albedo(m: np.ndarray) -> np.ndarray:
        pm, qm, cm = p[m], q[m], crown[m]
        rgb = np.empty((pm.size, 3), np.float32)
        leaf = 0.45 + 0.9 * fbm(pm[cm] * 2.2, qm[cm] * 2.2, prm["seed"] + 1, 2,
                                footprint=2.2 * w)
        rgb[cm] = prm["leaves"] * leaf[:, None]
        bark = 0.8 + 0.3 * fbm(pm[~cm] * 10, qm[~cm] * 2, prm["seed"], 1, footprint=10.0 * w)
        rgb[~cm] = prm["trunk"] * bark[:, None]
        return rgb

    return mask, _VEG, albedo


def _car_face(sp: Sprite, p: np.ndarray, q: np.ndarray, w: float) -> Shaded:
    """The back (or, oncoming, front) face of a car: body, cabin, windows, wheels, lights."""
    prm = sp.params
    w2, top, roof = prm["width"] / 2, prm["body_top"], prm["roof"]
    ap = np.abs(p)
    body = (ap <= w2 - np.maximum(0.0, q - (top - 0.12))) & (q >= 0.28) & (q <= top)
    wheels = (ap >= w2 - 0.42) & (ap <= w2 - 0.06) & (q < 0.3)
    t = np.clip((q - top) / (roof - top), 0.0, 1.0)
    cabin_half = w2 * ((0.92 - 0.1 * t) if prm["van"] else (0.86 - 0.22 * t))
    cabin = (q > top) & (q <= roof) & (ap <= cabin_half)
    mask = body | wheels | cabin

    def albedo(m: np.ndarray) -> np.ndarray:
        rgb = np.broadcast_to(prm["colour"] * (0.85 + 0.2 * smoothstep(0.3, 1.0, q))[..., None],
                              mask.shape + (3,)).copy()
        window = cabin & (ap <= cabin_half - 0.08) & (q > top + 0.06) & (q < roof - 0.07)
        if window.any():
            glare = fbm(p[window] * 1.5, q[window] * 1.5, prm["seed"], 1, footprint=1.5 * w)
            sky_ref = 0.12 + 0.25 * smoothstep(top, roof, q[window]) * (0.6 + 0.4 * glare)
            rgb[window] = sky_ref[:, None] * np.array([0.8, 0.9, 1.0], np.float32)
        rgb[wheels] = 0.05
        bumper = body & (q < 0.42)
        rgb[bumper] = rgb[bumper] * 0.45 + 0.02
        lights = body & (q > top - 0.28) & (q < top - 0.12) & (ap > w2 - 0.38) & (ap < w2 - 0.06)
        rgb[lights] = (0.95, 0.92, 0.8) if prm["oncoming"] else (0.75, 0.06, 0.05)
        rgb[body & (ap < 0.25) & (q > 0.45) & (q < 0.57)] = 0.9  # number plate
        return rgb[m]

    return mask, _CAR, albedo


def car_side(sp: Sprite, s: np.ndarray, y: np.ndarray) -> Shaded:
    """A car's side face; s (m) along the car from its face nearest to the camera, y height (m)."""
    prm = sp.params
    length, top, roof = prm["length"], prm["body_top"], prm["roof"]
    front_first = prm["oncoming"]  # oncoming cars show their front at s = 0
    u = s / length if not front_first else 1.0 - s / length
    body = (s >= 0) & (s <= length) & (y >= 0.28) & (y <= top)
    wheel_r = 0.32
    hub_d2 = np.minimum((s - 0.18 * length) ** 2, (s - 0.82 * length) ** 2) + (y - wheel_r) ** 2
    wheels = hub_d2 <= wheel_r ** 2
    t = np.clip((y - top) / (roof - top), 0.0, 1.0)
    if prm["van"]:
        lo, hi = 0.04 + 0.02 * t, 0.9 - 0.12 * t
    else:
        lo, hi = 0.22 + 0.1 * t, 0.8 - 0.16 * t
    cabin = (y > top) & (y <= roof) & (u >= lo) & (u <= hi)
    mask = body | wheels | cabin

    def albedo(m: np.ndarray) -> np.ndarray:
        rgb = prm["colour"] * (0.8 + 0.2 * smoothstep(0.3, 1.0, y[m]))[:, None]
        um, ym = u[m], y[m]
        window = cabin[m] & (um >= lo[m] + 0.03) & (um <= hi[m] - 0.03) & (ym > top + 0.05) & (
            ym < roof - 0.06)
        rgb[window] = 0.16
        door = body[m] & (np.abs(um - 0.5) < 0.008)
        rgb[door] *= 0.5
        wheel = wheels[m]
        rgb[wheel] = np.where(hub_d2[m][wheel] < 0.03, 0.45, 0.05)[:, None]
        return rgb

    return mask, _CAR, albedo


OBJECT_SHADERS: dict[str, Callable[[Sprite, np.ndarray, np.ndarray, float], Shaded]] = {"person": _person, "pole": _pole, "sign": _sign,
                                        "tree": _tree, "car": _car_face}
