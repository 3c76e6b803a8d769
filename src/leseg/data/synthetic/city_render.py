"""Per-pixel ray casting of a :class:`~leseg.data.synthetic.city_scene.CityScene` with a z-buffer.

Every pixel's ray (a, b, 1) (see :meth:`PinholeCamera.ray_slopes`) is intersected analytically
with the ground plane (Z = h / b), the facade planes (X = const → Z = X / a; Z = const), and the
camera-facing cut-outs of the objects; the nearest hit wins (z-buffer on the depth Z along the
optical axis, in metres). All albedo textures are functions of WORLD (or object-fixed)
coordinates only and the sky a function of the ray direction only, so frames of one sequence are
exact re-projections of each other (up to occlusion, image borders and sensor noise).

Image formation: rays are cast on a half-pixel grid (:func:`supersampling_camera`); radiance =
albedo × shading (sunlit/shaded planes, world-fixed cast shadows) is anti-aliased with a
[1, 2, 1] tent filter onto the pixels, then exposure gain, white balance and a gamma curve (all per
sequence), additive Gaussian sensor noise (per frame) and 8-bit quantisation. Labels and depth are
the samples at the pixel centres.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from .city_objects import OBJECT_SHADERS, car_side
from .city_scene import CityScene, FacadeRow, Pattern, PinholeCamera, Sprite
from .textures import (
    fbm,
    hash_uniform,
    interval_coverage,
    smoothstep,
    stripe_coverage,
    value_noise,
)

__all__ = ["CityFrame", "render_city_frame", "supersampling_camera"]

_NEAR = 0.3  # m: nothing closer to the camera is drawn
_EGO, _ROAD, _SIDEWALK, _BUILDING, _VEG, _SKY = 1, 7, 8, 11, 21, 23


@dataclass
class CityFrame:
    """One rendered frame.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        label_ids: (H, W) uint8 Cityscapes labelIds (7 road, 8 sidewalk, 11 building, 17 pole,
            20 traffic sign, 21 vegetation, 23 sky, 24 person, 26 car, 1 ego vehicle).
        depth: (H, W) float64 depth along the optical axis in metres; +inf where the pixel sees no
            world surface (sky, ego-vehicle bonnet).
    """

    image: np.ndarray
    label_ids: np.ndarray
    depth: np.ndarray


class _Canvas:
    """Z-buffered radiance/label/depth buffers of one frame; ``patterns`` (labelId → world-fixed
    :class:`Pattern`) modulate the radiance of every painted pixel of those classes."""

    def __init__(self, radiance: np.ndarray, view: _View, patterns: dict[int, Pattern]) -> None:
        h, w = radiance.shape[:2]
        self.depth = np.full((h, w), np.inf)
        self.label = np.full((h, w), _SKY, dtype=np.uint8)
        self.radiance = radiance
        self.view = view
        self.patterns = patterns

    def paint(self, rows: slice, cols: slice, depth: np.ndarray, mask: np.ndarray,
              label: int | np.ndarray, shade: Callable[[np.ndarray], np.ndarray]) -> None:
        """Write the pixels of the region ``(rows, cols)`` where ``mask`` holds and ``depth`` is nearer.

        ``depth``/``mask``/``label`` have the region's shape (label may be a scalar); ``shade(m)``
        returns the (N, 3) radiance of the N pixels selected by the boolean region mask ``m``.
        """
        current = self.depth[rows, cols]
        m = mask & (depth < current) & (depth > _NEAR)
        if not m.any():
            return
        current[m] = depth[m]
        lab = self.label[rows, cols]
        lab[m] = label if np.isscalar(label) else label[m]
        rad = self.radiance[rows, cols]
        rad[m] = shade(m)
        if self.patterns:
            self._pattern(rows, cols, depth, m, lab, rad)

    def _pattern(self, rows: slice, cols: slice, depth: np.ndarray, m: np.ndarray,
                 lab: np.ndarray, rad: np.ndarray) -> None:
        """Multiply the radiance just painted (``m``) by the pattern of its class at its world point.

        The waves' frequencies in turns per sample are the finite differences of their phases over
        the region's sample grid (so waves finer than the grid fade out instead of aliasing).
        """
        view = self.view
        d = np.where(np.isfinite(depth), depth, 0.0)
        a, b = view.a[:, cols], view.b[rows]
        x, y, z = a * d, view.cam.mount_height - b * d, d + view.zc
        for value in np.unique(lab[m]):
            pattern = self.patterns.get(int(value))
            if pattern is None or pattern.kind == "plain":
                continue
            sel = m & (lab == value)
            phase = pattern.phase(x, y, z)  # (K, h, w)
            freq = np.zeros(phase.shape)
            for axis in (1, 2):
                if phase.shape[axis] > 1:
                    freq = np.maximum(freq, np.abs(np.gradient(phase, axis=axis)))
            rad[sel] *= pattern.factor(phase[:, sel], freq[:, sel])


class _View(NamedTuple):
    """The sampling camera, its ray slopes a (1, W) and b (H, 1), the camera's world Z (m) and the
    number of samples per output pixel along each axis (pixel footprint = that many samples)."""

    cam: PinholeCamera
    a: np.ndarray
    b: np.ndarray
    zc: float
    samples_per_pixel: float


def supersampling_camera(cam: PinholeCamera) -> PinholeCamera:
    """The camera of the half-pixel sample grid used for anti-aliasing.

    Sample (i, j) of the (2H + 1) x (2W + 1) grid looks at pixel coordinates
    ((j − 1) / 2, (i − 1) / 2) of ``cam``: odd indices are the pixel centres, even ones the points
    half-way between them (and half a pixel outside the border).
    """
    return replace(cam, height=2 * cam.height + 1, width=2 * cam.width + 1, fx=2 * cam.fx,
                   fy=2 * cam.fy, cx=2 * cam.cx + 1, cy=2 * cam.cy + 1)


def _tent_downsample(samples: np.ndarray) -> np.ndarray:
    """(2H + 1, 2W + 1, C) half-pixel samples → (H, W, C) pixels, filtered with [1, 2, 1] / 4 per axis."""
    rows = (samples[0:-2:2] + 2.0 * samples[1:-1:2] + samples[2::2]) * 0.25
    return (rows[:, 0:-2:2] + 2.0 * rows[:, 1:-1:2] + rows[:, 2::2]) * 0.25


# ---------------------------------------------------------------------------------------- sky

def _sky(scene: CityScene, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(H, W, 3) sky radiance as a function of the ray direction only (the sky is at infinity).

    Only rows at or above the horizon are textured (the ground plane covers every ray below it).
    The result is the same for every frame of a scene and is cached on it.
    """
    key = ("sky", b.shape[0], a.shape[1])
    cached = scene.render_cache.get(key)
    if cached is not None:
        return cached.copy()
    light = scene.lighting
    out = np.empty((b.shape[0], a.shape[1], 3), np.float32)
    out[:] = light.horizon
    rows = int(np.searchsorted(b[:, 0], 1e-4, side="right"))
    if rows > 0:
        aa, bb = np.broadcast_arrays(a, b[:rows])
        elevation = np.clip(-bb / 0.6, 0.0, 1.0).astype(np.float32) ** 0.7
        base = light.horizon + (light.zenith - light.horizon) * elevation[..., None]
        clouds = fbm(aa * 2.0, bb * 5.0 + 7.0, light.sky_seed, 3)
        cover = smoothstep(0.75 - 0.4 * light.cloudiness, 0.95 - 0.3 * light.cloudiness, clouds)
        cloud_rgb = np.float32(0.92) - 0.15 * value_noise(aa * 12.0, bb * 24.0, light.sky_seed + 1)
        out[:rows] = base + (cloud_rgb[..., None] - base) * (0.85 * cover)[..., None]
    scene.render_cache[key] = out
    return out.copy()


