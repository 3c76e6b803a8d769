"""Random 3-D street scenes for ``synthetic_city``: camera, street layout, facades, objects, lighting.

World frame (metres): X to the right, Y **up** (ground plane Y = 0), Z forward along the street (the
driving direction). The camera sits at X = 0, height :attr:`PinholeCamera.mount_height`, looks
along +Z with zero pitch/roll/yaw, and at sequence frame ``f`` is at Z = (f − 19) · ``step`` with
``step = speed / 17`` m (Cityscapes' 17 Hz sequences; frame 19 is the annotated one). The scene is
rigid (nothing moves but the camera), so frames of one sequence differ only by that translation.

A scene is a list of simple primitives the renderer (:mod:`leseg.data.synthetic.city_render`)
intersects with camera rays:

* the ground plane: road (with lane markings, patches, a zebra crossing) between ``road_left`` and
  ``road_right``, sidewalks (paving tiles, kerb) outside it;
* :class:`FacadeRow` planes: rows of building fronts, vegetation (hedges / park trees) and gaps
  along the street (planes X = const), optional rows set back behind them, and optionally a row
  across the street (plane Z = const) closing the view;
* :class:`Sprite` objects standing on the ground, each a camera-facing (Z = const) planar cut-out:
  persons, street lamps and posts (pole), traffic signs (pole + sign plate), trees (vegetation) and
  cars (a box: the back/front face plus the side face the camera can see);
* the sky at infinity.

Appearance (class colours, world-fixed surface patterns per class, texture scales, camera colour
response) comes from one of :data:`APPEARANCE_THEMES` shared :class:`Theme` s per scene and is drawn
from a random stream of its own, so the geometry above does not depend on it.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .textures import smoothstep

__all__ = [
    "ANNOTATED_FRAME", "APPEARANCE_THEMES", "BASELINE_M", "CITYSCAPES_COLORS", "CITY_LABEL_IDS",
    "CityScene", "FRAME_RATE_HZ", "FacadeRow", "Lighting", "Pattern", "PinholeCamera", "Sprite",
    "Street", "Theme", "Tint", "sample_city_scene", "theme",
]

CITY_LABEL_IDS: dict[str, int] = {
    "ego vehicle": 1, "road": 7, "sidewalk": 8, "building": 11, "pole": 17, "traffic sign": 20,
    "vegetation": 21, "sky": 23, "person": 24, "car": 26,
}
"""Cityscapes labelIds written into ``*_gtFine_labelIds.png`` (ego vehicle is void → ignore)."""

CITYSCAPES_COLORS: dict[int, tuple[int, int, int]] = {
    1: (0, 0, 0), 7: (128, 64, 128), 8: (244, 35, 232), 11: (70, 70, 70), 17: (153, 153, 153),
    20: (220, 220, 0), 21: (107, 142, 35), 23: (70, 130, 180), 24: (220, 20, 60),
    26: (0, 0, 142),
}
"""Official Cityscapes colours (cityscapesScripts ``labels.py``) of the labelIds used here."""

ANNOTATED_FRAME = 19
"""Frame number of the annotated frame of each 30-frame Cityscapes snippet (``_000019``)."""
FRAME_RATE_HZ = 17.0
"""Cityscapes sequence frame rate: consecutive frames are 1/17 s apart."""
BASELINE_M = 0.209313
"""Stereo baseline of the Cityscapes rig (m); disparity = baseline · fx / depth."""
FOCAL_PER_WIDTH = 0.8
"""fx = fy = 0.8 · image width (horizontal field of view ≈ 64°)."""

_ROAD, _SIDEWALK, _BUILDING, _VEGETATION = 7, 8, 11, 21
_MIN_KERB_Z, _MAX_KERB_Z = 1.5, 90.0  # m: street lamps and trees from here to there (world Z)


@dataclass(frozen=True)
class PinholeCamera:
    """Pinhole camera in pixels of the written image; pixel (u, v) has its centre at (u, v).

    Attributes:
        height, width: image size H, W in pixels.
        fx, fy: focal lengths in pixels; cx, cy: principal point in pixels.
        mount_height: camera height above the ground plane (m).
        baseline: virtual stereo baseline used for the disparity maps (m).
    """

    height: int
    width: int
    fx: float
    fy: float
    cx: float
    cy: float
    mount_height: float
    baseline: float = BASELINE_M

    def ray_slopes(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 ray slopes a = (u − cx)/fx of shape (1, W) and b = (v − cy)/fy of shape (H, 1).

        The ray through pixel (u, v) is the camera-frame direction (a, b, 1) (x right, y down,
        z forward), so a point at depth Z (m, along the optical axis) is (aZ, bZ, Z).
        """
        a = (np.arange(self.width, dtype=np.float64) - self.cx) / self.fx
        b = (np.arange(self.height, dtype=np.float64) - self.cy) / self.fy
        return a[None, :].astype(np.float32), b[:, None].astype(np.float32)


