"""Semi-supervised DataModules: a labeled and an unlabeled stream of weakly augmented crops.

U2PL / S4MC data pipeline (METHODS.md §3(a), ANCHORS.md "Semi-supervised splits"):

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
from leseg.data.resumable import EpochSampler, ResumableDataLoader, SeededDataset
from leseg.data.splits import load_split, make_splits, read_split_file, split_file
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


def _seed32(*entropy: int) -> int:
    """A 32-bit seed from non-negative integers (NumPy ``SeedSequence``: well mixed, stable)."""
    return int(np.random.SeedSequence([int(e) % 2**63 for e in entropy]).generate_state(1)[0])


class StreamSampler(EpochSampler):
    """One training stream of a semi-supervised epoch: ``total`` draws, split over DDP ranks.

    The global stream (the same on every rank) is ``total`` indices made of concatenated random
    permutations of the N samples, ``randperm(N)`` after ``randperm(N)`` cut at ``total``, from a
    ``torch.Generator`` seeded by ``(seed, epoch, stream)``: with ``total > N`` every sample appears
    ⌊total/N⌋ or ⌈total/N⌉ times (oversampling), with ``total ≤ N`` at most once. Rank ``r`` of
    ``W`` takes positions ``r, r + W, r + 2W, ...`` (``total / W`` draws), so with a per-device
    batch of ``global_batch / W`` the ranks' k-th batches together are exactly the k-th global
    batch of the single-process stream, and all ranks have the same number of batches.

    Yields ``(index, sample_seed)`` pairs like :class:`~leseg.data.resumable.EpochSampler` (read
    by :class:`~leseg.data.resumable.SeededDataset`); the augmentation seed is
    ``SeedSequence([seed, epoch, position, stream])``, so two draws of the same image in one
    epoch are augmented differently and the two streams never share augmentation parameters.
    ``set_epoch`` (called by Lightning each epoch) selects the epoch; ``skip`` (set when resuming)
    drops that many of this rank's draws, once.

    Args:
        dataset: a sized dataset of N ≥ 1 samples.
        total: draws per epoch over all ranks (``I · global batch``), ≥ 1, divisible by
            ``num_replicas``.
        num_replicas, rank: world size and this process's global rank (1 and 0 without DDP).
        seed: the data seed, identical on every rank.
        stream: an integer naming the stream (0 labeled, 1 unlabeled); different streams get
            independent permutations even for datasets of the same size.

    Raises:
        ValueError: an empty dataset, ``total < 1`` or ``total`` not divisible by
            ``num_replicas``.

    Source: the U2PL / S4MC epoch definition (METHODS.md §3(a)); the rank split follows
    ``torch.utils.data.DistributedSampler`` (strided shares of one permutation).
    """

    def __init__(self, dataset: Dataset, *, total: int, num_replicas: int = 1, rank: int = 0,
                 seed: int = 0, stream: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=False)
        if len(dataset) < 1:
            raise ValueError("StreamSampler: the dataset is empty")
        if total < 1 or total % num_replicas:
            raise ValueError(f"StreamSampler: total={total} draws must be >= 1 and divisible by "
                             f"the world size {num_replicas}")
        self.total_size = int(total)
        self.num_samples = self.total_size // self.num_replicas
        self.stream = int(stream)

    def global_stream(self) -> list[int]:
        """The epoch's ``total`` indices over all ranks (concatenated permutations)."""
        generator = torch.Generator()
        generator.manual_seed(_seed32(self.seed, self.epoch, self.stream))
        n, out = len(self.dataset), []
        while len(out) < self.total_size:
            out += torch.randperm(n, generator=generator).tolist()
        return out[: self.total_size]

    def __iter__(self) -> Iterator[tuple[int, int]]:  # a generator: runs after set_epoch
        stream = self.global_stream()
        positions = range(self.rank, self.total_size, self.num_replicas)[self.skip:]
        self.skip = 0
        epoch = self.epoch
        for position in positions:
            yield stream[position], _seed32(self.seed, epoch, position, self.stream)

    def __len__(self) -> int:
        return self.num_samples


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


def _split_count(split: str | int) -> int:
    text = str(split).strip()
    if not text.isdigit():  # not int(): it would read "1_16" as 116
        raise ValueError(f"data.split={split!r}: split files can only be generated for a labeled "
                         f"count (an integer); write <splits_dir>/{split}/{{labeled,unlabeled}}.txt "
                         f"yourself")
    count = int(text)
    if count < 1:
        raise ValueError(f"data.split={split!r}: the labeled count must be >= 1")
    return count


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
        split_seed: seed of the split files generated for synthetic datasets.
        max_unlabeled_samples: keep only the first N unlabeled samples (debug runs); None = all.
        **kwargs: see :class:`~leseg.data.datamodules.SegmentationDataModule` (``batch_size`` is
            the global labeled batch size).

    Raises:
        ValueError: non-positive ``unlabeled_batch_size`` or ``max_unlabeled_samples``; at setup,
            an empty unlabeled list (names the split file or set).
        FileNotFoundError: at setup, a missing split file (real datasets) or unlabeled image.
    """

    #: dataset name understood by :func:`leseg.data.splits.make_splits` ("voc" / "cityscapes").
    splits_dataset: str = ""

    def __init__(self, *, unlabeled_batch_size: int | None = None,
                 unlabeled_set: str | None = None, unlabeled_transforms: dict | None = None,
                 labeled_only: bool = False, split_seed: int = 0,
                 max_unlabeled_samples: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
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
        self.split_seed = int(split_seed)
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
    def prepare_data(self) -> None:
        """Generate the synthetic dataset (base class) and, for it, missing split files.

        For a synthetic dataset with a numeric ``split`` whose
        ``<splits_dir>/<split>/{labeled,unlabeled}.txt`` do not both exist, writes them with
        :func:`leseg.data.splits.make_splits` (``split_seed``). Existing files are kept as they are.

        Raises:
            ValueError: a synthetic dataset with a non-numeric split whose files are missing.
        """
        super().prepare_data()
        if self.synthetic is None or str(self.split) == "full":
            return
        files = [split_file(self.splits_dir, self.split, w) for w in ("labeled", "unlabeled")]
        if all(f.is_file() for f in files):
            return
        count = _split_count(self.split)
        make_splits(self.splits_dataset, self.root, [count], seed=self.split_seed,
                    out=self.splits_dir)

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
        trainer = getattr(self, "trainer", None)
        world = int(getattr(trainer, "world_size", 1) or 1) if trainer is not None else 1
        if self.unlabeled_batch_size % world:
            raise ValueError(f"data {self.name!r}: global unlabeled_batch_size="
                             f"{self.unlabeled_batch_size} is not divisible by world_size={world}")
        return self.unlabeled_batch_size // world

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

    splits_dataset = "cityscapes"

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

    splits_dataset = "voc"

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

    splits_dataset = "camvid"

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
