"""KITTI raw sequences with rectified intrinsics and projected LiDAR depth, for depth evaluation.

Layout (KITTI raw, Geiger et al. IJRR 2013; projected depth as in TRI's packnet-sfm "KITTI_tiny")::

    <root>/<date>/calib_cam_to_cam.txt                                   P_rect_02 (3×4)
    <root>/<date>/<drive>/image_02/data/<frame:010d>.png                 left colour camera
    <root>/<date>/<drive>/proj_depth/velodyne/image_02/<frame:010d>.npz  key ``velodyne_depth``,
                                                                         metres, 0 = no point

A sample is frame f with its neighbours f − 1 and f + 1 (targets are the frames whose neighbours
exist), the intrinsics K = P_rect_02[:, :3] rescaled to the returned frames, and the LiDAR depth of
frame f **at the original resolution** (evaluate by upsampling the prediction to it, the Eigen
protocol). Same batch keys as :class:`leseg.data.sequences.CityscapesSequence`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from leseg.data.io import read_image
from leseg.data.sequences import resize_intrinsics

__all__ = ["KittiRawSequence", "read_kitti_calibration"]

_FRAME = re.compile(r"^(\d+)\.png$")


def read_kitti_calibration(path: str | os.PathLike, key: str = "P_rect_02") -> np.ndarray:
    """(3, 3) float64 intrinsics from ``calib_cam_to_cam.txt``: the left 3×3 of the 3×4 ``key``.

    Raises:
        FileNotFoundError: missing file. ValueError: ``key`` absent or not 12 numbers (names the
            file and the key).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"KITTI calibration file not found: {path}")
    for line in path.read_text().splitlines():
        name, _, values = line.partition(":")
        if name.strip() == key:
            try:
                numbers = [float(v) for v in values.split()]
            except ValueError as err:
                raise ValueError(f"{path}: {key} holds non-numbers: {values!r}") from err
            if len(numbers) != 12:
                raise ValueError(f"{path}: {key} must hold 12 numbers (3×4), got {len(numbers)}")
            return np.array(numbers, dtype=np.float64).reshape(3, 4)[:, :3]
    raise ValueError(f"{path} has no {key!r} line")


class KittiRawSequence(Dataset):
    """Frame triplets of one KITTI raw drive with intrinsics and LiDAR depth.

    Args:
        root: folder holding ``<date>/``.
        drive: drive folder name, e.g. ``2011_09_26_drive_0023_sync`` (its date is the prefix).
        camera: ``image_02`` (left colour) or ``image_03``.
        offsets: neighbour offsets, target = 0 (default −1, 0, 1: target at index 1).
        resize: (H, W) of the returned frames (e.g. [192, 640]); None = original 375×1242.
        with_depth: load the projected LiDAR depth.

    Sample: ``frames`` float32 (T, 3, H, W) in [0, 1], ``intrinsics`` float32 (3, 3) in pixels of
    those frames, ``depth`` float32 (H0, W0) metres at the original resolution (0 = no point),
    ``name`` ``<drive>/<frame>``.

    Raises:
        FileNotFoundError: missing drive, calibration, frames or depth files (names them).
        ValueError: malformed calibration; a depth file without ``velodyne_depth`` (names it).
    """

    def __init__(self, root: str | os.PathLike, drive: str, camera: str = "image_02",
                 offsets: Sequence[int] = (-1, 0, 1), resize: Sequence[int] | None = None,
                 with_depth: bool = True) -> None:
        self.root = Path(root)
        date = drive[:10]
        self.drive_dir = self.root / date / drive
        self.image_dir = self.drive_dir / camera / "data"
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"KITTI frames folder not found: {self.image_dir} (expected "
                                    f"<root>/<date>/<drive>/{camera}/data/<frame>.png)")
        self.K = read_kitti_calibration(self.root / date / "calib_cam_to_cam.txt",
                                        f"P_rect_{camera[-2:]}")
        self.offsets = tuple(int(o) for o in offsets)
        self.resize = tuple(int(v) for v in resize) if resize is not None else None
        frames = sorted(int(m.group(1)) for p in self.image_dir.iterdir()
                        if (m := _FRAME.match(p.name)))
        present = set(frames)
        self.targets = [f for f in frames if all(f + o in present for o in self.offsets)]
        if not self.targets:
            raise FileNotFoundError(f"no frame of {self.image_dir} has all neighbours "
                                    f"{self.offsets}")
        self.drive, self.camera = drive, camera
        self.depth_dir = self.drive_dir / "proj_depth" / "velodyne" / camera
        if with_depth:
            missing = [self._depth_path(f) for f in self.targets
                       if not self._depth_path(f).is_file()]
            if missing:
                raise FileNotFoundError(f"{len(missing)} projected LiDAR depth file(s) missing: "
                                        f"{[str(p) for p in missing[:3]]}")
        self.with_depth = with_depth

    def _image_path(self, frame: int) -> Path:
        return self.image_dir / f"{frame:010d}.png"

    def _depth_path(self, frame: int) -> Path:
        return self.depth_dir / f"{frame:010d}.npz"

    def __len__(self) -> int:
        return len(self.targets)

    def load_depth(self, frame: int) -> np.ndarray:
        """(H0, W0) float32 LiDAR depth in metres of ``frame`` (0 = no point)."""
        path = self._depth_path(frame)
        with np.load(path) as z:
            if "velodyne_depth" not in z.files:
                raise ValueError(f"{path} has no 'velodyne_depth' array (has {z.files})")
            return np.asarray(z["velodyne_depth"], dtype=np.float32)

    def __getitem__(self, index: int) -> dict[str, Any]:
        target = self.targets[index]
        images = [read_image(self._image_path(target + o)) for o in self.offsets]
        frames = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
        h, w = frames.shape[-2:]
        K = self.K
        if self.resize is not None and self.resize != (h, w):
            nh, nw = self.resize
            frames = F.interpolate(frames, size=(nh, nw), mode="bilinear", align_corners=False,
                                   antialias=True).clamp(0, 1)
            K = resize_intrinsics(K, nw / w, nh / h)
        sample: dict[str, Any] = {"frames": frames.contiguous(),
                                  "intrinsics": torch.as_tensor(K, dtype=torch.float32)}
        if self.with_depth:
            sample["depth"] = torch.from_numpy(self.load_depth(target))
        sample["name"] = f"{self.drive}/{target:010d}"
        return sample
