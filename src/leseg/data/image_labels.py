"""Image-level labels for weakly supervised segmentation (SSENet ``voc12/cls_labels.npy``).

PASCAL VOC image-level labels are 20-dim multi-hot vectors, one entry per foreground class
(aeroplane … tvmonitor, **no background**), ``y_c = 1`` iff class ``c + 1`` occurs in the image's
mask. The reference ships them as ``voc12/cls_labels.npy`` derived from ``SegmentationClassAug``;
here they are derived from whatever masks the :class:`~leseg.data.voc.VOCSegmentation` dataset
reads (so the SBD masks for ``train_aug``) and cached in one ``.npz`` file, written atomically.

:class:`ImageLabelDataModule` is a :class:`~leseg.data.datamodules.VOCDataModule` whose *training*
samples carry ``class_labels`` (20,) float32 besides ``image``/``label``/``name``; validation and
test samples carry them too (from the same masks), so a CAM network can be evaluated with the
21-class mIoU of its CAM-step prediction. With ``crf_dir`` set, training samples also carry the
two dense-CRF label maps of the AffinityNet stage (``crf_la``, ``crf_ha``: (H, W) int64 with 0 =
background, 1..20 classes, 255 = padding), read from ``<crf_dir>/<name>.npz`` (keys ``la``, ``ha``,
written by the ``crf`` stage of :mod:`leseg.stages.ssenet`) and transformed with the same geometry
as the image.

CamVid (:class:`CamVidImageLabelDataModule`) has no background class: its image-level label is
the 11-dim multi-hot vector of the classes 0..10 present in the mask (unlabelled pixels, raw 11,
count for none). The SSENet CAM method assumes VOC's background + 20 classes, so these batches
suit classification / CAM networks with 11 outputs, not the SSENet CAM step as configured.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from leseg.data.camvid import CamVidSegmentation
from leseg.data.datamodules import CamVidDataModule, VOCDataModule
from leseg.data.io import missing_files_message, read_label
from leseg.data.labels import CAMVID_INFO, IGNORE_INDEX, camvid_to_train
from leseg.data.transforms import to_sample
from leseg.data.voc import VOCSegmentation
from leseg.utils.io import atomic_write

__all__ = ["NUM_FG_CLASSES", "CamVidImageLabelDataModule", "ImageLabelDataModule", "ImageLabelDataset", "image_label_from_mask",
           "load_image_labels"]

NUM_FG_CLASSES = 20
"""VOC foreground classes (the image-level label length; background is not a label)."""

CRF_KEYS = ("crf_la", "crf_ha")
"""Extra sample keys of the AffinityNet stage: CRF label maps with low α (4) and high α (24)."""


def image_label_from_mask(mask: np.ndarray, num_fg: int = NUM_FG_CLASSES,
                          ignore_index: int = IGNORE_INDEX, first_class: int = 1) -> np.ndarray:
    """Multi-hot vector of the foreground classes present in a class-index mask.

    Args:
        mask: (H, W) integer mask: classes ``first_class .. first_class + num_fg - 1``,
            ``ignore_index`` = border / void, and (VOC, ``first_class=1``) 0 = background.
        num_fg: number of labelled classes (20 for VOC, 11 for CamVid).
        first_class: mask value of the first labelled class (1 for VOC, 0 for CamVid, which has
            no background class).

    Returns:
        (num_fg,) float32 in {0, 1}; entry ``c`` is 1 iff value ``c + first_class`` occurs.

    Raises:
        ValueError: a value outside {0..first_class + num_fg - 1, ignore_index}.
    """
    values = np.unique(mask)
    top = first_class + num_fg - 1
    bad = [int(v) for v in values if v != ignore_index and not 0 <= v <= top]
    if bad:
        raise ValueError(f"mask values {bad} are outside 0..{top} and {ignore_index}")
    y = np.zeros(num_fg, dtype=np.float32)
    fg = values[(values >= first_class) & (values <= top)].astype(np.int64)
    y[fg - first_class] = 1.0
    return y


def load_image_labels(dataset: VOCSegmentation | CamVidSegmentation,
                      cache_path: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Image-level labels of every sample of ``dataset``, from a cache file when it has them.

    The cache is an ``.npz`` with ``names`` (N,) str and ``labels`` (N, C) uint8 (C = 20 for VOC,
    11 for a :class:`~leseg.data.camvid.CamVidSegmentation`, whose raw 11 is void). Names the cache
    lacks are computed from the masks (read and validated by ``dataset.load``) and the merged table
    is written back atomically (a crash never leaves a partial cache).

    Args:
        dataset: a VOC-layout dataset (``names``, ``label_paths``, ``load(i)``).
        cache_path: ``.npz`` file; None = compute in memory only.

    Returns:
        name → (20,) float32 multi-hot vector.

    Raises:
        ValueError: a mask with values outside 0..20 / 255 (CamVid 0..11 / 255; names the mask
            file), or an
            unreadable / malformed cache file (names it; delete it to rebuild).
        ImageDecodeError: a truncated mask (names the file).
    """
    camvid = isinstance(dataset, CamVidSegmentation)
    num_fg, first = (CAMVID_INFO.num_classes, 0) if camvid else (NUM_FG_CLASSES, 1)
    table: dict[str, np.ndarray] = {}
    path = Path(cache_path) if cache_path is not None else None
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as data:
                names, labels = data["names"], data["labels"]
        except Exception as err:  # corrupt zip, missing keys, pickled objects
            raise ValueError(f"image-label cache {path} cannot be read ({err}); delete it to "
                             f"rebuild it from the masks") from err
        if labels.ndim != 2 or labels.shape != (len(names), num_fg):
            raise ValueError(f"image-label cache {path}: labels have shape {labels.shape}, "
                             f"expected ({len(names)}, {num_fg}); delete it to rebuild")
        table = {str(n): lab.astype(np.float32) for n, lab in zip(names, labels)}
    missing = [i for i, n in enumerate(dataset.names) if n not in table]
    for i in missing:
        mask_path = dataset.label_paths[i]
        mask = read_label(mask_path, decode_rgb=None if camvid else _decoder(dataset))
        try:
            if camvid and dataset.label_dir is None:
                mask = camvid_to_train(mask)  # raw 11 (unlabelled) -> 255
            table[dataset.names[i]] = image_label_from_mask(mask, num_fg, first_class=first)
        except ValueError as err:
            raise ValueError(f"label file {mask_path}: {err}") from err
    if path is not None and missing:
        names = sorted(table)
        with atomic_write(path) as f:
            np.savez(f, names=np.array(names, dtype=str),
                     labels=np.stack([table[n] for n in names]).astype(np.uint8))
    return {n: table[n] for n in dataset.names}