@dataclass
class FacadeRow:
    """A row of vertical rectangles on one plane: building fronts, vegetation, gaps.

    ``axis="z"``: the plane X = ``offset`` (a street side), segments run along world Z.
    ``axis="x"``: the plane Z = ``offset`` (across the street), segments run along world X.
    Segment i covers [starts[i], ends[i]) along the axis and heights [0, tops[i]] m.

    Attributes:
        kinds: (S,) labelId per segment: 11 building, 21 vegetation, 0 gap (see-through).
        albedo: (S, 3) float32 base colour in [0, 1].
        floor_height, window_pitch, window_width, window_height: (S,) window grid in metres.
        shop: (S,) bool, ground floor with wide shop windows.
        accent: (S, 3) float32 colour in [0, 1] of the shop signs and window frames (distractors
            of any colour, labelled building).
        light: shading factor of the whole plane (sunlit ≈ 1, in shade < 1).
        seed: texture seed.
        plaster_contrast: amplitude of the plaster / foliage noise (texture variety per row).
        texture_scale: size (m) of the coarsest plaster / foliage noise cell.
    """

    axis: str
    offset: float
    starts: np.ndarray
    ends: np.ndarray
    tops: np.ndarray
    kinds: np.ndarray
    albedo: np.ndarray
    floor_height: np.ndarray
    window_pitch: np.ndarray
    window_width: np.ndarray
    window_height: np.ndarray
    shop: np.ndarray
    light: float
    seed: int
    accent: np.ndarray | None = None
    plaster_contrast: float = 0.22
    texture_scale: float = 1.5


@dataclass
class Sprite:
    """An object standing on the ground, drawn as a camera-facing planar cut-out at world Z = ``z``.

    Attributes:
        kind: "person", "pole", "sign", "tree" or "car".
        x: lateral world position (m) of the object's centre line; z: world Z of its front face.
        extent: (p_min, p_max, q_max): bounding box of the cut-out in object coordinates, p lateral
            offset from ``x`` (m), q height above the ground (m), q from 0 to q_max.
        params: kind-specific shape and colour parameters.
    """

    kind: str
    x: float
    z: float
    extent: tuple[float, float, float]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Street:
    """Ground-plane layout and albedo parameters (lateral positions X in metres).

    ``grain_scale`` (m) and ``grain_contrast`` set the asphalt noise; ``stain_albedo`` /
    ``stain_amount`` (fraction of the road covered, 0 = none) / ``stain_scale`` (m) paint blotches of
    another colour onto the road (patches, puddles, painted areas: distractors labelled road).
    """

    road_left: float
    road_right: float
    dashed_lines: tuple[float, ...]
    road_albedo: np.ndarray
    sidewalk_albedo: np.ndarray
    kerb_albedo: np.ndarray
    marking_albedo: np.ndarray
    tile_size: float
    crossing: tuple[float, float] | None
    seed: int
    grain_scale: float = 2.0
    grain_contrast: float = 0.44
    stain_albedo: np.ndarray | None = None
    stain_amount: float = 0.0
    stain_scale: float = 3.0


@dataclass
class Lighting:
    """Per-sequence illumination, sky, camera response and sensor noise.

    Attributes:
        shadow_side: −1/+1: the street side whose buildings cast shadows onto the ground; 0 overcast.
        shadow_slope: shadow length per metre of building height (m/m).
        shadow_tint: (3,) multiplicative colour of shadowed ground/objects.
        zenith, horizon: (3,) sky colours; cloudiness in [0, 1]; sky_seed for the clouds.
        gain: exposure gain; white_balance: (3,) per-channel gains; gamma: response exponent.
        noise_sigma: std of the additive Gaussian sensor noise in [0, 1] intensity units.
        bonnet: None, or (height fraction of the image at the centre, colour (3,)) of the
            ego-vehicle bonnet band at the bottom of the image.
        colour_matrix: (3, 3) float32 linear map applied to the radiance before exposure (hue
            rotation and saturation of the camera response, per sequence); identity by default.
    """

    shadow_side: int
    shadow_slope: float
    shadow_tint: np.ndarray
    zenith: np.ndarray
    horizon: np.ndarray
    cloudiness: float
    sky_seed: int
    gain: float
    white_balance: np.ndarray
    gamma: float
    noise_sigma: float
    bonnet: tuple[float, np.ndarray] | None
    colour_matrix: np.ndarray = field(default_factory=lambda: np.eye(3, dtype=np.float32))


@dataclass
class CityScene:
    """One rigid 3-D street scene = one Cityscapes-style sequence.

    Attributes:
        camera: intrinsics and mounting.
        speed: vehicle speed (m/s); step: camera translation per frame = speed / 17 (m).
        street, facades, sprites, lighting: the scene content.
        ground_shadows: (N, 5) float64 ellipses (x, z, radius_x, radius_z, darkness) on the ground.
        noise_seed: seed of the per-frame sensor noise.
        patterns: labelId → world-fixed surface :class:`Pattern` (from the scene's theme; empty:
            none).
        render_cache: frame-independent renderer results (the sky), filled on first use.
    """

    camera: PinholeCamera
    speed: float
    street: Street
    facades: list[FacadeRow]
    sprites: list[Sprite]
    lighting: Lighting
    ground_shadows: np.ndarray
    noise_seed: int
    patterns: dict[int, Pattern] = field(default_factory=dict)
    render_cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def step(self) -> float:
        """Camera translation between consecutive frames along the optical axis (m)."""
        return self.speed / FRAME_RATE_HZ

    def camera_z(self, frame: int) -> float:
        """World Z (m) of the camera at sequence frame ``frame`` (0 at the annotated frame 19)."""
        return (frame - ANNOTATED_FRAME) * self.step


# --------------------------------------------------------------------------------------- colours

_FACADE_PALETTE = np.array([
    (0.80, 0.74, 0.62), (0.86, 0.84, 0.78), (0.70, 0.70, 0.68), (0.62, 0.36, 0.28),
    (0.50, 0.30, 0.24), (0.42, 0.42, 0.44), (0.85, 0.76, 0.50), (0.80, 0.62, 0.58),
    (0.60, 0.68, 0.74), (0.52, 0.60, 0.44), (0.40, 0.48, 0.34), (0.74, 0.66, 0.54),
], dtype=np.float32)
_FACADE_WEIGHTS = np.array([12, 10, 10, 8, 6, 8, 6, 5, 5, 5, 4, 6], dtype=np.float64)