# -------------------------------------------------------------------------------------- ground

def _building_shadow(scene: CityScene, x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Shadow weight in [0, 1] at ground points (x, z) from the front facade on the sun's side."""
    side = scene.lighting.shadow_side
    if side == 0:
        return np.zeros(np.shape(x), np.float32)
    row = scene.facades[0 if side < 0 else 1]
    idx = np.clip(np.searchsorted(row.starts, z, side="right") - 1, 0, len(row.starts) - 1)
    top = np.where(row.kinds[idx] == _BUILDING, row.tops[idx],
                   np.where(row.kinds[idx] == _VEG, 0.6 * row.tops[idx], 0.0))
    dist = (x - row.offset) * -side  # metres from the facade line into the street
    return 1.0 - smoothstep(-0.3, 0.3, dist - top * scene.lighting.shadow_slope)


def _ground_shadow(scene: CityScene, view: _View, first: int, x: np.ndarray,
                   z: np.ndarray) -> np.ndarray:
    """Shadow weight in [0, 1] on the ground sample grid (rows ``first``… of the view, all columns)
    cast by the buildings and by the objects' ellipses (each evaluated in its image bounding box)."""
    cam, zc = view.cam, view.zc
    shadow = _building_shadow(scene, x, z).astype(np.float32)
    for sx, sz, rx, rz, darkness in scene.ground_shadows:
        z_near, z_far = max(sz - rz - zc, _NEAR), sz + rz - zc
        if z_far <= z_near:
            continue
        us = [cam.cx + cam.fx * xe / ze for xe in (sx - rx, sx + rx) for ze in (z_near, z_far)]
        cols = _span(min(us), max(us), cam.width)
        rows = _span(cam.cy + cam.fy * cam.mount_height / z_far - first,
                     cam.cy + cam.fy * cam.mount_height / z_near - first, shadow.shape[0])
        if cols is None or rows is None:
            continue
        r2 = ((x[rows, cols] - sx) / rx) ** 2 + ((z[rows, cols] - sz) / rz) ** 2
        patch = shadow[rows, cols]
        np.maximum(patch, darkness * (1.0 - smoothstep(0.5, 1.0, r2)), out=patch)
    return shadow


def _road_albedo(scene: CityScene, x: np.ndarray, z: np.ndarray, wx: np.ndarray,
                 wz: np.ndarray) -> np.ndarray:
    """(N, 3) asphalt with patches and lane markings at ground points (x, z); wx, wz: pixel
    footprint (m) along x and z, used to box-filter the texture edges."""
    st = scene.street
    g = st.grain_scale
    grain = (1.0 - st.grain_contrast / 2) + st.grain_contrast * fbm(
        x / g, z / g, st.seed, 4, footprint=np.maximum(wx, wz) / g)
    patches = smoothstep(0.72, 0.8, value_noise(x / 3.0, z / 5.0, st.seed + 11))
    albedo = st.road_albedo[None, :] * (grain * (1.0 - 0.22 * patches))[:, None]
    if st.stain_amount > 0 and st.stain_albedo is not None:
        level = 1.0 - st.stain_amount
        stain = smoothstep(level, level + 0.04, value_noise(x / st.stain_scale,
                                                            z / (2.0 * st.stain_scale),
                                                            st.seed + 13))
        albedo += (st.stain_albedo[None, :] * grain[:, None] - albedo) * stain[:, None]
    marking = np.zeros(x.shape, np.float32)
    for xl in st.dashed_lines:
        marking = np.maximum(marking, interval_coverage(x, xl - 0.08, xl + 0.08, wx)
                             * stripe_coverage(z + 3.7 * xl, 9.0, 3.0, wz, phase=1.5))
    for xl in (st.road_left + 0.3, st.road_right - 0.3):
        marking = np.maximum(marking, interval_coverage(x, xl - 0.07, xl + 0.07, wx))
    if st.crossing is not None:
        marking = np.maximum(marking, interval_coverage(z, *st.crossing, wz)
                             * stripe_coverage(x, 1.1, 0.55, wx, phase=0.275))
    painted = marking > 0
    if painted.any():
        wear = 0.7 + 0.3 * value_noise(x[painted] * 2.0, z[painted] * 2.0, st.seed + 3)
        paint = st.marking_albedo[None, :] * wear[:, None]
        albedo[painted] += (paint - albedo[painted]) * marking[painted, None]
    return albedo


def _sidewalk_albedo(scene: CityScene, x: np.ndarray, z: np.ndarray, wx: np.ndarray,
                     wz: np.ndarray) -> np.ndarray:
    """(N, 3) paving tiles (with joints) and kerb stones at ground points, box-filtered."""
    st = scene.street
    tile = st.tile_size
    detail = 1.0 - smoothstep(0.5, 1.0, np.maximum(wx, wz) / tile)  # tiles smaller than a pixel
    variation = 0.16 * detail * (hash_uniform(np.floor(x / tile), np.floor(z / tile), st.seed + 5)
                                 - 0.5)
    joint = np.maximum(stripe_coverage(x, tile, 0.08 * tile, wx),
                       stripe_coverage(z, tile, 0.08 * tile, wz))
    dirt = 0.85 + 0.25 * fbm(x / 1.5, z / 1.5, st.seed + 7, 2,
                             footprint=np.maximum(wx, wz) / 1.5)
    albedo = st.sidewalk_albedo[None, :] * ((0.98 + variation) * (1.0 - 0.2 * joint) * dirt)[:, None]
    kerb = np.maximum(interval_coverage(x, st.road_left - 0.25, st.road_left, wx),
                      interval_coverage(x, st.road_right, st.road_right + 0.25, wx))
    stone = kerb > 0
    if stone.any():
        kerb_rgb = st.kerb_albedo[None, :] * (0.9 + 0.2 * value_noise(
            x[stone] * 2.0, z[stone] * 0.7, st.seed + 9))[:, None]
        albedo[stone] += (kerb_rgb - albedo[stone]) * kerb[stone, None]
    return albedo


def _draw_ground(canvas: _Canvas, scene: CityScene, view: _View) -> None:
    cam, a, b, zc = view[:4]
    first = int(np.searchsorted(b[:, 0], 1e-4, side="right"))
    if first >= cam.height:
        return
    rows = slice(first, cam.height)
    depth = np.broadcast_to(cam.mount_height / b[rows], (cam.height - first, cam.width))
    x = a * depth
    z = depth + zc
    road = (x >= scene.street.road_left) & (x <= scene.street.road_right)
    label = np.where(road, _ROAD, _SIDEWALK).astype(np.uint8)
    k = view.samples_per_pixel
    shadow = _ground_shadow(scene, view, first, x, z)
    tint = scene.lighting.shadow_tint

    def shade(m: np.ndarray) -> np.ndarray:
        xm, zm, dm = x[m], z[m], depth[m]
        wz = k * dm * dm / (cam.fy * cam.mount_height)  # metres of ground per pixel row
        wx = k * dm / cam.fx + np.abs(xm) * wz / dm
        cover = interval_coverage(xm, scene.street.road_left, scene.street.road_right, wx)
        albedo = np.zeros((xm.size, 3), np.float32)
        on_road, on_side = cover > 0, cover < 1
        albedo[on_road] += cover[on_road, None] * _road_albedo(
            scene, xm[on_road], zm[on_road], wx[on_road], wz[on_road])
        albedo[on_side] += (1.0 - cover[on_side, None]) * _sidewalk_albedo(
            scene, xm[on_side], zm[on_side], wx[on_side], wz[on_side])
        return albedo * (1.0 + (tint[None, :] - 1.0) * shadow[m][:, None])

    canvas.paint(rows, slice(None), depth, np.ones(depth.shape, bool), label, shade)


# ------------------------------------------------------------------------------------- facades

def _building_albedo(row: FacadeRow, seg: np.ndarray, s: np.ndarray, y: np.ndarray,
                     ws: np.ndarray, wy: np.ndarray) -> np.ndarray:
    """(N, 3) facade albedo at along-row coordinate s and height y (m) on segments ``seg``; ws, wy:
    pixel footprint (m) along s and y, used to box-filter windows and edges."""
    start, end, top = row.starts[seg], row.ends[seg], row.tops[seg]
    floor_h, pitch = row.floor_height[seg], row.window_pitch[seg]
    win_w, win_h = row.window_width[seg], row.window_height[seg]
    u, length = s - start, end - start
    ts, pc = row.texture_scale, row.plaster_contrast
    plaster = (1.0 - 0.6 * pc) + pc * fbm(s / ts, y / ts, row.seed, 2,
                                          footprint=np.maximum(ws, wy) / ts)
    plaster *= 0.85 + 0.15 * smoothstep(0.0, 1.5, y)
    trim = 1.0 - interval_coverage(u, 0.3, length - 0.3, ws) * interval_coverage(
        y, -1.0, top - 0.4, wy)
    wall = row.albedo[seg] * (plaster * (1.0 - 0.22 * trim))[:, None]

    ground = 1.25 * floor_h
    inner = interval_coverage(u, 0.6, length - 0.6, ws)
    windows = (stripe_coverage(u, pitch, win_w, ws, phase=pitch / 2)
               * stripe_coverage(y, floor_h, win_h, wy, phase=ground + 0.3 * floor_h + win_h / 2)
               * interval_coverage(y, ground, top - 0.9, wy))
    shops = (row.shop[seg] * stripe_coverage(u, 2 * pitch, 1.6 * pitch, ws, phase=pitch)
             * interval_coverage(y, 0.4, ground - 0.6, wy))
    glass = np.maximum(windows, shops) * inner
    if row.accent is not None:  # coloured shop-sign band above the ground floor
        band = (row.shop[seg] * interval_coverage(y, ground - 0.55, ground - 0.1, wy)
                * interval_coverage(u, 0.8, length - 0.8, ws))
        wall += (row.accent[seg] - wall) * band[:, None]
    lit = glass > 0
    if lit.any():
        cell_x = np.floor(u[lit] / pitch[lit])
        cell_y = np.floor((y[lit] - ground[lit]) / floor_h[lit]) + 1000.0 * (y[lit] < ground[lit])
        h = hash_uniform(cell_x, cell_y + 37.0 * seg[lit], row.seed + 1)
        reflect = 0.12 + 0.35 * h * h
        tint = np.stack([0.75 + 0.2 * h, 0.85 + 0.1 * h, np.ones_like(h)], axis=1)
        glow = (h > 0.93)[:, None] * np.array([0.5, 0.4, 0.15], np.float32)
        pane = reflect[:, None] * tint + glow
        wall[lit] += (pane - wall[lit]) * glass[lit, None]
    return wall


def _vegetation_albedo(row: FacadeRow, seg: np.ndarray, s: np.ndarray, y: np.ndarray,
                       ws: np.ndarray, wy: np.ndarray) -> np.ndarray:
    ts = 0.5 * row.texture_scale
    leaf = fbm(s / ts, y / ts, row.seed + 2, 3, footprint=np.maximum(ws, wy) / ts)
    shade = 0.45 + 0.9 * leaf * (0.8 + 0.2 * smoothstep(0.0, 2.0, y))
    return row.albedo[seg] * shade[:, None]


def _draw_facade(canvas: _Canvas, row: FacadeRow, view: _View) -> None:
    cam, a, b, zc = view[:4]
    if row.axis == "z":  # plane X = offset: depth per column
        valid = a[0] * row.offset > 1e-9
        if not valid.any():
            return
        cols_idx = np.flatnonzero(valid)
        cols = slice(int(cols_idx[0]), int(cols_idx[-1]) + 1)
        depth_c = row.offset / a[:, cols]
        s_c = depth_c + zc
    else:  # plane Z = offset
        dz = row.offset - zc
        if dz <= _NEAR:
            return
        cols = slice(None)
        depth_c = np.full((1, cam.width), dz)
        s_c = a * dz
    seg_c = np.clip(np.searchsorted(row.starts, s_c, side="right") - 1, 0, len(row.starts) - 1)
    kind_c = row.kinds[seg_c]
    top_c = row.tops[seg_c] + np.where(
        kind_c == _VEG, 1.6 * (value_noise(s_c / 1.8, seg_c * 3.1, row.seed + 4) - 0.5), 0.0)
    inside_c = (s_c >= row.starts[seg_c]) & (s_c < row.ends[seg_c]) & (kind_c != 0)
    depth = np.broadcast_to(depth_c, (cam.height, depth_c.shape[1]))
    y = cam.mount_height - b * depth
    mask = inside_c & (y >= 0.0) & (y <= top_c)
    if not mask.any():
        return
    label = np.broadcast_to(kind_c, mask.shape)
    s = np.broadcast_to(s_c, mask.shape)
    seg = np.broadcast_to(seg_c, mask.shape)
    k = view.samples_per_pixel

    def shade(m: np.ndarray) -> np.ndarray:
        sm, ym, gm, km, dm = s[m], y[m], seg[m], label[m], depth[m]
        if row.axis == "z":  # metres along the facade per pixel column grows with depth²
            ws = k * dm * dm / (cam.fx * abs(row.offset))
            wy = k * dm / cam.fy + np.abs(cam.mount_height - ym) * ws / dm
        else:
            ws = wy = k * dm / cam.fx
        albedo = np.empty((sm.size, 3), np.float32)
        bld = km == _BUILDING
        albedo[bld] = _building_albedo(row, gm[bld], sm[bld], ym[bld], ws[bld], wy[bld])
        albedo[~bld] = _vegetation_albedo(row, gm[~bld], sm[~bld], ym[~bld], ws[~bld], wy[~bld])
        return albedo * row.light

    canvas.paint(slice(None), cols, depth, mask, label, shade)


# ------------------------------------------------------------------------------------- sprites

def _span(lo: float, hi: float, size: int) -> slice | None:
    """Pixel index range covering continuous coordinates [lo, hi] (pixel centres at integers)."""
    start, stop = max(0, int(np.ceil(lo))), min(size, int(np.floor(hi)) + 1)
    return slice(start, stop) if stop > start else None


def _sprite_light(scene: CityScene, sp: Sprite) -> np.ndarray:
    """(3,) light on an object: its foot point in a building's cast shadow or not."""
    shadow = float(_building_shadow(scene, np.array([sp.x]), np.array([sp.z]))[0])
    return (1.0 + (scene.lighting.shadow_tint - 1.0) * shadow).astype(np.float32)


def _draw_sprite(canvas: _Canvas, scene: CityScene, sp: Sprite, view: _View) -> None:
    cam, a, b, zc = view[:4]
    depth = sp.z - zc
    if depth <= _NEAR:
        return
    p_min, p_max, q_max = sp.extent
    cols = _span(cam.cx + cam.fx * (sp.x + p_min) / depth, cam.cx + cam.fx * (sp.x + p_max) / depth,
                 cam.width)
    rows = _span(cam.cy + cam.fy * (cam.mount_height - q_max) / depth,
                 cam.cy + cam.fy * cam.mount_height / depth, cam.height)
    if cols is None or rows is None:
        return
    p = a[:, cols] * depth - sp.x
    q = cam.mount_height - b[rows] * depth
    p, q = np.broadcast_arrays(p, q)
    footprint = view.samples_per_pixel * depth / cam.fx  # metres per output pixel
    mask, label, albedo = OBJECT_SHADERS[sp.kind](sp, p, q, footprint)
    light = _sprite_light(scene, sp) * (0.9 if sp.kind == "car" else 1.0)
    canvas.paint(rows, cols, np.full(mask.shape, depth), mask, label, lambda m: albedo(m) * light)
    if sp.kind == "car":
        _draw_car_side(canvas, scene, sp, view)


def _draw_car_side(canvas: _Canvas, scene: CityScene, sp: Sprite, view: _View) -> None:
    cam, a, b, zc = view[:4]
    w2, length = sp.params["width"] / 2, sp.params["length"]
    if sp.x - w2 > 0:
        xs = sp.x - w2
    elif sp.x + w2 < 0:
        xs = sp.x + w2
    else:
        return
    z0, z1 = max(sp.z - zc, _NEAR), sp.z + length - zc
    if z1 <= z0:
        return
    us = [cam.cx + cam.fx * xs / z for z in (z0, z1)]
    vs = [cam.cy + cam.fy * (cam.mount_height - y) / z for z in (z0, z1)
          for y in (0.0, sp.extent[2])]
    cols = _span(min(us), max(us), cam.width)
    rows = _span(min(vs), max(vs), cam.height)
    if cols is None or rows is None:
        return
    ac = a[:, cols]
    with np.errstate(divide="ignore", invalid="ignore"):
        depth_c = np.where(ac * xs > 1e-9, xs / ac, np.inf)
    depth = np.broadcast_to(depth_c, (rows.stop - rows.start, depth_c.shape[1]))
    s = depth + zc - sp.z
    y = cam.mount_height - b[rows] * depth
    with np.errstate(invalid="ignore"):
        mask, label, albedo = car_side(sp, np.nan_to_num(s, posinf=-1.0), np.nan_to_num(y))
    mask &= np.isfinite(depth)
    light = _sprite_light(scene, sp) * 0.7
    canvas.paint(rows, cols, depth, mask, label, lambda m: albedo(m) * light)


# ------------------------------------------------------------------------------ image formation

def _bonnet(scene: CityScene, height: int, width: int
            ) -> tuple[np.ndarray, np.ndarray] | None:
    """Mask and radiance of the ego-vehicle bonnet band on the (height, width) sample grid, or None.

    The band is fixed to the camera (the same in every frame): rows below a parabola in pixel
    coordinates of the written image.
    """
    if scene.lighting.bonnet is None:
        return None
    key = ("bonnet", height, width)
    if key not in scene.render_cache:  # frame-independent: computed once per scene
        scene.render_cache[key] = _bonnet_band(scene, height, width)
    return scene.render_cache[key]


def _bonnet_band(scene: CityScene, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    frac, colour = scene.lighting.bonnet
    cam = scene.camera
    scale = (width - 1) / cam.width  # 1 for the pixel grid, 2 for the half-pixel grid
    offset = 1.0 if scale > 1 else 0.0
    u = ((np.arange(width) - offset) / scale - cam.cx) / (cam.width / 2)
    v = ((np.arange(height) - offset) / scale)[:, None]
    top = cam.height * (1.0 - frac * (1.0 - 0.45 * u[None, :] ** 2))
    mask = v >= top
    t = np.clip((v - top) / (frac * cam.height), 0.0, 1.0)
    reflection = 0.25 * np.exp(-((t - 0.3) / 0.15) ** 2)
    radiance = colour * (0.55 + 0.3 * (1 - t))[..., None] + reflection[..., None]
    return mask, radiance.astype(np.float32)


def render_city_frame(scene: CityScene, frame: int) -> CityFrame:
    """Render sequence frame ``frame`` of ``scene`` (camera at world Z = ``scene.camera_z(frame)``).

    Rays are cast on the half-pixel grid of :func:`supersampling_camera`; the image is its
    [1, 2, 1]-tent-filtered downsampling (anti-aliasing, centred on the pixel centres), while labels
    and depth are the samples at the pixel centres themselves.

    Args:
        scene: the rigid scene (from :func:`~leseg.data.synthetic.city_scene.sample_city_scene`).
        frame: Cityscapes frame number (19 = annotated frame; 18/20 its neighbours).

    Returns:
        :class:`CityFrame` with the uint8 image, the labelIds and the metric depth. The sensor noise
        depends on (scene.noise_seed, frame); everything else only on the scene and the pose.
    """
    cam = supersampling_camera(scene.camera)
    a, b = cam.ray_slopes()
    view = _View(cam, a, b, scene.camera_z(frame), 2.0)
    canvas = _Canvas(_sky(scene, a, b), view, scene.patterns)
    for sp in sorted(scene.sprites, key=lambda sp: sp.z):  # near first: less overdraw
        _draw_sprite(canvas, scene, sp, view)
    for row in scene.facades:
        _draw_facade(canvas, row, view)
    _draw_ground(canvas, scene, view)

    radiance, label, depth = canvas.radiance, canvas.label, canvas.depth
    bonnet = _bonnet(scene, cam.height, cam.width)
    if bonnet is not None:
        mask, colour = bonnet
        radiance[mask] = colour[mask]
        label[mask] = _EGO
        depth[mask] = np.inf
    light = scene.lighting
    pixels = np.maximum(_tent_downsample(radiance) @ light.colour_matrix.T, 0.0)
    exposed = np.clip(pixels * (light.gain * light.white_balance), 0.0, 1.0) ** (1.0 / light.gamma)
    noise = np.random.default_rng([scene.noise_seed, frame]).normal(
        0.0, light.noise_sigma, exposed.shape)
    image = np.clip(np.rint((exposed + noise) * 255.0), 0, 255).astype(np.uint8)
    return CityFrame(image=image, label_ids=np.ascontiguousarray(label[1::2, 1::2]),
                     depth=np.ascontiguousarray(depth[1::2, 1::2]))
