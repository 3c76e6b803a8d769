"""PASCAL VOC 2012 semantic segmentation (Everingham et al., IJCV 2010), 21 classes, 255 = border.

``root`` is the ``VOC2012`` folder::

    JPEGImages/<id>.jpg
    SegmentationClass/<id>.png        official masks (1,464 train / 1,449 val)
    SegmentationClassAug/<id>.png     SBD-augmented masks (Hariharan et al., ICCV 2011; 10,582 train_aug)
    ImageSets/Segmentation/<split>.txt   ids, one per line (train, val, trainval, train_aug)

Default label folder (``label_subdir=None``): the ``val`` split (the official 1,449-image evaluation
set) always reads ``SegmentationClass``; every other split reads ``SegmentationClassAug`` when that
folder exists, else ``SegmentationClass``.
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
    IGNORE_INDEX,
    VOC_INFO,
    DatasetInfo,
    check_label_values,
    decode_voc_color_mask,
)
from leseg.data.splits import read_split_file
from leseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD, to_sample

OFFICIAL_LABELS = "SegmentationClass"
AUG_LABELS = "SegmentationClassAug"
EVAL_SPLITS = ("val",)


def default_label_subdir(root: str | os.PathLike, split: str) -> str:
    """``SegmentationClass`` for ``val`` or when ``<root>/SegmentationClassAug`` is absent, else
    ``SegmentationClassAug``."""
    if split in EVAL_SPLITS or not (Path(root) / AUG_LABELS).is_dir():
        return OFFICIAL_LABELS
    return AUG_LABELS


def voc_split_file(root: str | os.PathLike, split: str) -> Path:
    """``<root>/ImageSets/Segmentation/<split>.txt``."""
    return Path(root) / "ImageSets" / "Segmentation" / f"{split}.txt"


class VOCSegmentation(Dataset):
    """PASCAL VOC 2012 images with 21-class masks (0 = background, 255 = border/ignore).

    Label PNGs in palette mode (official) or grayscale give class indices directly; RGB colour
    renderings are decoded with the VOC colour map (unknown colours are an error). With
    ``label_dir``, labels are read from ``<label_dir>/<id>.png`` holding class indices directly
    (pseudo-masks). File existence is checked at construction; each loaded sample is checked
    cheaply (image decodes fully, sizes match, label values valid).

    Args:
        root: the ``VOC2012`` folder.
        split: name of the id list ``ImageSets/Segmentation/<split>.txt``.
        ids: use these ids (in this order) instead of the list file, e.g. from a split file.
        label_subdir: folder under ``root`` with ``<id>.png`` masks; None = the rule in the module
            docstring.
        transforms: joint augmentation (``transforms.build_transforms``) or None.
        label_dir: folder with ``<id>.png`` class-index maps replacing ``label_subdir``.
        ids_source: where ``ids`` came from (a split file), named in errors.
        mean, std: image normalisation (ImageNet by default).
        on_missing: ``raise`` (default) or ``skip``: drop ids without image or label file with a
            warning; they are listed in :attr:`skipped` as ``(id, reason)``.

    Sample (``__getitem__``): ``image`` float32 (3, H, W) normalised, ``label`` int64 (H, W) with
    values 0..20 and 255, ``name`` str (the VOC id, e.g. ``2007_000033``).

    Raises:
        FileNotFoundError: missing root or id list (names the expected layout), an id without a
            JPEG (names the id list / ``ids_source`` and the id), a missing label file (names it).
        ImageDecodeError / ValueError (at load): truncated image, unknown colours or wrong label
            mode, label values outside [0, 21) ∪ {255} (names the file and values), image/label
            size mismatch (names both files and sizes).
    """

    info: DatasetInfo = VOC_INFO

    def __init__(self, root: str | os.PathLike, split: str = "train",
                 ids: Sequence[str] | None = None, label_subdir: str | None = None,
                 transforms: Callable[..., dict] | None = None,
                 label_dir: str | os.PathLike | None = None, *, ids_source: str | None = None,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, on_missing: str = "raise") -> None:
        self.root = Path(root)
        self.split = split
        self.transforms = transforms
        self.mean, self.std = tuple(mean), tuple(std)
        self.skipped: list[tuple[str, str]] = []
        self.label_dir = Path(label_dir) if label_dir is not None else None
        self.label_subdir = label_subdir or default_label_subdir(self.root, split)
        if not (self.root / "JPEGImages").is_dir():
            raise FileNotFoundError(
                f"VOC root {self.root} does not exist or has no JPEGImages/; expected "
                f"{self.root}/JPEGImages/<id>.jpg, {self.root}/{self.label_subdir}/<id>.png and "
                f"{self.root}/ImageSets/Segmentation/<split>.txt, with root = the VOC2012 folder "
                f"(see data/README.md)")
        if ids is None:
            list_file = voc_split_file(self.root, split)
            if not list_file.is_file():
                raise FileNotFoundError(f"VOC id list {list_file} not found for split {split!r}; "
                                        f"expected {self.root}/ImageSets/Segmentation/<split>.txt")
            ids, ids_source = read_split_file(list_file), str(list_file)
        self.names: list[str] = [str(i) for i in ids]
        self.image_paths = [self.root / "JPEGImages" / f"{n}.jpg" for n in self.names]
        unknown = [n for n, p in zip(self.names, self.image_paths) if not p.is_file()]
        if unknown and on_missing == "skip":
            self._drop(unknown, f"no image {self.root}/JPEGImages/<id>.jpg (listed in "
                                f"{ids_source or 'the given ids'})")
            unknown = []
        if unknown:
            raise FileNotFoundError(
                f"{len(unknown)} id(s) from {ids_source or 'the given ids'} have no image "
                f"{self.root}/JPEGImages/<id>.jpg: {unknown[:5]}")
        label_root = self.label_dir if self.label_dir is not None else self.root / self.label_subdir
        self.label_paths = [label_root / f"{n}.png" for n in self.names]
        missing = [p for p in self.label_paths if not p.is_file()]
        if missing and on_missing == "skip":
            self._drop([p.stem for p in missing], f"no label file in {label_root}")
            missing = []
        if missing:
            raise FileNotFoundError(missing_files_message(
                missing, "label file(s)", f"; expected {label_root}/<id>.png"))

    def _drop(self, names: list[str], reason: str) -> None:
        import warnings

        drop = set(names)
        warnings.warn(f"on_missing=skip: dropping {len(drop)} id(s) of split {self.split!r}: "
                      f"{reason}: {sorted(drop)[:5]}", stacklevel=3)
        self.skipped += [(n, reason) for n in sorted(drop)]
        keep = [i for i, n in enumerate(self.names) if n not in drop]
        self.names = [self.names[i] for i in keep]
        self.image_paths = [self.image_paths[i] for i in keep]
        if hasattr(self, "label_paths"):
            self.label_paths = [self.label_paths[i] for i in keep]

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Untransformed, validated pair: image (H, W, 3) uint8 RGB and label (H, W) uint8 indices.

        Raises:
            ImageDecodeError, ValueError: see the class docstring.
        """
        image_path, label_path = self.image_paths[index], self.label_paths[index]
        image = read_image(image_path)
        decode = decode_voc_color_mask if self.label_dir is None else None
        label = read_label(label_path, decode_rgb=decode)
        check_same_size(image, label, image_path, label_path)
        check_label_values(label, self.info.num_classes, IGNORE_INDEX, str(label_path))
        return image, label.astype(np.uint8, copy=False)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, label = self.load(index)
        return to_sample(image, label, self.names[index], self.transforms, self.mean, self.std)