def _decoder(dataset: VOCSegmentation):
    from leseg.data.labels import decode_voc_color_mask

    return decode_voc_color_mask if getattr(dataset, "label_dir", None) is None else None


class ImageLabelDataset(Dataset):
    """A VOC dataset whose samples also carry the image-level label (and optional CRF maps).

    Args:
        base: the underlying :class:`~leseg.data.voc.VOCSegmentation` (its transforms are not
            used; ``transforms`` here are applied jointly to image, mask and CRF maps).
        labels: name → (20,) float32 multi-hot (from :func:`load_image_labels`).
        transforms: joint pipeline from ``build_transforms`` (with ``mask_targets=CRF_KEYS`` when
            ``crf_dir`` is given) or None.
        crf_dir: folder with ``<name>.npz`` holding ``la`` and ``ha`` (H, W) uint8 label maps
            (written by the ``crf`` stage), or None.

    Sample: ``image`` (3, H, W) float32, ``label`` (H, W) int64, ``class_labels`` (20,) float32,
    ``name`` str; with ``crf_dir`` also ``crf_la``, ``crf_ha`` (H, W) int64 (255 = padding).

    Raises:
        FileNotFoundError: CRF maps missing for some names (lists them and the folder).
    """

    def __init__(self, base: VOCSegmentation, labels: dict[str, np.ndarray], transforms=None,
                 crf_dir: str | os.PathLike | None = None) -> None:
        self.base = base
        self.labels = labels
        self.transforms = transforms
        self.crf_dir = Path(crf_dir) if crf_dir is not None else None
        if self.crf_dir is not None:
            missing = [self.crf_dir / f"{n}.npz" for n in base.names
                       if not (self.crf_dir / f"{n}.npz").is_file()]
            if missing:
                raise FileNotFoundError(missing_files_message(
                    missing, "CRF label map file(s)", f"; run the crf stage into {self.crf_dir}"))

    @property
    def names(self) -> list[str]:
        """Sample names (VOC ids) in order."""
        return self.base.names

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, label = self.base.load(index)
        name = self.base.names[index]
        extras = {}
        if self.crf_dir is not None:
            path = self.crf_dir / f"{name}.npz"
            try:
                with np.load(path, allow_pickle=False) as data:
                    maps = {key: data[sub] for key, sub in zip(CRF_KEYS, ("la", "ha"))}
            except Exception as err:
                raise ValueError(f"CRF map file {path} cannot be read (expected an .npz with "
                                 f"uint8 arrays 'la' and 'ha'): {err}") from err
            for key, crf in maps.items():
                if crf.shape != label.shape or crf.dtype != np.uint8:
                    raise ValueError(f"CRF map file {path}: {key} is {crf.shape} {crf.dtype}, "
                                     f"expected {label.shape} uint8 like image {name}")
                extras[key] = crf
        sample = to_sample(image, label, name, self.transforms, self.base.mean, self.base.std,
                           **extras)
        for key in extras:
            sample[key] = sample[key].long()
        sample["class_labels"] = torch.from_numpy(self.labels[name].copy())
        return sample


