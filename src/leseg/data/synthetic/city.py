"""``synthetic_city``: write procedural street sequences in the official Cityscapes layout.

See :mod:`leseg.data.synthetic` for the layout, classes, camera model and units. One sample =
one sequence (a rigid :class:`~leseg.data.synthetic.city_scene.CityScene`) = frames 18, 19, 20, of
which frame 19 is the annotated one.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .city_render import CityFrame, render_city_frame
from .city_scene import ANNOTATED_FRAME, CITYSCAPES_COLORS, CityScene, sample_city_scene
from .storage import save_png

__all__ = ["CITY_CITIES", "CitySample", "city_sample_ids", "city_scene_for",
           "disparity_to_png", "write_city_sample"]

CITY_CITIES = {"train": ("synthcity_a", "synthcity_b"), "val": ("synthcity_v",)}
"""Cities per split; train samples alternate between the two train cities."""

CAMERA_X_M = 1.7
"""Camera position ahead of the vehicle reference point (m), as in Cityscapes ``camera/*.json``."""

_KIND_CODE = 1  # separates the city generator's random streams from the VOC generator's
_SPLIT_CODES = {"train": 0, "val": 1}
_COLOR_LUT = np.zeros((256, 4), np.uint8)
_COLOR_LUT[:, 3] = 255
for _label_id, _rgb in CITYSCAPES_COLORS.items():
    _COLOR_LUT[_label_id, :3] = _rgb


@dataclass(frozen=True)
class CitySample:
    """Identity of one synthetic_city sample: split, city, sequence number and its random seed."""

    split: str
    index: int
    city: str
    sequence: int
    seed: int

    def stem(self, frame: int = ANNOTATED_FRAME) -> str:
        """``<city>_<seq:06d>_<frame:06d>``, the Cityscapes file-name stem of ``frame``."""
        return f"{self.city}_{self.sequence:06d}_{frame:06d}"


def city_sample_ids(split: str, count: int, seed: int) -> list[CitySample]:
    """The ``count`` samples of ``split`` ("train" or "val") of a dataset generated with ``seed``.

    Raises:
        ValueError: unknown split.
    """
    if split not in CITY_CITIES:
        raise ValueError(f"split must be one of {sorted(CITY_CITIES)}, got {split!r}")
    cities = CITY_CITIES[split]
    return [CitySample(split, i, cities[i % len(cities)], i // len(cities), seed)
            for i in range(count)]


def city_scene_for(sample: CitySample, height: int, width: int) -> CityScene:
    """The scene of ``sample``: a function of (seed, split, index) only, so samples are independent."""
    rng = np.random.default_rng([sample.seed, _KIND_CODE, _SPLIT_CODES[sample.split],
                                 sample.index])
    return sample_city_scene(rng, height, width)


def disparity_to_png(depth: np.ndarray, fx: float, baseline: float) -> np.ndarray:
    """Encode metric depth as a Cityscapes disparity PNG array.

    Args:
        depth: (H, W) depth along the optical axis in metres; +inf (or non-positive) = invalid.
        fx: focal length in pixels; baseline: stereo baseline in metres.

    Returns:
        (H, W) uint16 p with disparity d = baseline · fx / depth (pixels) = (p − 1) / 256 for p > 0
        and p = 0 where invalid. Disparities are rounded to 1/256 px and clipped to [0, 255.996].
    """
    valid = np.isfinite(depth) & (depth > 0)
    disparity = np.zeros(depth.shape, np.float64)
    disparity[valid] = baseline * fx / depth[valid]
    p = np.clip(np.rint(disparity * 256.0) + 1.0, 1, 65535)
    return np.where(valid, p, 0).astype(np.uint16)


def _camera_json(scene: CityScene) -> dict:
    cam = scene.camera
    return {"extrinsic": {"baseline": cam.baseline, "pitch": 0.0, "roll": 0.0, "x": CAMERA_X_M,
                          "y": 0.0, "yaw": 0.0, "z": cam.mount_height},
            "intrinsic": {"fx": cam.fx, "fy": cam.fy, "u0": cam.cx, "v0": cam.cy}}


def _vehicle_json(scene: CityScene, sample: CitySample) -> dict:
    return {"gpsHeading": 0.0, "gpsLatitude": 50.0 + 0.001 * sample.sequence,
            "gpsLongitude": 8.6 + 0.001 * sample.index, "outsideTemperature": 18.0,
            "speed": scene.speed, "yawRate": 0.0}


def write_city_sample(root: Path, sample: CitySample, height: int, width: int) -> dict[int, int]:
    """Render and write every file of one sample under ``root``; return its labelId pixel counts.

    Writes (``<d>`` = ``<split>/<city>``, ``<stem>`` = ``<city>_<seq>_000019``):
    ``leftImg8bit/<d>/<stem>_leftImg8bit.png``, ``leftImg8bit_sequence/<d>/<city>_<seq>_<f>_
    leftImg8bit.png`` for f = 18, 19, 20, ``gtFine/<d>/<stem>_gtFine_labelIds.png`` and
    ``_gtFine_color.png``, ``camera/<d>/<stem>_camera.json``, ``vehicle/<d>/<stem>_vehicle.json``
    and ``disparity/<d>/<stem>_disparity.png``.
    """
    scene = city_scene_for(sample, height, width)
    rel = Path(sample.split) / sample.city
    stem = sample.stem()
    frames: dict[int, CityFrame] = {f: render_city_frame(scene, f)
                                    for f in (ANNOTATED_FRAME - 1, ANNOTATED_FRAME,
                                              ANNOTATED_FRAME + 1)}
    for f, fr in frames.items():
        save_png(root / "leftImg8bit_sequence" / rel / f"{sample.stem(f)}_leftImg8bit.png",
                 fr.image, "RGB")
    annotated = frames[ANNOTATED_FRAME]
    image_path = root / "leftImg8bit" / rel / f"{stem}_leftImg8bit.png"
    image_path.parent.mkdir(parents=True, exist_ok=True)  # the same bytes as sequence frame 19
    shutil.copyfile(root / "leftImg8bit_sequence" / rel / f"{stem}_leftImg8bit.png", image_path)
    save_png(root / "gtFine" / rel / f"{stem}_gtFine_labelIds.png", annotated.label_ids, "L")
    save_png(root / "gtFine" / rel / f"{stem}_gtFine_color.png",
             _COLOR_LUT[annotated.label_ids], "RGBA")
    save_png(root / "disparity" / rel / f"{stem}_disparity.png",
             disparity_to_png(annotated.depth, scene.camera.fx, scene.camera.baseline), "I;16")
    for folder, content in (("camera", _camera_json(scene)),
                            ("vehicle", _vehicle_json(scene, sample))):
        path = root / folder / rel / f"{stem}_{folder}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content, indent=2) + "\n")
    ids, counts = np.unique(annotated.label_ids, return_counts=True)
    return {int(i): int(c) for i, c in zip(ids, counts, strict=True)}
