"""Cityscapes fine-annotation semantic segmentation (Cordts et al., CVPR 2016), 19 trainId classes.

Official layout under ``root``::

    leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png   (used when present)
    gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png        (else: mapped in code)

Sample names are ``<city>_<seq>_<frame>`` (e.g. ``frankfurt_000000_000294``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from leseg.data.io import check_same_size, missing_files_message, read_image, read_label
from leseg.data.labels import (
    CITYSCAPES_INFO,
    CITYSCAPES_MAX_LABELID,
    IGNORE_INDEX,
    DatasetInfo,
    check_label_values,
    invalid_label_values,
    labelid_to_trainid,
)
from leseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD, to_sample

IMAGE_SUFFIX = "_leftImg8bit.png"
TRAINID_SUFFIX = "_gtFine_labelTrainIds.png"
LABELID_SUFFIX = "_gtFine_labelIds.png"


def list_cityscapes_frames(root: str | os.PathLike, split: str = "train") -> dict[str, Path]:
    """All frames of a Cityscapes split, sorted by name.

    Args:
        root: dataset root holding ``leftImg8bit/``.
        split: ``train``, ``val``, ``test`` (any folder under ``leftImg8bit/``).

    Returns:
        name (``<city>_<seq>_<frame>``) → image path, in sorted name order.

    Raises:
        FileNotFoundError: the root, the split folder or any frame is missing; the message names
            the root and the layout expected.
    """
    root = Path(root)
    pattern = f"{root}/leftImg8bit/{split}/<city>/*{IMAGE_SUFFIX}"
    if not root.is_dir():
        raise FileNotFoundError(f"Cityscapes root {root} does not exist; expected {pattern} "
                                f"(see data/README.md)")
    frames = sorted((root / "leftImg8bit" / split).glob(f"*/*{IMAGE_SUFFIX}"))
    if not frames:
        raise FileNotFoundError(f"no Cityscapes images for split {split!r} under {root}; expected "
                                f"{pattern} (see data/README.md)")
    return {p.name[: -len(IMAGE_SUFFIX)]: p for p in frames}


def _warn_dropped(names: list[str], reason: str, skipped: list[tuple[str, str]]) -> None:
    import warnings

    warnings.warn(f"on_missing=skip: dropping {len(names)} id(s): {reason}: {names[:5]}",
                  stacklevel=3)
    skipped += [(n, reason) for n in names]


class CityscapesSegmentation(Dataset):
    """Cityscapes images with 19-class trainId labels.

    Labels come from ``*_gtFine_labelTrainIds.png`` when present, otherwise from
    ``*_gtFine_labelIds.png`` mapped through ``labels.CITYSCAPES_LABELID_TO_TRAINID`` (unevaluated
    classes and license plate → 255). With ``label_dir``, labels are read from
    ``<label_dir>/<name>.png`` holding trainIds directly (pseudo-masks).

    File existence is checked at construction; each loaded sample is checked cheaply (image
    decodes fully, sizes match, label values valid).

    Args:
        root: dataset root (``leftImg8bit/`` and ``gtFine/`` below it).
        split: folder under ``leftImg8bit/`` (``train``, ``val``, ``test``).
        ids: restrict to these sample names, kept in this order (e.g. from a split file).
        transforms: joint augmentation (``transforms.build_transforms``) or None.
        label_dir: folder with ``<name>.png`` trainId maps replacing the gtFine labels.
        ids_source: where ``ids`` came from (a split file), named in errors.
        mean, std: image normalisation (ImageNet by default).
        on_missing: ``raise`` (default) or ``skip``: drop ids not in the split and frames without
            a label file, with a warning; they are listed in :attr:`skipped` as ``(id, reason)``.

    Sample (``__getitem__``): ``image`` float32 (3, H, W) normalised, ``label`` int64 (H, W) with
    trainIds 0..18 and 255 = ignore, ``name`` str.

    Raises:
        FileNotFoundError: missing root/split folder (names the expected layout), a label file
            missing (names it), or an id not in the split (names ``ids_source`` and the id).
        ImageDecodeError / ValueError (at load): truncated image, wrong label mode, label values
            outside [0, 19) ∪ {255} or labelIds above 33 (names the file and values), image/label
            size mismatch (names both files and sizes).
    """

    info: DatasetInfo = CITYSCAPES_INFO

    def __init__(self, root: str | os.PathLike, split: str = "train",
                 ids: Sequence[str] | None = None,
                 transforms: Callable[..., dict] | None = None,
                 label_dir: str | os.PathLike | None = None, *, ids_source: str | None = None,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, on_missing: str = "raise") -> None:
        self.root = Path(root)
        self.split = split
        self.transforms = transforms
        self.on_missing = on_missing
        self.skipped: list[tuple[str, str]] = []
        self.label_dir = Path(label_dir) if label_dir is not None else None
        self.mean, self.std = tuple(mean), tuple(std)
        frames = list_cityscapes_frames(self.root, split)
        if ids is not None:
            unknown = [i for i in ids if i not in frames]
            if unknown and on_missing == "skip":
                _warn_dropped(unknown, f"not a frame of {self.root}/leftImg8bit/{split} (listed "
                                       f"in {ids_source or 'the given ids'})", self.skipped)
                ids, unknown = [i for i in ids if i in frames], []
            if unknown:
                raise FileNotFoundError(
                    f"{len(unknown)} id(s) from {ids_source or 'the given ids'} are not frames of "
                    f"{self.root}/leftImg8bit/{split}: {unknown[:5]}")
            frames = {i: frames[i] for i in ids}
        self.names: list[str] = list(frames)
        self.image_paths: list[Path] = list(frames.values())
        self.label_paths, self.label_is_labelid = self._find_labels()

    def _find_labels(self) -> tuple[list[Path], list[bool]]:
        paths, is_labelid, missing = [], [], []
        for name, image in zip(self.names, self.image_paths):
            if self.label_dir is not None:
                path, labelid = self.label_dir / f"{name}.png", False
            else:
                gt = self.root / "gtFine" / self.split / image.parent.name
                path, labelid = gt / f"{name}{TRAINID_SUFFIX}", False
                if not path.is_file():
                    path, labelid = gt / f"{name}{LABELID_SUFFIX}", True
            if not path.is_file():
                missing.append(path)
            paths.append(path)
            is_labelid.append(labelid)
        if missing and self.on_missing == "skip":
            drop = {i for i, p in enumerate(paths) if not p.is_file()}
            _warn_dropped([self.names[i] for i in sorted(drop)], "no label file", self.skipped)
            keep = [i for i in range(len(paths)) if i not in drop]
            self.names = [self.names[i] for i in keep]
            self.image_paths = [self.image_paths[i] for i in keep]
            return [paths[i] for i in keep], [is_labelid[i] for i in keep]
        if missing:
            where = (f"{self.label_dir}/<name>.png" if self.label_dir is not None else
                     f"{self.root}/gtFine/{self.split}/<city>/<name>{{{TRAINID_SUFFIX},"
                     f"{LABELID_SUFFIX}}}")
            raise FileNotFoundError(missing_files_message(missing, "label file(s)",
                                                          f"; expected {where}"))
        return paths, is_labelid

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Untransformed, validated pair: image (H, W, 3) uint8 RGB and label (H, W) uint8 trainIds.

        Raises:
            ImageDecodeError, ValueError: see the class docstring.
        """
        image_path, label_path = self.image_paths[index], self.label_paths[index]
        image = read_image(image_path)
        label = read_label(label_path)
        check_same_size(image, label, image_path, label_path)
        if self.label_is_labelid[index]:
            bad = invalid_label_values(label, CITYSCAPES_MAX_LABELID + 1, IGNORE_INDEX)
            if bad:
                raise ValueError(f"{label_path}: values {bad} are not Cityscapes labelIds "
                                 f"(0..{CITYSCAPES_MAX_LABELID})")
            label = labelid_to_trainid(label)
        check_label_values(label, self.info.num_classes, IGNORE_INDEX, str(label_path))
        return image, label.astype(np.uint8, copy=False)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, label = self.load(index)
        return to_sample(image, label, self.names[index], self.transforms, self.mean, self.std)