class _ImageLabelMixin:
    """Image-level labels (and CRF maps) on top of a segmentation DataModule (see below)."""

    def __init__(self, *, cache_dir: str | None = None, crf_dir: str | None = None,
                 **kwargs: Any) -> None:
        if crf_dir is not None:
            train_tf = dict(kwargs.get("train_transforms") or {})
            kwargs["train_transforms"] = {**train_tf, "mask_targets": list(CRF_KEYS)}
        super().__init__(**kwargs)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.crf_dir = crf_dir

    def cache_path(self, dataset: Dataset) -> Path | None:
        """Cache file of ``dataset`` (None without ``cache_dir``)."""
        if self.cache_dir is None:
            return None
        folder = (dataset.label_dir.name if dataset.label_dir is not None
                  else getattr(dataset, "label_subdir", "annot"))
        return self.cache_dir / f"{self.name}_{dataset.split}_{folder}_cls_labels.npz"

    def _make(self, split: str, role: str, transforms, ids=None, ids_source=None,
              label_dir=None) -> Dataset:
        base = super()._make(split, role, None, ids, ids_source, label_dir)
        labels = load_image_labels(base, self.cache_path(base))
        crf_dir = self.crf_dir if role == "train" else None
        return ImageLabelDataset(base, labels, transforms, crf_dir)


class ImageLabelDataModule(_ImageLabelMixin, VOCDataModule):
    """VOC-layout DataModule for image-level supervision (SSENet CAM net and AffinityNet).

    Batches: ``image`` (B, 3, H, W) float32, ``class_labels`` (B, 20) float32 multi-hot,
    ``label`` (B, H, W) int64 (the masks; used only for evaluation — the training losses never
    read it), ``name``; with ``crf_dir`` also ``crf_la``/``crf_ha`` (B, H, W) int64.

    Args:
        cache_dir: folder of the image-label cache files
            ``<name>_<split>_<label folder>_cls_labels.npz``; None = no cache.
        crf_dir: CRF label maps of the training images (AffinityNet stage), or None.
        **kwargs: see :class:`~leseg.data.datamodules.VOCDataModule`.
    """


class CamVidImageLabelDataModule(_ImageLabelMixin, CamVidDataModule):
    """CamVid DataModule whose samples carry image-level labels (module docstring).

    Batches: ``image`` (B, 3, H, W) float32, ``class_labels`` (B, 11) float32 multi-hot over the
    CamVid classes 0..10 (no background class), ``label`` (B, H, W) int64 (evaluation only),
    ``name``; with ``crf_dir`` also ``crf_la``/``crf_ha`` (B, H, W) int64.

    Args:
        cache_dir: folder of the cache files ``<name>_<split>_annot_cls_labels.npz``; None = none.
        crf_dir: CRF label maps of the training images, or None.
        **kwargs: see :class:`~leseg.data.datamodules.SegmentationDataModule`.
    """


def names_of(dataset: Dataset) -> Sequence[str]:
    """Sample names of a dataset or a ``Subset`` of one."""
    if hasattr(dataset, "names"):
        return dataset.names
    inner = names_of(dataset.dataset)
    return [inner[i] for i in dataset.indices]
