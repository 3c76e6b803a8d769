"""Semi-supervised DataModules: a labeled and an unlabeled stream of weakly augmented crops.

U2PL / S4MC data pipeline (U2PL ``u2pl/dataset/pascal_voc.py``; U2PL / UniMatch split files):

* the **labeled stream** is the split's ``labeled.txt`` (or the whole ``train_set`` for
  ``split="full"``), read with the dataset's labels;
* the **unlabeled stream** is the split's ``unlabeled.txt``; only images are read (no label file is
  needed) and each sample carries a ``valid`` (H, W) bool map that is False at pixels the weak
  augmentation padded (crop larger than the rescaled image), so a method can keep them out of
  every loss. Both streams use the same weak augmentation (``train_transforms``: random rescale,
  pad, random crop, flip) unless ``unlabeled_transforms`` is given;
* an epoch has ``I = max(len(unlabeled), len(labeled)) // unlabeled_batch_size`` iterations (at
  least 1). Each stream draws ``I · batch`` indices as concatenated random permutations of its
  samples, so the (usually much smaller) labeled set is **oversampled to the unlabeled length**
  (every labeled image appears ⌊n/L⌋ or ⌈n/L⌉ times per epoch) and both streams have exactly ``I``
  batches.

Design choice: the train loader is a Lightning ``CombinedLoader`` over two DataLoaders (mode
``min_size``), so each training batch is ``{"labeled": batch, "unlabeled": batch}``:

* ``labeled``: ``image`` float32 (B_l, 3, H, W) normalised, ``label`` int64 (B_l, H, W) with
  255 = ignore (padding included), ``name`` list[str];
* ``unlabeled``: ``image`` float32 (B_u, 3, H, W), ``valid`` bool (B_u, H, W), ``name`` list[str].

Two loaders (rather than one dataset returning pairs) keep the two batch sizes independent and
let each stream shuffle on its own. Each stream's order is a :class:`StreamSampler`: a pure function
of ``(data seed, epoch, stream)``, identical on every DDP rank, of which rank ``r`` of ``W`` takes
positions ``r, r + W, r + 2W, ...`` — so every rank has exactly ``I`` batches, the ranks' k-th
batches together are the single-process run's k-th batch, and no rank repeats another's draw. It
is a ``DistributedSampler``, so Lightning keeps it (it only injects a sampler into loaders without
a distributed one). Augmentations are seeded per draw and the loaders are
:class:`~leseg.data.resumable.ResumableDataLoader` objects: a run killed mid-epoch resumes with the
same batches (:mod:`leseg.data.resumable`).
With ``labeled_only=True`` the train loader is the labeled stream alone (plain supervised batches,
same iterations per epoch): the supervised-only twin of a semi-supervised experiment then sees
exactly the same labeled data for the same number of steps.

Defaults without split files:

* ``split="full"``: labeled = every image of ``train_set``; unlabeled = the images of
  ``unlabeled_set`` not in the labeled set (VOC: ``train_aug`` gives U2PL's "1464" setting), or, if
  ``unlabeled_set`` is null, the ``train_set`` images themselves, used again without labels.
* synthetic datasets with a numeric ``split``: ``prepare_data`` writes
  ``<splits_dir>/<split>/{labeled,unlabeled}.txt`` with :func:`leseg.data.splits.make_splits`
  (seed ``split_seed``) when they are missing. Real datasets never get generated splits: a missing
  split file is an error naming the file and the command that makes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset, Subset

from leseg.data.camvid import list_camvid_frames
from leseg.data.cityscapes import list_cityscapes_frames
from leseg.data.datamodules import (
    CamVidDataModule,
    CityscapesDataModule,
    SegmentationDataModule,
    VOCDataModule,
    collate_samples,
)
from leseg.data.io import missing_files_message, read_image
from leseg.data.resumable import ResumableDataLoader, SeededDataset, StreamSampler
from leseg.data.splits import load_split, read_split_file, split_file
from leseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD, to_sample
from leseg.data.voc import voc_split_file

__all__ = [
    "SemiSupervisedCamVidDataModule",
    "SemiSupervisedCityscapesDataModule",
    "SemiSupervisedDataModule",
    "SemiSupervisedVOCDataModule",
    "StreamSampler",
    "UnlabeledImageDataset",
]


class UnlabeledImageDataset(Dataset):
    """Images without labels, weakly augmented, with a map of the pixels that are real image.

    The augmentation runs jointly on the image and an all-zero mask; padding fills the mask with
    ``ignore_index``, so ``valid = mask != ignore_index`` marks exactly the non-padded pixels.

    Args:
        image_paths: one image file per sample (JPEG/PNG, read as RGB).
        names: sample names, same length as ``image_paths``.
        transforms: joint augmentation (:func:`leseg.data.transforms.build_transforms`) or None.
        ignore_index: value the transforms pad masks with (255).
        mean, std: image normalisation (ImageNet by default).

    Sample (``__getitem__``): ``image`` float32 (3, H, W) normalised, ``valid`` bool (H, W)
    (False = padded), ``name`` str.

    Raises:
        ValueError: ``image_paths`` and ``names`` differ in length.
        FileNotFoundError / ImageDecodeError (at load): missing or unreadable image (names it).
    """

    def __init__(self, image_paths: Sequence[str | os.PathLike], names: Sequence[str],
                 transforms=None, ignore_index: int = 255,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        if len(image_paths) != len(names):
            raise ValueError(f"UnlabeledImageDataset: {len(image_paths)} image paths but "
                             f"{len(names)} names")
        self.image_paths = [Path(p) for p in image_paths]
        self.names = [str(n) for n in names]
        self.transforms = transforms
        self.ignore_index = ignore_index
        self.mean, self.std = tuple(mean), tuple(std)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = read_image(self.image_paths[index])
        inside = np.zeros(image.shape[:2], dtype=np.uint8)
        sample = to_sample(image, inside, self.names[index], self.transforms, self.mean, self.std)
        valid = sample.pop("label") != self.ignore_index
        return {"image": sample["image"], "valid": valid, "name": sample["name"]}


class SemiSupervisedDataModule(SegmentationDataModule):
    """Labeled + unlabeled training streams (see the module docstring); val/test as the base class.

    A base class like :class:`~leseg.data.datamodules.SegmentationDataModule`: the concrete
    modules are :class:`SemiSupervisedCityscapesDataModule` and :class:`SemiSupervisedVOCDataModule`.

    Args:
        unlabeled_batch_size: **global** batch size of the unlabeled stream (divided by the world
            size like ``batch_size``); None = ``batch_size``. Must be >= 2 for CutMix/ClassMix,
            which draw each image's partner from the other images of the batch (checked by the
            method, not here).
        unlabeled_set: for ``split="full"``: the dataset split whose images form the unlabeled
            stream (minus the labeled ones), e.g. VOC ``train_aug``; None = ``train_set`` itself.
            For Cityscapes it is also the ``leftImg8bit/<set>`` folder the unlabeled names of a
            split file are looked up in (default ``train_set``).
        unlabeled_transforms: keyword arguments of ``build_transforms`` for the unlabeled stream;
            None = the same as ``train_transforms`` (the usual weak augmentation).
        labeled_only: the train loader yields only the labeled stream (plain supervised batches),
            with the same number of iterations per epoch (for supervised-only twins).
        max_unlabeled_samples: keep only the first N unlabeled samples (debug runs); None = all.
        **kwargs: see :class:`~leseg.data.datamodules.SegmentationDataModule` (``batch_size`` is
            the global labeled batch size).

    Raises:
        ValueError: non-positive ``unlabeled_batch_size`` or ``max_unlabeled_samples``; at setup,
            an empty unlabeled list (names the split file or set).
        FileNotFoundError: at setup, a missing split file (real datasets) or unlabeled image.
    """

    def __init__(self, *, unlabeled_batch_size: int | None = None,
                 unlabeled_set: str | None = None, unlabeled_transforms: dict | None = None,
                 labeled_only: bool = False,
                 max_unlabeled_samples: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.samples_per_epoch is not None:
            raise ValueError(f"data {self.name!r}: samples_per_epoch is for supervised loaders; a "
                             f"semi-supervised epoch is the unlabeled stream's length (set "
                             f"max_unlabeled_samples to shorten it)")
        if unlabeled_batch_size is not None and unlabeled_batch_size < 1:
            raise ValueError(f"data {self.name!r}: unlabeled_batch_size must be >= 1 or null, got "
                             f"{unlabeled_batch_size}")
        if max_unlabeled_samples is not None and max_unlabeled_samples < 1:
            raise ValueError(f"data {self.name!r}: max_unlabeled_samples must be >= 1 or null, "
                             f"got {max_unlabeled_samples}")
        self.unlabeled_batch_size = unlabeled_batch_size or self.batch_size
        self.unlabeled_set = unlabeled_set
        if unlabeled_transforms is None:
            self.unlabeled_transforms_cfg = self.train_transforms_cfg
            self.unlabeled_transforms = self.train_transforms
        else:
            self.unlabeled_transforms_cfg = dict(unlabeled_transforms)
            self.unlabeled_transforms = self._build(self.unlabeled_transforms_cfg)
        self.labeled_only = bool(labeled_only)
        self.max_unlabeled_samples = max_unlabeled_samples
        self.unlabeled_dataset: Dataset | None = None

    # ------------------------------------------------------------------ dataset-specific hooks
    def unlabeled_pool(self, set_name: str) -> list[str]:
        """Names of the images of dataset split ``set_name`` (for ``split="full"``)."""
        raise NotImplementedError

    def unlabeled_image_paths(self, names: Sequence[str], source: str) -> list[Path]:
        """Image file of each unlabeled name; ``source`` (a split file or set) is named in errors.

        Raises:
            FileNotFoundError: a name without an image file.
        """
        raise NotImplementedError

    # ------------------------------------------------------------------------ preparation
    def _unlabeled_names(self, labeled: Sequence[str]) -> tuple[list[str], str]:
        """(unlabeled names, where they came from) for the configured split."""
        if str(self.split) != "full":
            names = load_split(self.splits_dir, self.split).unlabeled
            source = str(split_file(self.splits_dir, self.split, "unlabeled"))
        elif self.unlabeled_set is None:
            names, source = list(labeled), f"train_set {self.train_set!r} (split=full)"
        else:
            chosen = set(labeled)
            names = [n for n in self.unlabeled_pool(self.unlabeled_set) if n not in chosen]
            source = f"unlabeled_set {self.unlabeled_set!r} minus the labeled images"
        if not names:
            raise ValueError(f"data {self.name!r}: no unlabeled images in {source}; a "
                             f"semi-supervised run needs at least one")
        return names, source

    @staticmethod
    def _base_and_indices(dataset: Dataset) -> tuple[Dataset, list[int]]:
        if isinstance(dataset, Subset):
            base, indices = SemiSupervisedDataModule._base_and_indices(dataset.dataset)
            return base, [indices[i] for i in dataset.indices]
        return dataset, list(range(len(dataset)))

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets of ``stage``; for fit also the unlabeled stream.

        Raises:
            FileNotFoundError: missing split file (with the command that makes it), dataset files
                or unlabeled images.
            ValueError: a malformed split file, a name in both lists, or no unlabeled image.
        """
        super().setup(stage)
        if stage in (None, "fit") and self.unlabeled_dataset is None and not self.labeled_only:
            base, indices = self._base_and_indices(self.train_dataset)
            labeled = [base.names[i] for i in indices]
            names, source = self._unlabeled_names(labeled)
            if self.max_unlabeled_samples is not None:
                names = names[: self.max_unlabeled_samples]
            paths = self.unlabeled_image_paths(names, source)
            self.unlabeled_dataset = UnlabeledImageDataset(
                paths, names, self.unlabeled_transforms, self.ignore_index, self.mean, self.std)

    # ------------------------------------------------------------------------- dataloaders
    def per_device_unlabeled_batch_size(self) -> int:
        """``unlabeled_batch_size`` divided by the attached trainer's world size.

        Raises:
            ValueError: not divisible by the world size.
        """
        return self.per_device("unlabeled_batch_size")

    def iterations_per_epoch(self) -> int:
        """I = max(len(unlabeled), len(labeled)) // global unlabeled batch size, at least 1.

        With ``labeled_only`` the unlabeled list still sets the epoch length (it is read from the
        split, but no unlabeled dataset is built).
        """
        if self.train_dataset is None:
            self.setup("fit")
        if self.unlabeled_dataset is not None:
            n_unlabeled = len(self.unlabeled_dataset)
        else:
            base, indices = self._base_and_indices(self.train_dataset)
            names, _ = self._unlabeled_names([base.names[i] for i in indices])
            if self.max_unlabeled_samples is not None:
                names = names[: self.max_unlabeled_samples]
            n_unlabeled = len(names)
        n = max(n_unlabeled, len(self.train_dataset))
        return max(1, n // self.unlabeled_batch_size)

    def _stream(self, dataset: Dataset, global_batch: int, per_device_batch: int,
                iterations: int, stream: int) -> DataLoader:
        """A resumable loader of ``iterations`` per-device batches over a :class:`StreamSampler`."""
        world, rank = self.world_and_rank()
        seed = self.data_seed()
        sampler = StreamSampler(dataset, total=iterations * global_batch, num_replicas=world,
                                rank=rank, seed=seed, stream=stream)
        trainer = getattr(self, "trainer", None)
        return ResumableDataLoader(
            SeededDataset(self.guard(dataset, "train")), batch_size=per_device_batch,
            sampler=sampler, drop_last=True,
            num_workers=self.num_workers, pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            collate_fn=collate_samples, generator=torch.Generator().manual_seed(seed),
            progress=self._progress if trainer is not None else None,
        )

    def train_dataloader(self) -> CombinedLoader | DataLoader:
        """``{"labeled": batch, "unlabeled": batch}`` per step (the labeled batch alone with
        ``labeled_only``); both streams have :meth:`iterations_per_epoch` batches on every rank
        (:class:`StreamSampler`), seeded by :meth:`data_seed` and resumable mid-epoch."""
        if self.train_dataset is None or (self.unlabeled_dataset is None and not self.labeled_only):
            self.setup("fit")
        iterations = self.iterations_per_epoch()
        labeled = self._stream(self.train_dataset, self.batch_size, self.per_device_batch_size(),
                               iterations, stream=0)
        if self.labeled_only:
            return labeled
        unlabeled = self._stream(self.unlabeled_dataset, self.unlabeled_batch_size,
                                 self.per_device_unlabeled_batch_size(), iterations, stream=1)
        return CombinedLoader({"labeled": labeled, "unlabeled": unlabeled}, mode="min_size")

    # ---------------------------------------------------------------------------- statistics
    def labeled_label_maps(self, max_images: int | None = None) -> Iterator[np.ndarray]:
        """Untransformed label maps (H, W) uint8 of the labeled stream (e.g. for S4MC's prior E).

        Args:
            max_images: read at most this many, evenly spaced over the labeled list; None = all.

        Yields:
            (H, W) uint8 class indices in [0, K) ∪ {255}, at the dataset's original resolution.
        """
        if self.train_dataset is None:
            self.setup("fit")
        base, indices = self._base_and_indices(self.train_dataset)
        if max_images is not None:
            if max_images < 1:
                raise ValueError(f"max_images must be >= 1 or None, got {max_images}")
            if max_images < len(indices):
                picks = np.linspace(0, len(indices) - 1, max_images).round().astype(int)
                indices = [indices[i] for i in sorted(set(picks.tolist()))]
        for index in indices:
            yield base.load(index)[1]


class SemiSupervisedCityscapesDataModule(SemiSupervisedDataModule, CityscapesDataModule):
    """Cityscapes layout; unlabeled names are frames of ``leftImg8bit/<unlabeled_set or train_set>``.

    Args: see :class:`SemiSupervisedDataModule` and
    :class:`~leseg.data.datamodules.SegmentationDataModule`.
    """


    def unlabeled_pool(self, set_name: str) -> list[str]:  # noqa: D102
        return list(list_cityscapes_frames(self.root, set_name))

    def unlabeled_image_paths(self, names: Sequence[str], source: str) -> list[Path]:  # noqa: D102
        folder = self.unlabeled_set or self.train_set
        frames = list_cityscapes_frames(self.root, folder)
        unknown = [n for n in names if n not in frames]
        if unknown:
            raise FileNotFoundError(
                f"{len(unknown)} unlabeled name(s) from {source} are not frames of "
                f"{self.root}/leftImg8bit/{folder}: {unknown[:5]}")
        return [frames[n] for n in names]


class SemiSupervisedVOCDataModule(SemiSupervisedDataModule, VOCDataModule):
    """VOC2012 layout; unlabeled images are ``JPEGImages/<id>.jpg`` (no mask needed).

    Args: see :class:`SemiSupervisedDataModule` and :class:`~leseg.data.datamodules.VOCDataModule`.
    """


    def unlabeled_pool(self, set_name: str) -> list[str]:  # noqa: D102
        return read_split_file(voc_split_file(self.root, set_name))

    def unlabeled_image_paths(self, names: Sequence[str], source: str) -> list[Path]:  # noqa: D102
        paths = [self.root / "JPEGImages" / f"{n}.jpg" for n in names]
        missing = [n for n, p in zip(names, paths, strict=True) if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} unlabeled id(s) from {source} have no image "
                f"{self.root}/JPEGImages/<id>.jpg: {missing[:5]}")
        return paths