_VEGETATION_PALETTE = np.array([
    (0.22, 0.36, 0.12), (0.30, 0.44, 0.16), (0.18, 0.28, 0.14), (0.38, 0.46, 0.22),
    (0.26, 0.34, 0.20),
], dtype=np.float32)

_CAR_PALETTE = np.array([
    (0.55, 0.56, 0.58), (0.42, 0.43, 0.45), (0.30, 0.30, 0.31), (0.08, 0.08, 0.09),
    (0.88, 0.88, 0.86), (0.14, 0.22, 0.45), (0.55, 0.08, 0.08), (0.20, 0.32, 0.22),
    (0.70, 0.62, 0.45), (0.80, 0.68, 0.12), (0.35, 0.22, 0.15),
], dtype=np.float32)
_CAR_WEIGHTS = np.array([16, 12, 10, 14, 14, 9, 9, 4, 4, 3, 3], dtype=np.float64)

_CLOTHES_PALETTE = np.array([
    (0.10, 0.10, 0.12), (0.45, 0.45, 0.47), (0.70, 0.70, 0.68), (0.15, 0.20, 0.40),
    (0.55, 0.12, 0.12), (0.25, 0.35, 0.20), (0.75, 0.65, 0.45), (0.40, 0.28, 0.18),
    (0.85, 0.85, 0.85), (0.60, 0.45, 0.60), (0.20, 0.45, 0.55),
], dtype=np.float32)

_SKIN_PALETTE = np.array([
    (0.90, 0.72, 0.60), (0.78, 0.58, 0.44), (0.55, 0.38, 0.26), (0.36, 0.24, 0.16),
], dtype=np.float32)


def _pick(rng: np.random.Generator, palette: np.ndarray, weights: np.ndarray | None = None,
          jitter: float = 0.05) -> np.ndarray:
    """A palette colour (weighted choice) with uniform per-channel jitter, clipped to [0, 1]."""
    p = None if weights is None else weights / weights.sum()
    colour = palette[rng.choice(len(palette), p=p)]
    return np.clip(colour + rng.uniform(-jitter, jitter, 3), 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True)
