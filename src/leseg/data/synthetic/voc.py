"""``synthetic_voc``: cluttered 2-D object scenes written in the official PASCAL VOC 2012 layout.

See :mod:`leseg.data.synthetic` for the layout; the classes and their shape families are in
:mod:`leseg.data.synthetic.voc_objects`. An image = a cluttered background (gradient, fractal
texture, background blobs with flat/striped/checked textures, distractor shapes: rings, bars,
crescents, dots — all background, index 0) + 1–4 objects that may overlap (each keeps at least 35 %
of its area visible), anti-aliased, then lighting (gradient, gain, white balance), sensor noise and
JPEG compression. Labels get a 255 band of about 4 px around every object outline, like VOC's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import binary_dilation

from . import sdf2d
from .storage import save_png
from .textures import fbm
from .voc_objects import VOC_OBJECT_CLASSES, draw_object, sample_object_params

__all__ = ["IGNORE_INDEX", "VocImage", "render_voc_image", "voc_palette", "voc_sample_ids",
           "voc_sample_rng", "write_voc_sample"]

IGNORE_INDEX = 255
_KIND_CODE = 2  # separates the VOC generator's random streams from the city generator's
_SPLIT_CODES = {"train": 0, "val": 1}
_MIN_VISIBLE = 0.35  # fraction of an object's area that must stay visible under later objects
_BACKGROUND_PALETTE = np.array([
    (0.85, 0.82, 0.75), (0.55, 0.50, 0.45), (0.35, 0.45, 0.60), (0.60, 0.70, 0.85),
    (0.30, 0.45, 0.25), (0.70, 0.55, 0.35), (0.25, 0.22, 0.20), (0.75, 0.75, 0.78),
    (0.50, 0.30, 0.25), (0.90, 0.88, 0.60), (0.45, 0.55, 0.50), (0.20, 0.30, 0.45),
    (0.75, 0.12, 0.10), (0.12, 0.25, 0.65), (0.15, 0.45, 0.20), (0.85, 0.45, 0.12),
], dtype=np.float32)


def voc_palette() -> np.ndarray:
    """The standard PASCAL VOC colour map: (256, 3) uint8, entry i from the bits of i.

    Bit j of (i's 3-bit groups) sets bit 7 − j of red, green, blue in turn (``bitget`` in the VOC
    devkit's ``labelcolormap.m``): 0 → black, 1 → (128, 0, 0), 255 → (224, 224, 192).
    """
    palette = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


def voc_sample_ids(split: str, num_train: int, count: int) -> list[str]:
    """Image ids of ``split``: train ``syn_000001``…, val numbered on after the ``num_train`` train ids.

    Raises:
        ValueError: unknown split.
    """
    if split not in _SPLIT_CODES:
        raise ValueError(f"split must be one of {sorted(_SPLIT_CODES)}, got {split!r}")
    first = 1 if split == "train" else num_train + 1
    return [f"syn_{first + i:06d}" for i in range(count)]


def voc_sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random generator of image ``index`` of ``split``: a function of (seed, split, index) only."""
    return np.random.default_rng([seed, _KIND_CODE, _SPLIT_CODES[split], index])


@dataclass
class VocImage:
    """One rendered image: ``image`` (H, W, 3) uint8 RGB (before JPEG), ``label`` (H, W) uint8 VOC
    class indices 0..20 with 255 on object borders, ``instances`` (H, W) uint8 object ids (0 = none)
    and ``classes`` the class of each object id (``classes[k - 1]`` for id k)."""

    image: np.ndarray
    label: np.ndarray
    instances: np.ndarray
    classes: list[int]


def _composite(img: np.ndarray, region: tuple[slice, slice], alpha: np.ndarray,
               rgb: np.ndarray) -> None:
    view = img[region]
    view += (rgb - view) * alpha[..., None]


def _background_shape(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray,
                      size: float) -> np.ndarray:
    """Signed distance (pixels) of a random background blob or distractor shape."""
    cx, cy = rng.uniform(0, xx.max()), rng.uniform(0, yy.max())
    r = rng.uniform(0.08, 0.35) * size
    kind = int(rng.integers(6))
    if kind == 0:
        return sdf2d.ellipse(xx, yy, cx, cy, r, r * rng.uniform(0.4, 1.0))
    if kind == 1:
        return sdf2d.box(xx, yy, cx, cy, r, r * rng.uniform(0.3, 1.0), r * 0.1)
    if kind == 2:  # ring
        return np.abs(sdf2d.circle(xx, yy, cx, cy, r)) - rng.uniform(1.0, 0.15 * r + 1.5)
    if kind == 3:  # bar
        angle = rng.uniform(0, np.pi)
        d = np.array([np.cos(angle), np.sin(angle)]) * r * 1.5
        return sdf2d.capsule(xx, yy, (cx - d[0], cy - d[1]), (cx + d[0], cy + d[1]),
                             rng.uniform(1.0, 4.0))
    if kind == 4:  # crescent
        off = rng.uniform(0.3, 0.6) * r
        return np.maximum(sdf2d.circle(xx, yy, cx, cy, r), -sdf2d.circle(xx, yy, cx + off, cy, r))
    dots = [sdf2d.circle(xx, yy, cx + dx, cy + dy, rng.uniform(1.5, 3.5))
            for dx, dy in rng.uniform(-r, r, (int(rng.integers(3, 8)), 2))]
    return np.min(dots, axis=0)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    c1, c2 = (_BACKGROUND_PALETTE[rng.integers(len(_BACKGROUND_PALETTE))] for _ in range(2))
    angle = rng.uniform(0, 2 * np.pi)
    t = (((xx - width / 2) * np.cos(angle) + (yy - height / 2) * np.sin(angle))
         / max(height, width) + 0.5).astype(np.float32)
    img = c1 + (c2 - c1) * np.clip(t, 0, 1)[..., None]
    scale = rng.uniform(8.0, 40.0)
    img = img * (0.8 + 0.4 * fbm(xx / scale, yy / scale, int(rng.integers(1 << 30)), 3))[..., None]
    if rng.random() < 0.5:  # a floor / table / ground region
        h0 = rng.uniform(0.4, 0.85) * height
        d = (yy - h0 - (xx - width / 2) * rng.uniform(-0.2, 0.2))
        floor = _BACKGROUND_PALETTE[rng.integers(len(_BACKGROUND_PALETTE))]
        rgb = floor * (0.75 + 0.5 * fbm(xx / 6, yy / 3, int(rng.integers(1 << 30)), 2))[..., None]
        _composite(img, (slice(None), slice(None)), np.clip(d + 0.5, 0, 1).astype(np.float32),
                   rgb)
    size = float(min(height, width))
    for _ in range(int(rng.integers(3, 10))):
        sdf = _background_shape(rng, xx, yy, size)
        colour = _BACKGROUND_PALETTE[rng.integers(len(_BACKGROUND_PALETTE))]
        pattern = int(rng.integers(3))
        if pattern == 0:
            shade = 0.85 + 0.3 * fbm(xx / 5, yy / 5, int(rng.integers(1 << 30)), 2)
        elif pattern == 1:
            a = rng.uniform(0, np.pi)
            shade = 0.75 + 0.4 * (np.sin((xx * np.cos(a) + yy * np.sin(a)) / rng.uniform(1.5, 4))
                                  > 0)
        else:
            cell = rng.uniform(3.0, 8.0)
            shade = 0.75 + 0.4 * ((np.floor(xx / cell) + np.floor(yy / cell)) % 2)
        _composite(img, (slice(None), slice(None)), np.clip(0.5 - sdf, 0, 1).astype(np.float32),
                   colour * shade[..., None].astype(np.float32))
    return img.astype(np.float32)


def _place_object(rng: np.random.Generator, cls: int, height: int,
                  width: int) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
    """Draw one object at a random pose: its region, sdf in pixels and rgb there (None if off-image)."""
    prm = sample_object_params(cls, rng)
    sv = rng.uniform(0.28, 0.6) * min(height, width)
    su = sv * prm["aspect"]
    cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
    reach = 1.2 * np.hypot(su, sv)
    rows = slice(max(0, int(cy - reach)), min(height, int(cy + reach) + 2))
    cols = slice(max(0, int(cx - reach)), min(width, int(cx + reach) + 2))
    if rows.stop <= rows.start or cols.stop <= cols.start:
        return None
    yy, xx = np.mgrid[rows, cols].astype(np.float64)
    cos, sin = np.cos(prm["rotation"]), np.sin(prm["rotation"])
    u = ((xx - cx) * cos + (yy - cy) * sin) / su
    v = (-(xx - cx) * sin + (yy - cy) * cos) / sv
    if prm["flip"]:
        u = -u
    parts = draw_object(cls, u, v, prm)
    unit = min(su, sv)  # object units → pixels (approximate for anisotropic scaling)
    sdf = np.min([p[0] for p in parts], axis=0) * unit
    rgb = np.array(parts[0][1], dtype=np.float32)
    for part_sdf, part_rgb in parts[1:]:
        a = np.clip(0.5 - part_sdf * unit, 0.0, 1.0).astype(np.float32)[..., None]
        rgb = rgb + (part_rgb - rgb) * a
    light_dir = rng.uniform(-1, 1, 2)
    rgb = rgb * (1.0 + 0.15 * (u * light_dir[0] + v * light_dir[1]))[..., None]
    return (rows, cols), sdf, rgb.astype(np.float32)


def render_voc_image(rng: np.random.Generator, height: int, width: int) -> VocImage:
    """Render one synthetic_voc image.

    Args:
        rng: the image's random generator (see :func:`voc_sample_rng`).
        height, width: image size in pixels.

    Returns:
        :class:`VocImage` with 1–4 visible objects (each at least 35 % visible).
    """
    img = _background(rng, height, width)
    label = np.zeros((height, width), np.uint8)
    instances = np.zeros((height, width), np.uint8)
    classes: list[int] = []
    areas: list[int] = []
    wanted = int(rng.integers(1, 5))
    choices = sorted(VOC_OBJECT_CLASSES)
    for _attempt in range(4 * wanted):
        if len(classes) == wanted:
            break
        cls = int(choices[rng.integers(len(choices))])
        placed = _place_object(rng, cls, height, width)
        if placed is None:
            continue
        region, sdf, rgb = placed
        inside = sdf < 0
        trial = instances.copy()
        trial[region][inside] = len(classes) + 1
        area = int(inside.sum())
        counts = np.bincount(trial.ravel(), minlength=len(classes) + 2)
        if area < 30 or any(counts[k + 1] < _MIN_VISIBLE * areas[k] for k in range(len(areas))):
            continue
        instances = trial
        label[region][inside] = cls
        _composite(img, region, np.clip(0.5 - sdf, 0.0, 1.0).astype(np.float32), rgb)
        classes.append(cls)
        areas.append(area)

    # VOC-style "void" band around every object outline (also between touching objects)
    edge = np.zeros_like(instances, dtype=bool)
    dv = instances[1:, :] != instances[:-1, :]
    dh = instances[:, 1:] != instances[:, :-1]
    edge[1:, :] |= dv
    edge[:-1, :] |= dv
    edge[:, 1:] |= dh
    edge[:, :-1] |= dh
    label[binary_dilation(edge, structure=np.ones((3, 3), bool))] = IGNORE_INDEX

    yy, xx = np.mgrid[0:height, 0:width]
    direction = rng.uniform(-1, 1, 2)
    gradient = 1.0 + rng.uniform(0.0, 0.3) * ((xx / width - 0.5) * direction[0]
                                              + (yy / height - 0.5) * direction[1])
    gain = rng.uniform(0.75, 1.2) * np.exp(rng.normal(0.0, 0.06, 3))
    img = img * gradient[..., None] * gain + rng.normal(0.0, rng.uniform(0.005, 0.02), img.shape)
    image = np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)
    return VocImage(image=image, label=label, instances=instances, classes=classes)


def write_voc_sample(root: Path, image_id: str, rng: np.random.Generator, height: int,
                     width: int, palette: np.ndarray) -> dict[int, int]:
    """Render one image and write ``JPEGImages/<id>.jpg`` (quality 95),
    ``SegmentationClass/<id>.png`` (mode "P", VOC palette) and ``SegmentationClassAug/<id>.png``
    (mode "L", same indices) under ``root``; return the label's value → pixel count."""
    sample = render_voc_image(rng, height, width)
    jpg = root / "JPEGImages" / f"{image_id}.jpg"
    jpg.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sample.image).save(jpg, format="JPEG", quality=95)
    save_png(root / "SegmentationClass" / f"{image_id}.png", sample.label, "P", palette)
    save_png(root / "SegmentationClassAug" / f"{image_id}.png", sample.label, "L")
    values, counts = np.unique(sample.label, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}
