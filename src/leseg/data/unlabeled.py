"""Unlabelled images for self-supervised pretraining (BYOL): a pool of image files, two views each.

The pool is a list of glob patterns relative to the dataset root, so any image folders of any
dataset can be combined, e.g. for Cityscapes (Cordts et al. 2016)::

    leftImg8bit/train/*/*_leftImg8bit.png         2,975 fine-annotated frames
    leftImg8bit/test/*/*_leftImg8bit.png          1,525 test frames
    leftImg8bit/train_extra/*/*_leftImg8bit.png   19,998 coarse-annotated frames

(the reference project's code uses train + test = 4,500 images, its README claims the 20k
train_extra frames; BYOL-seg, docs/REFERENCES.md) and for VOC ``JPEGImages/*.jpg`` with the validation ids
removed by ``exclude: [ImageSets/Segmentation/val.txt]``.

Training samples are dicts ``view1``, ``view2`` (3, h, w) float32 normalised and ``name`` (the
sample name, e.g. ``aachen_000000_000019``); batches stack the views to (B, 3, h, w). Labels are
never read for training. :meth:`UnlabeledDataModule.probe_dataset` additionally gives a handful of
*labelled* images for the linear-probe monitor (:mod:`leseg.callbacks.linear_probe`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from leseg.data.camvid import CamVidSegmentation
from leseg.data.cityscapes import CityscapesSegmentation
from leseg.data.datamodules import GlobalBatchSize, collate_samples, prepare_synthetic
from leseg.data.io import read_image
from leseg.data.labels import IGNORE_INDEX
from leseg.data.splits import read_split_file, sample_name
from leseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms
from leseg.data.views import TwoViews, build_views
from leseg.data.voc import VOCSegmentation

__all__ = ["LABELED_DATASETS", "UnlabeledDataModule", "UnlabeledImages", "list_pool"]

LABELED_DATASETS: dict[str, type[Dataset]] = {"cityscapes": CityscapesSegmentation,
                                              "voc": VOCSegmentation,
                                              "camvid": CamVidSegmentation}
"""Dataset classes the probe images can be read with (``data.probe.dataset``)."""


def list_pool(root: str | os.PathLike, sources: Sequence[str],
              exclude: Sequence[str] = ()) -> dict[str, Path]:
    """Image files of a pool, by sample name.

    Args:
        root: dataset root.
        sources: glob patterns relative to ``root`` (e.g. ``leftImg8bit/train/*/*_leftImg8bit.png``);
            every pattern must match at least one file.
        exclude: id-list files (relative to ``root`` or absolute; any format
            :func:`leseg.data.splits.read_split_file` reads) whose names are removed from the pool.

    Returns:
        name → path, sorted by name. A name found by several patterns is kept once (first pattern
        wins), so overlapping patterns do not duplicate images.

    Raises:
        FileNotFoundError: ``root`` missing, a pattern matching no file (names the pattern and the
            root), or a missing exclude list.
        ValueError: no pattern given, or the pool is empty after the exclusion.
    """
    root = Path(root)
    if not sources:
        raise ValueError("unlabelled pool: `sources` is empty; give glob patterns relative to the "
                         "dataset root, e.g. leftImg8bit/train/*/*_leftImg8bit.png")
    if not root.is_dir():
        raise FileNotFoundError(f"unlabelled pool: dataset root {root} does not exist")
    pool: dict[str, Path] = {}
    for pattern in sources:
        files = sorted(p for p in root.glob(str(pattern)) if p.is_file())
        if not files:
            raise FileNotFoundError(f"unlabelled pool: pattern {pattern!r} matches no file under "
                                    f"{root} (data.sources)")
        for path in files:
            pool.setdefault(sample_name(path.name), path)
    dropped: set[str] = set()
    for list_file in exclude:
        path = Path(list_file) if Path(list_file).is_absolute() else root / list_file
        dropped.update(read_split_file(path))
    pool = {n: pool[n] for n in sorted(pool) if n not in dropped}
    if not pool:
        raise ValueError(f"unlabelled pool under {root} is empty after excluding the names in "
                         f"{list(exclude)}")
    return pool


class UnlabeledImages(Dataset):
    """Images without labels, each returned as two augmented views.

    Args:
        paths: image files (JPEG/PNG, any mode :func:`leseg.data.io.read_image` converts to RGB).
        views: the view pipeline (:func:`leseg.data.views.build_views`).
        names: sample names, one per path (default: derived from the file names).

    Sample: ``view1``, ``view2`` (3, h, w) float32 normalised; ``name`` str.

    Raises:
        ValueError: ``names`` and ``paths`` differ in length; (at load) an unreadable image names
            its file (``ImageDecodeError`` / ``ValueError`` from :func:`read_image`).
    """

    def __init__(self, paths: Sequence[str | os.PathLike],
                 views: Callable[[np.ndarray], tuple[torch.Tensor, torch.Tensor]],
                 names: Sequence[str] | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.names = list(names) if names is not None else [sample_name(p.name) for p in self.paths]
        if len(self.names) != len(self.paths):
            raise ValueError(f"UnlabeledImages: {len(self.names)} names for {len(self.paths)} "
                             f"paths")
        self.views = views

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        view1, view2 = self.views(read_image(self.paths[index]))
        return {"view1": view1, "view2": view2, "name": self.names[index]}


def _evenly_spaced(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n) (all of them when k >= n), first and last included."""
    if k >= n:
        return list(range(n))
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, k)})


class UnlabeledDataModule(GlobalBatchSize, L.LightningDataModule):
    """Train loader over an unlabelled image pool (two views per image) and probe images.

    Args:
        name: dataset name for logs and run directories (e.g. ``cityscapes_unlabeled``).
        root: dataset root; ``sources`` and ``exclude`` are relative to it.
        sources: glob patterns of the pool (see :func:`list_pool`).
        exclude: id-list files whose names leave the pool (e.g. VOC's ``val.txt``).
        views: keyword arguments of :func:`leseg.data.views.build_views` (``pipeline`` plus that
            pipeline's keys).
        num_classes: K of the labelled dataset (the probe's classes; fine-tuning target).
        ignore_index: label value of ignored pixels (255).
        split: a name for the pool used in run directories and result tables (``full``).
        batch_size: **global** batch size (divided by ``trainer.world_size`` under DDP).
        num_workers, pin_memory, persistent_workers: DataLoader settings.
        max_images: keep only the first N images of the (sorted) pool; None = all.
        probe: labelled images for the linear probe, or None: ``dataset`` (``cityscapes`` |
            ``voc`` | ``camvid``), ``split`` (folder / id list, default ``train``), ``num_images`` (default 8,
            spread evenly over the split), ``resize`` ((h, w) or null). ``root`` defaults to
            this module's.
        synthetic: ``{"kind": "city"|"voc", **params}``: ``prepare_data`` generates the dataset
            into ``root`` when missing (as :class:`~leseg.data.datamodules.SegmentationDataModule`).
        mean, std: image normalisation (ImageNet by default).
        **kwargs: further descriptive config keys (e.g. ``crop_name``), stored in
            :attr:`extra_config`.

    Raises:
        ValueError: batch size < 1, ``ignore_index`` ≠ 255, unknown probe dataset or keys, bad view
            configuration (names the key), ``synthetic`` without ``kind``.
        TypeError: ``views`` or ``probe`` not a mapping.
    """

    def __init__(self, *, name: str, root: str, sources: Sequence[str],
                 exclude: Sequence[str] = (), views: Mapping[str, Any] | None = None,
                 num_classes: int = 19, ignore_index: int = 255, split: str = "full",
                 batch_size: int = 32, num_workers: int = 0, pin_memory: bool = False,
                 persistent_workers: bool = False, max_images: int | None = None,
                 probe: Mapping[str, Any] | None = None, synthetic: Mapping[str, Any] | None = None,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 **kwargs: Any) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"data {name!r}: batch_size must be >= 1, got {batch_size}")
        if ignore_index != IGNORE_INDEX:
            raise ValueError(f"data {name!r}: ignore_index={ignore_index}, but the datasets mark "
                             f"ignored pixels with {IGNORE_INDEX}")
        if max_images is not None and max_images < 1:
            raise ValueError(f"data {name!r}: max_images must be >= 1 or null, got {max_images}")
        for key, value in (("views", views), ("probe", probe), ("synthetic", synthetic)):
            if value is not None and not isinstance(value, Mapping):
                raise TypeError(f"data.{key} must be a mapping or null, got {value!r}")
        if synthetic is not None and "kind" not in synthetic:
            raise ValueError(f"data {name!r}: synthetic needs a 'kind' key ('city' or 'voc')")
        self.name, self.root = name, Path(root)
        self.sources, self.exclude = [str(s) for s in sources], [str(e) for e in exclude]
        self.num_classes, self.ignore_index, self.split = int(num_classes), ignore_index, split
        self.batch_size, self.num_workers = batch_size, num_workers
        self.pin_memory, self.persistent_workers = pin_memory, persistent_workers
        self.max_images = max_images
        self.mean, self.std = tuple(mean), tuple(std)
        self.views_cfg = dict(views or {})
        self.views: TwoViews = build_views(**{"mean": self.mean, "std": self.std,
                                              **self.views_cfg})  # fail early on a bad key
        self.probe_cfg = self._check_probe(dict(probe) if probe is not None else None)
        self.synthetic = dict(synthetic) if synthetic is not None else None
        self.extra_config = dict(kwargs)
        self.train_dataset: UnlabeledImages | None = None
        self._probe_dataset: Dataset | None = None

    _PROBE_KEYS = ("dataset", "root", "split", "num_images", "resize")

    def _check_probe(self, probe: dict | None) -> dict | None:
        if probe is None:
            return None
        unknown = sorted(set(probe) - set(self._PROBE_KEYS))
        if unknown:
            raise ValueError(f"data.probe has unknown key(s) {unknown}; allowed "
                             f"{list(self._PROBE_KEYS)}")
        if probe.get("dataset") not in LABELED_DATASETS:
            raise ValueError(f"data.probe.dataset={probe.get('dataset')!r} is not one of "
                             f"{sorted(LABELED_DATASETS)}")
        if int(probe.get("num_images", 8)) < 2:
            raise ValueError(f"data.probe.num_images must be >= 2 (half fit, half evaluate), got "
                             f"{probe.get('num_images')}")
        return probe

    def prepare_data(self) -> None:
        """Generate the synthetic dataset into ``root`` if ``synthetic`` is set (else nothing)."""
        prepare_synthetic(self.synthetic, self.root)

    def setup(self, stage: str | None = None) -> None:
        """List the pool (the training set); nothing else is needed for any stage.

        Raises:
            FileNotFoundError, ValueError: see :func:`list_pool`; a global batch size not
                divisible by the world size.
        """
        self.per_device_batch_size()
        if self.train_dataset is None:
            pool = list_pool(self.root, self.sources, self.exclude)
            names = list(pool)[: self.max_images]
            self.train_dataset = UnlabeledImages([pool[n] for n in names], self.views, names)

    def train_dataloader(self) -> DataLoader:
        """Shuffled two-view batches (``view1``, ``view2`` (B, 3, h, w), ``name``); drops the last
        incomplete batch when the pool is larger than one batch (BatchNorm needs full batches)."""
        if self.train_dataset is None:
            self.setup("fit")
        batch = self.per_device_batch_size()
        return DataLoader(self.train_dataset, batch_size=batch, shuffle=True,
                          drop_last=len(self.train_dataset) > batch,
                          num_workers=self.num_workers, pin_memory=self.pin_memory,
                          persistent_workers=self.persistent_workers and self.num_workers > 0,
                          collate_fn=collate_samples)

    def probe_dataset(self) -> Dataset | None:
        """The labelled probe images (``image``, ``label``, ``name`` samples), or None if unset.

        ``num_images`` images spread evenly over the sorted split (both cities / classes of a
        small set are represented), resized to ``resize`` if given (image bilinear, labels
        nearest). Built once and cached.

        Raises:
            FileNotFoundError: the probe split or its labels are missing (from the dataset class).
        """
        if self.probe_cfg is None:
            return None
        if self._probe_dataset is None:
            cfg = self.probe_cfg
            cls = LABELED_DATASETS[cfg["dataset"]]
            resize = cfg.get("resize")
            transforms = build_transforms(resize=resize) if resize is not None else None
            full = cls(cfg.get("root") or self.root, split=cfg.get("split", "train"),
                       transforms=transforms, mean=self.mean, std=self.std)
            keep = _evenly_spaced(len(full), int(cfg.get("num_images", 8)))
            self._probe_dataset = torch.utils.data.Subset(full, keep)
        return self._probe_dataset