class SemiSupervisedCamVidDataModule(SemiSupervisedDataModule, CamVidDataModule):
    """CamVid (SegNet layout); unlabeled names are frames of ``<unlabeled_set or train_set>``
    (their images ``<set>/<name>.png``; no mask is read for them).

    Splits: ``python -m leseg.data.splits --dataset camvid`` (1/16, 1/8, 1/4, 1/2 of the 367
    train frames: 23, 46, 92, 184 labeled, the rest unlabeled).

    Args: see :class:`SemiSupervisedDataModule` and
    :class:`~leseg.data.datamodules.SegmentationDataModule`.
    """

    def unlabeled_pool(self, set_name: str) -> list[str]:  # noqa: D102
        return list(list_camvid_frames(self.root, set_name))

    def unlabeled_image_paths(self, names: Sequence[str], source: str) -> list[Path]:  # noqa: D102
        folder = self.unlabeled_set or self.train_set
        frames = list_camvid_frames(self.root, folder)
        unknown = [n for n in names if n not in frames]
        if unknown:
            raise FileNotFoundError(f"{len(unknown)} unlabeled name(s) from {source} are not "
                                    f"frames of CamVid {self.root} split {folder!r}: {unknown[:5]}")
        paths = [frames[n][0] for n in names]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(missing_files_message(missing, "unlabeled CamVid image(s)",
                                                          f" (listed in {source})"))
        return paths