class Tint:
    """Per-scene recolouring of one class (the class's appearance "style" in this scene).

    A colour (r, g, b) in [0, 1] is mapped in HSV space: hue + ``hue`` (turns, plus a per-instance
    uniform jitter of ± ``hue_jitter``), saturation · ``saturation`` + ``saturation_add``, value ·
    ``value``, clipped to [0, 1]; then mixed towards the theme's ``target`` colour of the class:
    (1 − ``mix``) · that + ``mix`` · ``target`` (a hue shift alone leaves grey surfaces grey: the
    mix moves grey asphalt, kerbs and poles too). Part of an appearance :class:`Theme`, so scenes of
    different themes show the same class in different colours and the colours seen in a few frames
    do not cover the class.
    """

    hue: float
    hue_jitter: float
    saturation: float
    saturation_add: float
    value: float
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    mix: float = 0.0

    def apply(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(3,) float32 colour in [0, 1] → its recoloured (3,) float32 version (draws one jitter)."""
        h, s, v = colorsys.rgb_to_hsv(*(float(c) for c in rgb))
        h = (h + self.hue + rng.uniform(-self.hue_jitter, self.hue_jitter)) % 1.0
        s = min(1.0, max(0.0, s * self.saturation + self.saturation_add))
        v = min(1.0, max(0.0, v * self.value))
        out = np.array(colorsys.hsv_to_rgb(h, s, v), np.float64)
        if self.mix > 0.0:
            out = (1.0 - self.mix) * out + self.mix * np.asarray(self.target, np.float64)
        return np.clip(out, 0.0, 1.0).astype(np.float32)


_PATTERN_KINDS = ("plain", "stripes", "checker", "blotches")


@dataclass(frozen=True)
class Pattern:
    """A surface pattern of one class in one theme, fixed in WORLD coordinates (metres).

    The pattern is a sum of K plane waves: the phase of wave k at world point P = (X, Y, Z) is
    ``directions[k] · P / wavelengths[k] + phases[k]`` (in turns). ``stripes`` uses one wave,
    ``checker`` the product of two, ``blotches`` the mean of three; the pattern's coverage
    c = smoothstep(−softness, softness, s − threshold) ∈ [0, 1] of that signal s ∈ [−1, 1] scales
    the radiance by 1 + c · (``gain`` − 1) per channel. A wave finer than the sample grid can show is
    faded out (its signal tends to 0) instead of aliasing. Because P is a world point, a pattern is
    the same on every frame of a sequence (photometric consistency is kept).

    Attributes:
        kind: one of ``plain`` (no pattern), ``stripes``, ``checker``, ``blotches``.
        directions: (K, 3) float64 unit vectors; wavelengths: (K,) metres; phases: (K,) turns.
        threshold: in (−1, 1); softness: > 0, width of the coverage edge in signal units.
        gain: (3,) float32 per-channel radiance factor of the covered part, in [0.25, 2.5].
    """

    kind: str
    directions: np.ndarray
    wavelengths: np.ndarray
    phases: np.ndarray
    threshold: float
    softness: float
    gain: np.ndarray

    def phase(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        """(K, *shape) float64 phases (turns) of the waves at world points of broadcastable x, y, z."""
        points = np.stack(np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64),
                                              np.asarray(z, np.float64)), axis=-1)
        waves = self.directions / self.wavelengths[:, None]  # (K, 3) turns per metre
        return np.moveaxis(points @ waves.T + self.phases, -1, 0)

    def factor(self, phase: np.ndarray, cycles_per_sample: np.ndarray) -> np.ndarray:
        """(N, 3) float32 radiance factors from (K, N) phases and (K, N) wave frequencies in
        turns per image sample (≥ 0.2: fully faded, ≤ 0.08: full contrast)."""
        fade = 1.0 - smoothstep(0.08, 0.2, cycles_per_sample)
        waves = np.cos(2.0 * np.pi * phase) * fade
        if self.kind == "stripes":
            signal = waves[0]
        elif self.kind == "checker":
            signal = waves[0] * waves[1]
        elif self.kind == "blotches":
            signal = waves.mean(axis=0)
        else:
            return np.ones((phase.shape[1], 3), np.float32)
        cover = smoothstep(-self.softness, self.softness, signal - self.threshold)
        return (1.0 + cover[:, None] * (self.gain[None, :] - 1.0)).astype(np.float32)


def _pattern(rng: np.random.Generator) -> Pattern:
    """One random :class:`Pattern` (kind uniform over :data:`_PATTERN_KINDS`)."""
    kind = str(rng.choice(_PATTERN_KINDS))
    k = {"plain": 1, "stripes": 1, "checker": 2, "blotches": 3}[kind]
    directions = rng.normal(size=(k, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    base = _log_uniform(rng, 0.15, 3.0)
    wavelengths = base * np.array([1.0, 1.37, 1.83])[:k] if kind == "blotches" else \
        base * np.exp(rng.uniform(-0.3, 0.3, k))
    gain = np.clip(np.exp(rng.normal(0.0, 0.55, 3)), 0.25, 2.5).astype(np.float32)
    return Pattern(kind=kind, directions=directions, wavelengths=wavelengths,
                   phases=rng.random(k), threshold=float(rng.uniform(-0.5, 0.5)),
                   softness=float(rng.uniform(0.05, 0.4)), gain=gain)


_TINT_RANGES: dict[str, tuple[float, float, tuple[float, float], tuple[float, float],
                              tuple[float, float]]] = {
    # class: (max |hue shift| (turns), hue jitter, saturation factor, added saturation, value factor)
    "road": (0.5, 0.02, (0.5, 2.0), (0.0, 0.3), (0.55, 1.6)),
    "sidewalk": (0.5, 0.03, (0.3, 2.0), (0.0, 0.4), (0.55, 1.35)),
    "building": (0.5, 0.08, (0.3, 2.2), (0.0, 0.35), (0.5, 1.25)),
    "vegetation": (0.5, 0.03, (0.4, 1.8), (0.0, 0.15), (0.5, 1.6)),
    "car": (0.5, 0.08, (0.5, 2.0), (0.0, 0.4), (0.6, 1.3)),
    "person": (0.5, 0.08, (0.5, 2.0), (0.0, 0.4), (0.6, 1.3)),
    "pole": (0.5, 0.03, (0.5, 2.0), (0.0, 0.5), (0.6, 1.8)),
    "sky": (0.5, 0.0, (0.2, 1.6), (0.0, 0.3), (0.6, 1.15)),
}
"""Ranges of a theme's :class:`Tint` of each class (hue shift uniform in ± its maximum, the
factors and offset uniform in their intervals; hue jitter per instance)."""

APPEARANCE_THEMES = 64
"""Number of appearance themes ("cities" with their own look): every scene takes one at random.
Twenty frames show about 17 of them (a quarter), two hundred frames about 61."""
_PATTERNED_LABEL_IDS = tuple(i for name, i in CITY_LABEL_IDS.items()
                             if name not in ("ego vehicle", "sky"))
"""labelIds whose surfaces carry a theme :class:`Pattern` (every class but the sky; in
:data:`CITY_LABEL_IDS` order, the order their patterns are drawn in)."""
_MIX_RANGE = (0.3, 0.85)
"""Range of a theme's :attr:`Tint.mix` towards its class target colour."""
_THEME_SEED = 0x5EC17E
"""Seed of the fixed theme table (the themes are the same for every dataset seed and split)."""


@dataclass(frozen=True)
class Theme:
    """A shared appearance style of many scenes (drawn once per theme index, see :func:`theme`).

    Attributes:
        tints: per-class recolouring (keys road, sidewalk, building, vegetation, car, person,
            pole, sky).
        patterns: labelId → the world-fixed surface :class:`Pattern` of that class.
        hue_turns, saturation: the colour matrix of the camera response (hue rotation in turns,
            chroma scale), jittered per scene.
        grain_scale, grain_contrast: asphalt noise cell size (m) and amplitude.
        plaster_contrast, texture_scale: facade / foliage noise amplitude and cell size (m).
        tile_size: paving tile size (m).
        stain: (3,) road stain colour in [0, 1]; stain_amount: fraction of road it covers.
        accent_hue: hue (turns) of the shop signs (jittered per segment).
    """

    tints: dict[str, Tint]
    hue_turns: float
    saturation: float
    grain_scale: float
    grain_contrast: float
    plaster_contrast: float
    texture_scale: float
    tile_size: float
    stain: np.ndarray
    stain_amount: float
    accent_hue: float
    patterns: dict[int, Pattern] = field(default_factory=dict)


