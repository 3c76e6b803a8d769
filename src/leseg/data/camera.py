"""Camera intrinsics of Cityscapes-layout data: reading ``camera/*.json`` and following resizes,
crops and flips exactly (numpy only, cheap to import in worker processes).

Pixel centres are at integer coordinates. Resize by (s_x, s_y): f ← s f, c ← s (c + ½) − ½; crop
at (x_0, y_0): c ← c − (x_0, y_0); horizontal flip of a width-W image: c_x ← W − 1 − c_x.
:func:`reference_hflip_intrinsics` is the flip of Hoyer et al.'s code (issue #8 there, a bug).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["camera_baseline", "crop_intrinsics", "disparity_to_depth", "hflip_intrinsics",
           "load_camera_json",
           "reference_hflip_intrinsics", "resize_intrinsics"]


def resize_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Intrinsics after resizing the image by (sx, sy) (new size / old size per axis).

    Pixel centres stay at integer coordinates (align_corners=False resampling), so
    c' = s (c + ½) − ½ and f' = s f.

    Args:
        K: (3, 3) float intrinsics in pixels.

    Returns:
        A new (3, 3) float64 array.
    """
    K = np.array(K, dtype=np.float64)
    K[0, 0] *= sx
    K[1, 1] *= sy
    K[0, 2] = sx * (K[0, 2] + 0.5) - 0.5
    K[1, 2] = sy * (K[1, 2] + 0.5) - 0.5
    return K


def crop_intrinsics(K: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """Intrinsics of the crop whose top-left pixel is (x0, y0): c ← c − (x0, y0)."""
    K = np.array(K, dtype=np.float64)
    K[0, 2] -= x0
    K[1, 2] -= y0
    return K


def hflip_intrinsics(K: np.ndarray, width: int) -> np.ndarray:
    """Intrinsics of the horizontally flipped width-``width`` image: c_x ← W − 1 − c_x."""
    K = np.array(K, dtype=np.float64)
    K[0, 2] = width - 1 - K[0, 2]
    return K


def reference_hflip_intrinsics(K: np.ndarray, width: int, height: int) -> np.ndarray:
    """The reference code's flip (Hoyer et al. issue #8, a bug): (c_x, c_y) ← (W − c_x, H − c_y)."""
    K = np.array(K, dtype=np.float64)
    K[0, 2] = width - K[0, 2]
    K[1, 2] = height - K[1, 2]
    return K


def load_camera_json(path: str | os.PathLike, original: bool = False) -> np.ndarray:
    """(3, 3) float64 intrinsics from a Cityscapes ``*_camera.json``.

    Args:
        path: the json file, with ``intrinsic: {fx, fy, u0, v0}`` in pixels.
        original: read ``leseg_original_intrinsic`` (the full-resolution values kept by
            :mod:`leseg.data.downsample`) when present.

    Raises:
        FileNotFoundError: missing file; ValueError: not json or a key missing (names file and key).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"camera file not found: {path}")
    try:
        content = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"camera file {path} is not valid json: {err}") from err
    key = "leseg_original_intrinsic" if original and "leseg_original_intrinsic" in content \
        else "intrinsic"
    intr = content.get(key)
    if not isinstance(intr, dict):
        raise ValueError(f"camera file {path} has no {key!r} object (expected fx, fy, u0, v0)")
    missing = [k for k in ("fx", "fy", "u0", "v0") if k not in intr]
    if missing:
        raise ValueError(f"camera file {path}: {key} lacks {missing} (expected fx, fy, u0, v0)")
    return np.array([[intr["fx"], 0.0, intr["u0"]], [0.0, intr["fy"], intr["v0"]],
                     [0.0, 0.0, 1.0]], dtype=np.float64)


def camera_baseline(path: str | os.PathLike) -> float:
    """Stereo baseline (m) from ``extrinsic.baseline`` of a camera json (names the file if absent)."""
    path = Path(path)
    content = json.loads(path.read_text())
    try:
        return float(content["extrinsic"]["baseline"])
    except (KeyError, TypeError) as err:
        raise ValueError(f"camera file {path} has no extrinsic.baseline (needed to turn "
                         f"disparity into depth)") from err


def disparity_to_depth(png: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """Cityscapes disparity PNG values → metric depth.

    d = (p − 1) / 256 pixels for p > 0 (p = 0: invalid), depth = baseline · fx / d.

    Args:
        png: (H, W) integer array as stored; fx: focal length in pixels of the disparity map;
            baseline: stereo baseline in metres.

    Returns:
        (H, W) float32 depth in metres, 0 where invalid (p ≤ 1).
    """
    d = (png.astype(np.float64) - 1.0) / 256.0
    depth = np.zeros(png.shape, np.float32)
    ok = d > 0
    depth[ok] = (baseline * fx / d[ok]).astype(np.float32)
    return depth


