"""Cityscapes-layout video sequences for self-supervised depth: frame triplets with camera intrinsics.

Hoyer et al., "Three Ways to Improve Semantic Segmentation with Self-Supervised Depth Estimation"
(CVPR 2021, §3.1 and §4.1): every sample is a target frame with its neighbours
−1 and +1 from ``leftImg8bit_sequence`` (frame numbers f − 1, f, f + 1 of the same snippet), the
camera intrinsics from ``camera/<split>/<city>/<stem>_camera.json`` (``intrinsic`` fx, fy, u0, v0
in pixels of the stored images) or, where a snippet has no camera file, from the ``intrinsics``
the user gives, and, when present, the gtFine label and the ``disparity`` ground truth of the
annotated frame. Layout under ``root``::

    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png            annotated frames
    leftImg8bit_sequence/<split>/<city>/<city>_<seq>_<frame±k>_leftImg8bit.png  their neighbours
                                                                (.png official, or .jpg)
    camera/<split>/<city>/<city>_<seq>_<frame>_camera.json                      optional with
                                                                                ``intrinsics``
    gtFine/<split>/<city>/<stem>_gtFine_label{TrainIds,Ids}.png                 optional
    disparity/<split>/<city>/<stem>_disparity.png                               optional

Geometric augmentation (resize, random crop, horizontal flip) is applied identically to all frames
and the intrinsics follow it exactly (pixel centres at integer coordinates):

* resize by (s_x, s_y): f_x ← s_x f_x, f_y ← s_y f_y, c_x ← s_x (c_x + ½) − ½, c_y likewise;
* crop at (x_0, y_0): c_x ← c_x − x_0, c_y ← c_y − y_0;
* horizontal flip of a width-W image: c_x ← W − 1 − c_x (c_y unchanged).

The reference code does neither of the first and third correctly (reference issues #8, #11: the
full-resolution Cityscapes intrinsics are used with 1024×512 images, and a flip also mirrors c_y).
``reproduce_reference_intrinsics_bug=True`` reproduces that: the intrinsics of the full-resolution
images (``leseg_original_intrinsic`` of a json rewritten by :mod:`leseg.data.downsample`, else
``intrinsic``) are never rescaled, a crop shifts them, and a flip maps (c_x, c_y) to (W − c_x,
H − c_y).

Colour augmentation (brightness, contrast, saturation 0.8–1.2, hue ±0.1 with probability 0.5, the
same for all frames of a sample) is returned separately as ``frames_aug``: as in monodepth2 the
networks see the jittered frames and the photometric loss compares the original ones.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from leseg.data.camera import (
    camera_baseline,
    crop_intrinsics,
    disparity_to_depth,
    hflip_intrinsics,
    load_camera_json,
    reference_hflip_intrinsics,
    resize_intrinsics,
)
from leseg.data.datamodules import collate_samples, head_subset, prepare_synthetic
from leseg.data.io import missing_files_message, read_image, read_label
from leseg.data.labels import CITYSCAPES_INFO, IGNORE_INDEX, check_label_values, labelid_to_trainid

__all__ = [
    "CityscapesSequence", "SequenceDataModule", "adjust_color", "crop_intrinsics",
    "intrinsics_matrix",
    "disparity_to_depth", "hflip_intrinsics", "load_camera_json", "reference_hflip_intrinsics",
    "resize_intrinsics",
]

IMAGE_SUFFIX = "_leftImg8bit.png"
SEQUENCE_SUFFIXES = ("_leftImg8bit.png", "_leftImg8bit.jpg")
"""Sequence frames: the official PNGs, or JPEG re-encodings (e.g. the vid2vid snippets)."""
INTRINSICS_KEYS = ("fx", "fy", "u0", "v0")
_STEM = re.compile(r"^(?P<city>.+)_(?P<seq>\d+)_(?P<frame>\d+)$")


# --------------------------------------------------------------------------------- colour jitter
def adjust_color(frames: torch.Tensor, brightness: float, contrast: float, saturation: float,
                 hue: float) -> torch.Tensor:
    """Apply one colour jitter to all frames: (T, 3, H, W) float in [0, 1] → same shape.

    Factors as torchvision's ``ColorJitter`` (brightness/contrast/saturation multiplicative, hue a
    shift in [−0.5, 0.5] of the hue circle), applied in that order.
    """
    from torchvision.transforms.v2 import functional as TF

    out = TF.adjust_brightness(frames, brightness)
    out = TF.adjust_contrast(out, contrast)
    out = TF.adjust_saturation(out, saturation)
    out = TF.adjust_hue(out, hue)
    return out.clamp(0, 1)


def intrinsics_matrix(intrinsics: Any, height: int, width: int) -> np.ndarray:
    """(3, 3) float64 K from user-given intrinsics, rescaled to a (height, width) frame.

    Args:
        intrinsics: mapping with ``fx``, ``fy``, ``u0``, ``v0`` (pixels, the names of Cityscapes'
            ``camera/*.json``) and optionally ``size: [H, W]``, the image size they refer to
            (default: the frame's own size). E.g. the Cityscapes aachen camera at 1024x2048:
            ``{fx: 2262.52, fy: 2265.30, u0: 1096.98, v0: 513.14, size: [1024, 2048]}``.
        height, width: size of the stored frames the returned K is for.

    Raises:
        ValueError: a key missing, an unknown key or a non-positive focal length / size.
    """
    values = dict(intrinsics)
    unknown = sorted(set(values) - {*INTRINSICS_KEYS, "size"})
    missing = [k for k in INTRINSICS_KEYS if k not in values]
    if unknown or missing:
        raise ValueError(f"data.intrinsics needs {list(INTRINSICS_KEYS)} (pixels) and optionally "
                         f"size [H, W]; missing {missing}, unknown {unknown}")
    fx, fy, u0, v0 = (float(values[k]) for k in INTRINSICS_KEYS)
    size = _pair(values.get("size"), "data.intrinsics.size") or (height, width)
    if fx <= 0 or fy <= 0:
        raise ValueError(f"data.intrinsics: focal lengths must be > 0, got fx={fx}, fy={fy}")
    K = np.array([[fx, 0.0, u0], [0.0, fy, v0], [0.0, 0.0, 1.0]], dtype=np.float64)
    if tuple(size) != (height, width):
        K = resize_intrinsics(K, width / size[1], height / size[0])
    return K


def _sequence_frame(folder: Path, stem: str) -> Path:
    """``folder/<stem>_leftImg8bit.jpg`` if only that exists, else the official ``.png`` path
    (which may not exist: it is then the name a missing-file error gives)."""
    png, jpg = (folder / f"{stem}{suffix}" for suffix in SEQUENCE_SUFFIXES)
    return jpg if not png.is_file() and jpg.is_file() else png


def _pair(value: Any, key: str) -> tuple[int, int] | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value, value
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f"{key} must be an int or [height, width] of positive ints, got {value}")
    return value


# --------------------------------------------------------------------------------------- dataset
class CityscapesSequence(Dataset):
    """Frame triplets (or any offsets) with intrinsics from a Cityscapes-layout dataset.

    Args:
        root: dataset root (layout in the module docstring).
        split: ``train`` / ``val`` / ``test``.
        ids: restrict to these target stems (``<city>_<seq>_<frame>``), in this order.
        offsets: frame offsets relative to the target; the batch's ``frames`` follow this order
            (default (−1, 0, 1): the target / annotated frame is at index 1).
        all_sequence_frames: targets are every frame of ``leftImg8bit_sequence`` whose neighbours
            exist (Hoyer's SDE pre-training) instead of the annotated ``leftImg8bit`` frames; no
            labels or depth then. The camera file is that of the snippet's annotated frame.
        resize: (H, W) every frame is resized to first (bilinear, antialiased); None = keep.
        crop_size: (H, W) random crop (train) — None = none.
        hflip: probability of a horizontal flip.
        color_jitter: probability of the colour jitter of the module docstring (0 = none); when
            > 0 the samples also carry ``frames_aug``.
        with_labels, with_depth: load gtFine labels / disparity depth: True, False or ``"auto"``
            (if the annotated frames have them). Ignored with ``all_sequence_frames``.
        reproduce_reference_intrinsics_bug: see the module docstring.
        intrinsics: used for snippets without a camera file: ``fx``, ``fy``, ``u0``, ``v0`` in
            pixels and optionally the ``size`` [H, W] they refer to (see
            :func:`intrinsics_matrix`); None = every snippet needs ``camera/*.json``.
        on_missing_sequence: ``raise`` (default) or ``skip``: annotated targets whose neighbour
            frames are absent are dropped with a warning (a sample holding snippets for only
            some annotated frames); listed in :attr:`skipped`.

    Sample: ``frames`` float32 (T, 3, H, W) RGB in [0, 1] (not normalised), ``intrinsics`` float32
    (3, 3) in pixels of those frames, ``name`` str, and optionally ``frames_aug`` (T, 3, H, W),
    ``label`` int64 (H, W) trainIds with 255 = ignore, ``depth`` float32 (H, W) metres from the
    disparity ground truth (0 = invalid).

    Raises:
        FileNotFoundError: missing root/split, neighbour frame, camera file (without
            ``intrinsics``), label or disparity file (names the files and the expected layout).
        ValueError: bad sizes, malformed camera json (names the file), crop larger than the image.
    """

    info = CITYSCAPES_INFO

    def __init__(self, root: str | os.PathLike, split: str = "train",
                 ids: Sequence[str] | None = None, *, offsets: Sequence[int] = (-1, 0, 1),
                 all_sequence_frames: bool = False,
                 resize: Sequence[int] | int | None = None,
                 crop_size: Sequence[int] | int | None = None, hflip: float = 0.0,
                 color_jitter: float = 0.0, with_labels: bool | str = "auto",
                 with_depth: bool | str = "auto",
                 reproduce_reference_intrinsics_bug: bool = False,
                 intrinsics: Any | None = None, on_missing_sequence: str = "raise") -> None:
        if on_missing_sequence not in ("raise", "skip"):
            raise ValueError(f"on_missing_sequence must be 'raise' or 'skip', got "
                             f"{on_missing_sequence!r}")
        self.root = Path(root)
        self.intrinsics = dict(intrinsics) if intrinsics is not None else None
        if self.intrinsics is not None:
            intrinsics_matrix(self.intrinsics, 1, 1)  # fail early on bad keys
        self.skipped: list[tuple[str, str]] = []
        self.split = split
        self.offsets = tuple(int(o) for o in offsets)
        if 0 not in self.offsets:
            raise ValueError(f"offsets {self.offsets} must contain 0 (the target frame)")
        self.resize = _pair(resize, "resize")
        self.crop_size = _pair(crop_size, "crop_size")
        self.hflip = float(hflip)
        self.color_jitter = float(color_jitter)
        self.bug = bool(reproduce_reference_intrinsics_bug)
        self.all_sequence_frames = bool(all_sequence_frames)
        seq_dir = self.root / "leftImg8bit_sequence" / split
        if not seq_dir.is_dir():
            raise FileNotFoundError(f"sequence folder {seq_dir} does not exist; expected "
                                    f"{seq_dir}/<city>/<city>_<seq>_<frame>{IMAGE_SUFFIX}")
        if self.all_sequence_frames:
            files = sorted(p for suffix in SEQUENCE_SUFFIXES for p in seq_dir.glob(f"*/*{suffix}"))
        else:
            files = sorted((self.root / "leftImg8bit" / split).glob(f"*/*{IMAGE_SUFFIX}"))
        if not files:
            raise FileNotFoundError(f"no frames for split {split!r} under {self.root} (expected "
                                    f"{'leftImg8bit_sequence' if self.all_sequence_frames else 'leftImg8bit'}"
                                    f"/{split}/<city>/*{IMAGE_SUFFIX})")
        stems = {p.name[: -len(IMAGE_SUFFIX)]: p.parent.name for p in files}  # same length: .jpg
        if ids is not None:
            unknown = [i for i in ids if i not in stems]
            if unknown:
                raise FileNotFoundError(f"{len(unknown)} id(s) are not frames of {self.root} "
                                        f"split {split}: {unknown[:5]}")
            stems = {i: stems[i] for i in ids}
        self.names: list[str] = []
        self.frame_paths: list[list[Path]] = []
        self.camera_paths: list[Path | None] = []
        missing: list[Path] = []
        cameras = self._camera_index()
        for stem, city in stems.items():
            m = _STEM.match(stem)
            if m is None:
                raise ValueError(f"frame name {stem!r} under {self.root} is not "
                                 f"<city>_<seq>_<frame>")
            frame, width = int(m["frame"]), len(m["frame"])
            paths = [_sequence_frame(seq_dir / city,
                                     f"{m['city']}_{m['seq']}_{frame + o:0{width}d}")
                     for o in self.offsets]
            absent = [p for p in paths if not p.is_file()]
            if self.all_sequence_frames and absent:
                continue  # first/last frame of a snippet: no neighbour, not a target
            if absent and on_missing_sequence == "skip":
                self.skipped.append((stem, f"no neighbour frame(s) {[p.name for p in absent]}"))
                continue
            missing.extend(absent)
            exact = self.root / "camera" / split / city / f"{stem}_camera.json"
            camera = exact if exact.is_file() else cameras.get((city, m["city"], m["seq"]))
            if camera is None and self.intrinsics is None:
                missing.append(self.root / "camera" / split / city / f"{stem}_camera.json")
            self.names.append(stem)
            self.frame_paths.append(paths)
            self.camera_paths.append(camera)
        if missing:
            raise FileNotFoundError(missing_files_message(
                missing, "sequence/camera file(s)",
                f"; expected leftImg8bit_sequence/{split}/<city>/<city>_<seq>_<frame±k>"
                f"{{{','.join(SEQUENCE_SUFFIXES)}}} and camera/{split}/<city>/<stem>_camera.json "
                f"(or give data.intrinsics for snippets without camera files)"))
        if self.skipped:
            import warnings

            warnings.warn(f"on_missing_sequence=skip: {len(self.skipped)} annotated frame(s) of "
                          f"{self.root} split {split} have no neighbour frames and are not "
                          f"targets: {[n for n, _ in self.skipped][:5]}", stacklevel=2)
        if not self.names:
            raise FileNotFoundError(f"no frame of {seq_dir} has all neighbours {self.offsets}")
        self.label_paths = self._optional(with_labels, "gtFine", ("_gtFine_labelTrainIds.png",
                                                                  "_gtFine_labelIds.png"))
        self.depth_paths = self._optional(with_depth, "disparity", ("_disparity.png",))

    def _camera_index(self) -> dict[tuple[str, str, str], Path]:
        """(city folder, city, seq) → the first camera file of that snippet."""
        index: dict[tuple[str, str, str], Path] = {}
        for p in sorted((self.root / "camera" / self.split).glob("*/*_camera.json")):
            m = _STEM.match(p.name[: -len("_camera.json")])
            if m is not None:
                index.setdefault((p.parent.name, m["city"], m["seq"]), p)
        return index

    def _optional(self, flag: bool | str, folder: str, suffixes: tuple[str, ...]) -> list[Path] | None:
        if flag not in (True, False, "auto"):
            raise ValueError(f"with_labels/with_depth must be true, false or 'auto', got {flag!r}")
        if flag is False or self.all_sequence_frames:
            return None
        paths, missing = [], []
        for stem, frames in zip(self.names, self.frame_paths):
            base = self.root / folder / self.split / frames[0].parent.name
            found = next((base / f"{stem}{s}" for s in suffixes if (base / f"{stem}{s}").is_file()),
                         None)
            if found is None:
                missing.append(base / f"{stem}{suffixes[0]}")
            paths.append(found)
        if missing:
            if flag == "auto":
                return None
            raise FileNotFoundError(missing_files_message(missing, f"{folder} file(s)",
                                                          f"; expected {folder}/{self.split}/"
                                                          f"<city>/<stem>{suffixes[0]}"))
        return paths

    def __len__(self) -> int:
        return len(self.names)

    # ------------------------------------------------------------------------------ loading
    def _load(self, index: int) -> dict[str, Any]:
        frames = [read_image(p) for p in self.frame_paths[index]]
        sizes = {f.shape[:2] for f in frames}
        if len(sizes) != 1:
            raise ValueError(f"frames of {self.names[index]} have different sizes {sorted(sizes)}: "
                             f"{[str(p) for p in self.frame_paths[index]]}")
        camera = self.camera_paths[index]
        h, w = frames[0].shape[:2]
        if camera is not None:
            K = load_camera_json(camera, original=self.bug)
        else:  # no camera file for this snippet: the user's values (checked at construction)
            K = intrinsics_matrix(self.intrinsics, h, w)
        out: dict[str, Any] = {"frames": frames, "K": K}
        if self.label_paths is not None:
            path = self.label_paths[index]
            label = read_label(path)
            if label.shape != (h, w):
                raise ValueError(f"label {path} is {label.shape} but the frames are {(h, w)}")
            if path.name.endswith("_gtFine_labelIds.png"):
                label = labelid_to_trainid(label)
            check_label_values(label, self.info.num_classes, IGNORE_INDEX, str(path))
            out["label"] = label
        if self.depth_paths is not None:
            path = self.depth_paths[index]
            if camera is None:
                raise FileNotFoundError(f"disparity {path} needs the camera file of "
                                        f"{self.names[index]} (baseline and fx) under "
                                        f"{self.root}/camera/{self.split}; none was found")
            png = read_label(path)
            fx = load_camera_json(camera)[0, 0] * png.shape[1] / w  # fx in disparity-map pixels
            out["depth"] = disparity_to_depth(png, fx, camera_baseline(camera))
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        raw = self._load(index)
        frames = torch.from_numpy(np.stack(raw["frames"])).permute(0, 3, 1, 2).float() / 255.0
        K = raw["K"]
        label = torch.from_numpy(raw["label"].astype(np.int64)) if "label" in raw else None
        depth = torch.from_numpy(raw["depth"]) if "depth" in raw else None
        h, w = frames.shape[-2:]
        # extra maps (label, depth) follow the frames with nearest resampling
        extras = {k: v for k, v in (("label", label), ("depth", depth)) if v is not None}
        for k, v in extras.items():
            if v.shape[-2:] != (h, w):
                extras[k] = F.interpolate(v[None, None].float(), size=(h, w),
                                          mode="nearest")[0, 0].to(v.dtype)
        if self.resize is not None and self.resize != (h, w):
            nh, nw = self.resize
            frames = F.interpolate(frames, size=(nh, nw), mode="bilinear", align_corners=False,
                                   antialias=True).clamp(0, 1)
            for k, v in extras.items():
                extras[k] = F.interpolate(v[None, None].float(), size=(nh, nw),
                                          mode="nearest")[0, 0].to(v.dtype)
            if not self.bug:
                K = resize_intrinsics(K, nw / w, nh / h)
            h, w = nh, nw
        if self.crop_size is not None:
            ch, cw = self.crop_size
            if ch > h or cw > w:
                raise ValueError(f"crop_size {self.crop_size} is larger than the frames {(h, w)} "
                                 f"of {self.names[index]}; set resize or a smaller crop")
            y0 = int(torch.randint(0, h - ch + 1, ()).item())
            x0 = int(torch.randint(0, w - cw + 1, ()).item())
            frames = frames[..., y0:y0 + ch, x0:x0 + cw]
            extras = {k: v[y0:y0 + ch, x0:x0 + cw] for k, v in extras.items()}
            K = crop_intrinsics(K, x0, y0)
            h, w = ch, cw
        if self.hflip > 0 and float(torch.rand(())) < self.hflip:
            frames = frames.flip(-1)
            extras = {k: v.flip(-1) for k, v in extras.items()}
            K = reference_hflip_intrinsics(K, w, h) if self.bug else hflip_intrinsics(K, w)
        sample: dict[str, Any] = {"frames": frames.contiguous(),
                                  "intrinsics": torch.as_tensor(K, dtype=torch.float32)}
        if self.color_jitter > 0:
            aug = frames
            if float(torch.rand(())) < self.color_jitter:
                b, c, s = (float(torch.empty(()).uniform_(0.8, 1.2)) for _ in range(3))
                hue = float(torch.empty(()).uniform_(-0.1, 0.1))
                aug = adjust_color(frames, b, c, s, hue)
            sample["frames_aug"] = aug.contiguous()
        for k, v in extras.items():
            sample[k] = v.contiguous()
        sample["name"] = self.names[index]
        return sample


# ----------------------------------------------------------------------------------- DataModule
class SequenceDataModule(L.LightningDataModule):
    """Train/val loaders of :class:`CityscapesSequence` (Hoyer et al.'s SDE).

    Args:
        name: dataset name (``cityscapes``, ``synthetic_city``).
        root: dataset root in the Cityscapes layout with ``leftImg8bit_sequence`` and ``camera``.
        num_classes, ignore_index: the label space of the annotated frames (19, 255).
        train_set, val_set: split folders.
        offsets: frame offsets (default −1, 0, 1; target at index 1).
        all_sequence_frames: train on every sequence frame with neighbours (see the dataset).
        resize: (H, W) all frames are resized to first (e.g. [512, 1024]); None = as stored.
        crop_size: training crop (H, W) (Hoyer: 512×512); validation uses whole frames.
        hflip, color_jitter: training augmentation probabilities (0.5 and 0.5 in the paper).
        reproduce_reference_intrinsics_bug: see :mod:`leseg.data.sequences`.
        intrinsics: ``{fx, fy, u0, v0[, size]}`` for snippets without ``camera/*.json`` (see
            :func:`intrinsics_matrix`); None = camera files required.
        on_missing_sequence: ``raise`` or ``skip`` annotated frames without neighbour frames.
        batch_size, val_batch_size, num_workers, pin_memory, persistent_workers: loader settings.
        max_train_samples, max_val_samples: keep only the first N samples (debug runs).
        synthetic: ``{"kind": "city", **params}``: generate ``root`` in ``prepare_data``.
        crop_name: descriptive (experiment names).
        **kwargs: further descriptive keys (stored in :attr:`extra_config`).

    Batches: ``frames`` (B, T, 3, H, W), ``intrinsics`` (B, 3, 3), ``name`` list, and
    ``frames_aug`` / ``label`` (B, H, W) / ``depth`` (B, H, W) when available.
    """

    def __init__(self, *, name: str, root: str, num_classes: int = 19, ignore_index: int = 255,
                 train_set: str = "train", val_set: str = "val",
                 offsets: Sequence[int] = (-1, 0, 1), all_sequence_frames: bool = False,
                 resize: Sequence[int] | None = None, crop_size: Sequence[int] | None = None,
                 hflip: float = 0.5, color_jitter: float = 0.5,
                 reproduce_reference_intrinsics_bug: bool = False,
                 intrinsics: dict | None = None, on_missing_sequence: str = "raise",
                 batch_size: int = 4, val_batch_size: int = 1, num_workers: int = 0,
                 pin_memory: bool = False, persistent_workers: bool = False,
                 max_train_samples: int | None = None, max_val_samples: int | None = None,
                 synthetic: dict | None = None, crop_name: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__()
        if num_classes != CITYSCAPES_INFO.num_classes or ignore_index != IGNORE_INDEX:
            raise ValueError(f"data {name!r}: the sequence data uses Cityscapes' "
                             f"{CITYSCAPES_INFO.num_classes} classes and ignore {IGNORE_INDEX}, got "
                             f"num_classes={num_classes}, ignore_index={ignore_index}")
        if batch_size < 1 or val_batch_size < 1:
            raise ValueError(f"data {name!r}: batch sizes must be >= 1")
        if synthetic is not None and "kind" not in synthetic:
            raise ValueError(f"data {name!r}: synthetic needs a 'kind' key, got {sorted(synthetic)}")
        self.name, self.root = name, Path(root)
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.train_set, self.val_set = train_set, val_set
        self.common = {"offsets": tuple(offsets), "resize": resize,
                       "reproduce_reference_intrinsics_bug": reproduce_reference_intrinsics_bug,
                       "intrinsics": dict(intrinsics) if intrinsics is not None else None,
                       "on_missing_sequence": on_missing_sequence}
        self.train_kwargs = {"all_sequence_frames": all_sequence_frames, "crop_size": crop_size,
                             "hflip": hflip, "color_jitter": color_jitter}
        self.batch_size, self.val_batch_size = batch_size, val_batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.persistent_workers = persistent_workers
        self.max_train_samples, self.max_val_samples = max_train_samples, max_val_samples
        self.synthetic = dict(synthetic) if synthetic is not None else None
        self.crop_name = crop_name
        self.extra_config = dict(kwargs)
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None

    @property
    def class_names(self) -> list[str]:
        """The 19 Cityscapes class names."""
        return list(CITYSCAPES_INFO.class_names)

    def prepare_data(self) -> None:
        """Generate the synthetic dataset into ``root`` when ``synthetic`` is set."""
        prepare_synthetic(self.synthetic, self.root)

    _head = staticmethod(head_subset)

    def setup(self, stage: str | None = None) -> None:
        """Build the train (fit) and val (fit/validate/test) datasets."""
        if stage in (None, "fit") and self.train_dataset is None:
            train = CityscapesSequence(self.root, self.train_set, **self.common,
                                       **self.train_kwargs)
            self.train_dataset = self._head(train, self.max_train_samples)
        if self.val_dataset is None:
            val = CityscapesSequence(self.root, self.val_set, **self.common)
            self.val_dataset = self._head(val, self.max_val_samples)

    def _loader(self, dataset: Dataset | None, batch_size: int, train: bool) -> DataLoader:
        if dataset is None:
            self.setup("fit" if train else "validate")
            dataset = self.train_dataset if train else self.val_dataset
        return DataLoader(dataset, batch_size=batch_size, shuffle=train,
                          drop_last=train and len(dataset) > batch_size,
                          num_workers=self.num_workers, pin_memory=self.pin_memory,
                          persistent_workers=self.persistent_workers and self.num_workers > 0,
                          collate_fn=collate_samples)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training triplets (random crop, flip, colour jitter)."""
        return self._loader(self.train_dataset, self.batch_size, True)

    def val_dataloader(self) -> DataLoader:
        """Whole validation triplets in order."""
        return self._loader(self.val_dataset, self.val_batch_size, False)

    def test_dataloader(self) -> DataLoader:
        """Same as :meth:`val_dataloader`."""
        return self.val_dataloader()