@dataclass(frozen=True)
class _Style:
    """A scene's theme and its appearance random stream (separate from the geometry stream, so
    the layout of every scene is drawn exactly as without themes)."""

    theme: Theme
    rng: np.random.Generator

    def recolour(self, name: str, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` (3,) recoloured by the theme's tint of class ``name`` (one jitter draw)."""
        return self.theme.tints[name].apply(rgb, self.rng)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def theme(index: int) -> Theme:
    """Appearance theme ``index`` (0 ≤ index < :data:`APPEARANCE_THEMES`): a pure function of the
    index (its own random generator), so train and val scenes share the same themes."""
    rng = np.random.default_rng([_THEME_SEED, index])
    tints = {}
    for name, (hue, jitter, sat, sat_add, val) in _TINT_RANGES.items():
        target = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.85), rng.uniform(0.15, 0.95))
        tints[name] = Tint(hue=float(rng.uniform(-hue, hue)), hue_jitter=jitter,
                           saturation=float(rng.uniform(*sat)),
                           saturation_add=float(rng.uniform(*sat_add)),
                           value=float(rng.uniform(*val)),
                           target=tuple(float(c) for c in target),
                           mix=float(rng.uniform(*_MIX_RANGE)))
    patterns = {label_id: _pattern(rng) for label_id in _PATTERNED_LABEL_IDS}
    stain = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.0, 0.8), rng.uniform(0.1, 0.9))
    return Theme(tints=tints, hue_turns=float(rng.uniform(-0.5, 0.5)),
                 saturation=float(rng.uniform(0.5, 1.4)),
                 grain_scale=_log_uniform(rng, 0.3, 5.0),
                 grain_contrast=float(rng.uniform(0.15, 0.9)),
                 plaster_contrast=float(rng.uniform(0.1, 0.7)),
                 texture_scale=_log_uniform(rng, 0.4, 4.0),
                 tile_size=float(rng.uniform(0.25, 1.2)), stain=np.array(stain, np.float32),
                 stain_amount=float(rng.uniform(0.0, 0.35)) if rng.random() < 0.6 else 0.0,
                 accent_hue=float(rng.random()), patterns=patterns)


def _colour_matrix(hue_turns: float, saturation: float) -> np.ndarray:
    """(3, 3) float32 linear RGB map: rotation by ``hue_turns`` about the grey axis (1, 1, 1) and
    scaling of the chroma by ``saturation`` (grey stays grey; hue rotation of a camera response)."""
    theta = 2.0 * np.pi * hue_turns
    grey = np.full((3, 3), 1.0 / 3.0)
    k = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]]) / np.sqrt(3.0)
    chroma = np.cos(theta) * (np.eye(3) - grey) + np.sin(theta) * k
    return (grey + saturation * chroma).astype(np.float32)


# ----------------------------------------------------------------------------------- the sampler

def _facade_row(rng: np.random.Generator, axis: str, offset: float, start: float, stop: float,
                kinds_p: tuple[float, float, float], light: float, style: _Style) -> FacadeRow:
    """Segments [start, stop) along ``axis``: building / vegetation / gap with probabilities;
    colours and textures from the scene's ``style``."""
    look, arng = style.theme, style.rng
    starts, ends, tops, kinds, albedo, accent = [], [], [], [], [], []
    floor_h, pitch, win_w, win_h, shop = [], [], [], [], []
    pos = start
    while pos < stop:
        kind = rng.choice([_BUILDING, _VEGETATION, 0], p=kinds_p)
        if kind == _BUILDING:
            length, top = rng.uniform(8.0, 28.0), rng.uniform(7.0, 26.0)
            colour = style.recolour("building", _pick(rng, _FACADE_PALETTE, _FACADE_WEIGHTS, 0.06))
        elif kind == _VEGETATION:
            length, top = rng.uniform(6.0, 20.0), rng.uniform(2.5, 9.0)
            colour = style.recolour("vegetation", _pick(rng, _VEGETATION_PALETTE, None, 0.04))
        else:
            length, top = rng.uniform(3.0, 9.0), 0.0
            colour = np.zeros(3, np.float32)
        fh = rng.uniform(2.8, 3.6)
        p = rng.uniform(1.8, 3.8)
        starts.append(pos)
        ends.append(pos + length)
        tops.append(top)
        kinds.append(kind)
        albedo.append(colour)
        floor_h.append(fh)
        pitch.append(p)
        win_w.append(p * rng.uniform(0.35, 0.65))
        win_h.append(fh * rng.uniform(0.4, 0.65))
        shop.append(rng.random() < 0.5)
        accent.append(colorsys.hsv_to_rgb((look.accent_hue + arng.uniform(-0.08, 0.08)) % 1.0,
                                          arng.uniform(0.3, 1.0), arng.uniform(0.2, 1.0)))
        pos += length
    f32 = np.float32
    return FacadeRow(axis=axis, offset=float(offset), starts=np.array(starts), ends=np.array(ends),
                     tops=np.array(tops), kinds=np.array(kinds, dtype=np.uint8),
                     albedo=np.array(albedo, dtype=f32), floor_height=np.array(floor_h, f32),
                     window_pitch=np.array(pitch, f32), window_width=np.array(win_w, f32),
                     window_height=np.array(win_h, f32), shop=np.array(shop, dtype=bool),
                     light=float(light), seed=int(rng.integers(1 << 30)),
                     accent=np.array(accent, dtype=f32),
                     plaster_contrast=look.plaster_contrast * float(arng.uniform(0.8, 1.25)),
                     texture_scale=look.texture_scale * float(arng.uniform(0.8, 1.25)))


def _visible_z(rng: np.random.Generator, x: float, z_min: float, z_max: float,
               tan_half_fov: float) -> float:
    """A world Z in [z_min, z_max] at which lateral position x is inside the field of view at frame 19."""
    lo = max(z_min, abs(x) / (0.9 * tan_half_fov))
    return float(rng.uniform(lo, max(lo + 1.0, z_max)))


def _person(rng: np.random.Generator, x: float, z: float, style: _Style) -> Sprite:
    height = rng.uniform(1.5, 1.95)
    side_view = bool(rng.random() < 0.45)
    half = 0.22 * height / 1.75
    params = {
        "height": height, "side_view": side_view, "stride": float(rng.uniform(0.0, 1.0)),
        "top": style.recolour("person", _pick(rng, _CLOTHES_PALETTE)),
        "bottom": style.recolour("person", _pick(rng, _CLOTHES_PALETTE)),
        "skin": _pick(rng, _SKIN_PALETTE, None, 0.03), "hair": _pick(rng, _CLOTHES_PALETTE[:3]),
        "bag": bool(rng.random() < 0.3), "seed": int(rng.integers(1 << 30)),
    }
    return Sprite("person", x, z, (-half - 0.12, half + 0.12, height), params)


def _car(rng: np.random.Generator, x: float, z: float, oncoming: bool,
         style: _Style) -> Sprite:
    van = bool(rng.random() < 0.15)
    width = rng.uniform(1.65, 1.95) + (0.1 if van else 0.0)
    length = rng.uniform(3.8, 4.9) + (0.4 if van else 0.0)
    roof = rng.uniform(1.85, 2.1) if van else rng.uniform(1.35, 1.6)
    params = {
        "width": width, "length": length, "roof": roof, "body_top": rng.uniform(0.85, 1.05),
        "van": van, "oncoming": oncoming, "colour": style.recolour("car", _pick(rng, _CAR_PALETTE, _CAR_WEIGHTS, 0.04)),
        "seed": int(rng.integers(1 << 30)),
    }
    return Sprite("car", x, z, (-width / 2, width / 2, roof), params)


def _sign(rng: np.random.Generator, x: float, z: float, with_post: bool) -> Sprite:
    size = rng.uniform(0.6, 1.0)
    bottom = rng.uniform(1.9, 2.6)
    params = {
        "shape": str(rng.choice(["circle", "triangle", "triangle_down", "square", "diamond",
                                 "octagon", "rectangle"])),
        "scheme": int(rng.integers(4)), "size": size, "centre": bottom + size / 2,
        "post_width": rng.uniform(0.08, 0.13) if with_post else 0.0,
        "back": bool(rng.random() < 0.12), "seed": int(rng.integers(1 << 30)),
    }
    half = size * 0.9
    return Sprite("sign", x, z, (-half, half, bottom + size * 1.05), params)


def _pole(rng: np.random.Generator, x: float, z: float, arm_dir: float, lamp: bool,
          style: _Style) -> Sprite:
    height = rng.uniform(5.0, 8.5) if lamp else rng.uniform(1.0, 3.0)
    width = rng.uniform(0.14, 0.28) if lamp else rng.uniform(0.10, 0.18)
    arm = rng.uniform(0.8, 2.0) if lamp else 0.0
    colour = style.recolour("pole", _pick(rng, np.array([
        (0.45, 0.46, 0.47), (0.25, 0.27, 0.26), (0.12, 0.14, 0.13), (0.20, 0.28, 0.22)],
        np.float32), None, 0.03))
    params = {"height": height, "width": width, "arm": arm * arm_dir, "colour": colour,
              "seed": int(rng.integers(1 << 30))}
    lo, hi = min(-width, arm * arm_dir - 0.3), max(width, arm * arm_dir + 0.3)
    return Sprite("pole", x, z, (lo, hi, height + 0.1), params)


def _tree(rng: np.random.Generator, x: float, z: float, style: _Style) -> Sprite:
    crown_r = rng.uniform(1.2, 2.8)
    crown_c = rng.uniform(2.2, 3.8) + crown_r
    n = int(rng.integers(3, 6))
    blobs = np.stack([rng.uniform(-0.6, 0.6, n) * crown_r,
                      crown_c + rng.uniform(-0.4, 0.5, n) * crown_r,
                      rng.uniform(0.55, 0.85, n) * crown_r], axis=1)
    params = {"trunk_width": rng.uniform(0.18, 0.4), "crown_top": crown_c, "blobs": blobs,
              "trunk": _pick(rng, np.array([(0.32, 0.25, 0.18), (0.40, 0.36, 0.30)], np.float32)),
              "leaves": style.recolour("vegetation", _pick(rng, _VEGETATION_PALETTE, None, 0.05)),
              "seed": int(rng.integers(1 << 30))}
    ext = float(np.max(np.abs(blobs[:, 0]) + blobs[:, 2])) * 1.2
    return Sprite("tree", x, z, (-ext, ext, float(np.max(blobs[:, 1] + blobs[:, 2])) * 1.1),
                  params)


def sample_city_scene(rng: np.random.Generator, height: int, width: int) -> CityScene:
    """Draw one random street scene (a whole sequence) for an image of ``height`` x ``width``.

    Args:
        rng: the sample's random generator (its state fully determines the scene).
        height, width: image size in pixels (intrinsics scale with the width, square pixels).

    Returns:
        A :class:`CityScene`; the camera is at world Z = 0 at the annotated frame 19.
    """
    cam = PinholeCamera(height=height, width=width, fx=FOCAL_PER_WIDTH * width,
                        fy=FOCAL_PER_WIDTH * width, cx=width / 2.0, cy=height / 2.0,
                        mount_height=float(rng.uniform(1.25, 1.6)))
    tan_half = (width / 2.0) / cam.fx
    speed = float(rng.uniform(5.0, 12.0))
    arng = rng.spawn(1)[0]  # appearance stream; spawning leaves rng's own stream unchanged
    style = _Style(theme(int(arng.integers(APPEARANCE_THEMES))), arng)
    look = style.theme

    # street layout
    lane_w = rng.uniform(2.9, 3.5)
    lanes = int(rng.choice([2, 3, 4], p=[0.4, 0.3, 0.3]))
    ego_lane = int(rng.integers(lanes))
    road_left = -(ego_lane + 0.5) * lane_w - rng.uniform(-0.3, 0.3)
    lane_edges = [road_left + i * lane_w for i in range(lanes + 1)]
    parking = [bool(rng.random() < 0.6), bool(rng.random() < 0.6)]
    road_l = lane_edges[0] - (2.2 if parking[0] else 0.0)
    road_r = lane_edges[-1] + (2.2 if parking[1] else 0.0)
    sw_l, sw_r = rng.uniform(2.0, 5.0, 2)
    facade_l, facade_r = road_l - sw_l, road_r + sw_r
    crossing = None
    if rng.random() < 0.3:
        z0 = rng.uniform(8.0, 40.0)
        crossing = (z0, z0 + rng.uniform(3.0, 5.0))
    road_grey = rng.uniform(0.24, 0.42)
    road_rgb = np.clip(road_grey + rng.uniform(-0.025, 0.025, 3), 0, 1).astype(np.float32)
    street = Street(
        road_left=road_l, road_right=road_r, dashed_lines=tuple(lane_edges[1:-1]),
        road_albedo=style.recolour("road", road_rgb),
        sidewalk_albedo=style.recolour("sidewalk", _pick(rng, np.array([
            (0.60, 0.60, 0.58), (0.68, 0.64, 0.56), (0.58, 0.42, 0.38), (0.50, 0.50, 0.52)],
            np.float32), None, 0.04)),
        kerb_albedo=style.recolour("sidewalk", _pick(rng, np.array(
            [(0.70, 0.70, 0.70), (0.48, 0.48, 0.50)], np.float32))),
        marking_albedo=np.array([0.86, 0.86, 0.84], np.float32) * rng.uniform(0.8, 1.0),
        tile_size=look.tile_size * float(rng.uniform(0.85, 1.15)), crossing=crossing,
        seed=int(rng.integers(1 << 30)),
        grain_scale=look.grain_scale * float(arng.uniform(0.8, 1.25)),
        grain_contrast=look.grain_contrast, stain_albedo=look.stain,
        stain_amount=look.stain_amount * float(arng.uniform(0.5, 1.5)),
        stain_scale=float(arng.uniform(1.0, 6.0)))

    # lighting
    sunny = rng.random() < 0.7
    shadow_side = int(rng.choice([-1, 1])) if sunny else 0
    light_l = 1.0 if shadow_side != -1 else rng.uniform(0.55, 0.7)
    light_r = 1.0 if shadow_side != 1 else rng.uniform(0.55, 0.7)
    if not sunny:
        light_l, light_r = rng.uniform(0.8, 0.95, 2)
    tint = np.array([rng.uniform(0.40, 0.55)] * 3, np.float32) * np.array([0.92, 0.97, 1.12],
                                                                          np.float32)
    zenith = (np.array([0.30, 0.50, 0.85], np.float32) if sunny
              else np.array([0.68, 0.70, 0.74], np.float32)) + rng.uniform(-0.05, 0.05, 3)
    horizon = (np.array([0.75, 0.82, 0.92], np.float32) if sunny
               else np.array([0.82, 0.83, 0.85], np.float32)) + rng.uniform(-0.04, 0.04, 3)
    zenith = style.recolour("sky", np.clip(zenith, 0, 1))
    horizon = style.recolour("sky", np.clip(horizon, 0, 1))
    bonnet = None
    if rng.random() < 0.5:
        bonnet = (float(rng.uniform(0.07, 0.14)),
                  _pick(rng, _CAR_PALETTE[[0, 2, 3, 5]], None, 0.03))
    lighting = Lighting(
        shadow_side=shadow_side, shadow_slope=float(rng.uniform(0.2, 0.9)), shadow_tint=tint,
        zenith=np.clip(zenith, 0, 1).astype(np.float32),
        horizon=np.clip(horizon, 0, 1).astype(np.float32),
        cloudiness=float(rng.uniform(0.0, 0.8)), sky_seed=int(rng.integers(1 << 30)),
        gain=float(np.exp(rng.uniform(np.log(0.5), np.log(1.6)))),
        white_balance=np.exp(rng.normal(0.0, 0.15, 3)).astype(np.float32),
        gamma=float(np.exp(rng.uniform(np.log(0.65), np.log(1.6)))),
        noise_sigma=float(rng.uniform(0.003, 0.015)), bonnet=bonnet,
        colour_matrix=_colour_matrix(look.hue_turns + float(arng.uniform(-0.03, 0.03)),
                                     look.saturation * float(arng.uniform(0.85, 1.15))))

    # facades: front rows on both sides, optional rows set back, optional row across the street
    p_front = (0.74, 0.15, 0.11)
    facades = [_facade_row(rng, "z", facade_l, -40.0, 260.0, p_front, light_l, style),
               _facade_row(rng, "z", facade_r, -40.0, 260.0, p_front, light_r, style)]
    for side, x_front, light in ((-1, facade_l, light_l), (1, facade_r, light_r)):
        if rng.random() < 0.6:
            facades.append(_facade_row(rng, "z", x_front + side * rng.uniform(6.0, 20.0),
                                       -40.0, 260.0, (0.9, 0.1, 0.0), light * 0.95, style))
    if rng.random() < 0.55:
        facades.append(_facade_row(rng, "x", rng.uniform(60.0, 140.0), -160.0, 160.0,
                                   (0.85, 0.1, 0.05), 0.9, style))

    sprites: list[Sprite] = []
    shadows: list[tuple[float, float, float, float, float]] = []

    # cars: parked along the kerbs and driving in the lanes
    occupied: list[tuple[float, float, float, float]] = []  # x0, x1, z0, z1 footprints

    def free(x0: float, x1: float, z0: float, z1: float) -> bool:
        return all(x1 < a0 or x0 > a1 or z1 < b0 or z0 > b1 for a0, a1, b0, b1 in occupied)

    def add_car(x: float, z: float, oncoming: bool) -> None:
        car = _car(rng, x, z, oncoming, style)
        w, length = car.params["width"], car.params["length"]
        if free(x - w / 2 - 0.2, x + w / 2 + 0.2, z - 1.0, z + length + 1.0):
            occupied.append((x - w / 2, x + w / 2, z, z + length))
            sprites.append(car)
            shadows.append((x, z + length / 2, w / 2 + 0.25, length / 2 + 0.35, 0.55))

    for side, has in zip((-1, 1), parking, strict=True):
        if not has:
            continue
        x = (road_l + 1.1) if side < 0 else (road_r - 1.1)
        z = rng.uniform(-6.0, 2.0)
        while z < 90.0:
            if rng.random() < 0.6:
                add_car(x + rng.uniform(-0.15, 0.15), z, oncoming=False)
            z += rng.uniform(5.2, 7.5)
    for lane in range(lanes):
        centre = road_left + (lane + 0.5) * lane_w
        oncoming = lanes >= 2 and lane < lanes // 2 and lane != ego_lane
        count = int(rng.poisson(1.3)) + (1 if lane == ego_lane and rng.random() < 0.5 else 0)
        for _ in range(count):
            z_min = 9.0 if lane == ego_lane else 5.0
            add_car(centre + rng.uniform(-0.3, 0.3), rng.uniform(z_min, 80.0), oncoming)

    # persons: mostly on the sidewalks, some crossing the road, sometimes in small groups
    for _ in range(int(rng.integers(3, 10))):
        on_road = rng.random() < 0.15
        if on_road:
            x = rng.uniform(road_l + 0.5, road_r - 0.5)
        else:
            x = (rng.uniform(facade_l + 0.4, road_l - 0.3) if rng.random() < 0.5
                 else rng.uniform(road_r + 0.3, facade_r - 0.4))
        z = _visible_z(rng, x, 5.0, 40.0, tan_half)
        group = 1 + int(rng.random() < 0.3) * int(rng.integers(1, 3))
        for k in range(group):
            xk, zk = x + k * rng.uniform(0.5, 0.8), z + k * rng.uniform(-0.5, 0.8)
            if free(xk - 0.3, xk + 0.3, zk - 0.3, zk + 0.3):
                sprites.append(_person(rng, xk, zk, style))
                shadows.append((xk, zk + 0.1, 0.35, 0.3, 0.4))

    # street lamps, posts, traffic signs, trees along the kerbs
    kerbs = ((-1, road_l, facade_l), (1, road_r, facade_r))
    for side, kerb, _ in kerbs:
        if rng.random() < 0.85:
            z = rng.uniform(-10.0, 10.0)
            spacing = rng.uniform(14.0, 30.0)
            while z < _MAX_KERB_Z:
                if z >= _MIN_KERB_Z:
                    sprites.append(_pole(rng, kerb - side * 0.5, z, -float(side), lamp=True,
                                         style=style))
                z += spacing
        for _ in range(int(rng.integers(0, 3))):
            x = kerb - side * rng.uniform(0.3, 0.7)
            sprites.append(_pole(rng, x, _visible_z(rng, x, 4.0, 40.0, tan_half), 0.0, False,
                                 style))
        if rng.random() < 0.6:
            z = rng.uniform(-5.0, 5.0)
            spacing = rng.uniform(7.0, 14.0)
            x_tree = kerb - side * rng.uniform(0.8, 1.4)
            while z < _MAX_KERB_Z:
                tree = _tree(rng, x_tree, z + rng.uniform(-1.0, 1.0), style)
                z += spacing
                if tree.z < _MIN_KERB_Z:
                    continue
                sprites.append(tree)
                r = float(np.max(tree.params["blobs"][:, 2]))
                shift = lighting.shadow_side * -1.5
                shadows.append((tree.x + shift, tree.z, r, r * 0.8, 0.4 if sunny else 0.2))
    n_signs = int(rng.integers(3, 8))
    for _ in range(n_signs):
        side, kerb, _ = kerbs[int(rng.integers(2))]
        x = kerb - side * rng.uniform(0.3, 0.8)
        sprites.append(_sign(rng, x, _visible_z(rng, x, 5.0, 45.0, tan_half), with_post=True))

    return CityScene(camera=cam, speed=speed, street=street, facades=facades, sprites=sprites,
                     lighting=lighting, ground_shadows=np.array(shadows, dtype=np.float64),
                     noise_seed=int(rng.integers(1 << 30)), patterns=look.patterns)
