"""Binarised segmentation data for S5: one class per sample becomes the foreground.

S5 (Magolor/S5 ``train_cityscapes.py``) trains a segmenter on a *binary* task built from ordinary
semantic labels: per sample, a class with enough pixels is chosen at random and the target is its
mask (all instances of the class). :class:`BinarizedDataset` wraps any dataset of the data layer
(after its geometric transforms, so the choice is made on what the network sees) with
:class:`leseg.data.binarize.BinarizeTarget`; the binarised DataModules swap their datasets for
wrapped ones.

Sample (``__getitem__``) — the wrapped dataset's keys, with:

* ``label`` int64 (H, W): 1 = the chosen class, 0 = any other pixel, 255 = ignored pixels when
  ``void_as_background=False`` (with the reference's ``True``, void and padding are background 0);
* ``class_id`` int64 scalar tensor: the chosen trainId (for visualisation and per-class analysis);
* everything else (``image`` (3, H, W) float32 normalised, ``name`` str, ...) unchanged.

Training draws the class from torch's global generator (seeded per worker by Lightning); when a
random crop leaves no eligible class the sample is re-drawn (another crop) up to ``max_tries``
times. Validation / test are deterministic: the class comes from a generator seeded by the image
name (``generator_for(name, "binarize")``), so every pass and every run evaluate the same targets.

Design note: the *suggestion* channels are **not** produced here. Suggestion generators are
components (``leseg.components.suggestions``), which the data layer must not import
(docs/ARCHITECTURE.md), and the number of suggestion channels is a property of the network's input;
the S5 method (:mod:`leseg.methods.s5`) synthesises them from this binary ``label`` on the device
right after the batch is transferred, seeded per image name at validation / test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from leseg.data.binarize import BinarizeTarget
from leseg.data.datamodules import CamVidDataModule, CityscapesDataModule, VOCDataModule

__all__ = [
    "BINARY_CLASS_NAMES",
    "BINARY_PALETTE",
    "BinarizedDataset",
    "BinaryCamVidDataModule",
    "BinaryCityscapesDataModule",
    "BinaryDataModuleMixin",
    "BinaryVOCDataModule",
]

BINARY_CLASS_NAMES = ("background", "foreground")
BINARY_PALETTE = np.array([[0, 0, 0], [255, 255, 255]], dtype=np.uint8)


class BinarizedDataset(Dataset):
    """Wrap a dict-sample segmentation dataset: ``label`` → binary target of one chosen class.

    Args:
        dataset: returns dicts with ``label`` (H, W) int64 trainIds (255 = ignore) and ``name``.
        binarize: the class-choice rule (:class:`~leseg.data.binarize.BinarizeTarget`).
        training: True → random class per call; False → deterministic per image name.
        void_as_background: True (S5 reference) → ignored pixels become background 0;
            False → they stay 255 (excluded from loss and metrics).
        max_tries: training only: samples drawn (new random crops) before giving up when a crop
            has no eligible class.

    Raises:
        ValueError: ``max_tries < 1``; at ``__getitem__``, a sample without ``label``/``name``, or
            no eligible class (for validation at once, for training after ``max_tries`` draws;
            the message names the image and lists the class sizes).
    """

    def __init__(self, dataset: Dataset, binarize: BinarizeTarget, training: bool,
                 void_as_background: bool = True, max_tries: int = 10) -> None:
        if max_tries < 1:
            raise ValueError(f"BinarizedDataset: max_tries must be >= 1, got {max_tries}")
        self.dataset = dataset
        self.binarize = binarize
        self.training = bool(training)
        self.void_as_background = bool(void_as_background)
        self.max_tries = int(max_tries)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        tries = self.max_tries if self.training else 1
        for attempt in range(tries):
            sample = self.dataset[index]
            if "label" not in sample or "name" not in sample:
                raise ValueError(f"BinarizedDataset: samples need 'label' and 'name', got keys "
                                 f"{sorted(sample)}")
            label = sample["label"]
            try:
                target, chosen = self.binarize(label, name=str(sample["name"]),
                                               training=self.training)
            except ValueError as err:
                if attempt + 1 < tries:
                    continue
                extra = f" after {tries} random crops" if self.training else ""
                raise ValueError(f"{err}{extra}; lower data.min_pixels or enlarge the crop") \
                    from err
            break
        binary = target.long()
        if not self.void_as_background:
            binary[label == self.binarize.ignore_index] = self.binarize.ignore_index
        out = dict(sample)
        out["label"] = binary
        out["class_id"] = torch.tensor(chosen, dtype=torch.long)
        return out


class BinaryDataModuleMixin:
    """Turn a :class:`~leseg.data.datamodules.SegmentationDataModule` into S5's binary task.

    Every dataset it builds (train, val, test) is wrapped in :class:`BinarizedDataset`; the
    module has two classes (``background``, ``foreground``): ``num_classes`` = 2, the source
    dataset's count is ``source_num_classes`` (19 for Cityscapes).

    Args:
        num_classes: must be 2 (the binary task).
        min_pixels: minimum class size at ``reference_size`` (S5: 100 at 1024 × 2048; scaled with
            the label's resolution, see :class:`~leseg.data.binarize.BinarizeTarget`).
        reference_size: (H, W) at which ``min_pixels`` is stated.
        exclude_classes: trainIds never chosen (VOC: ``[0]``, the background).
        void_as_background: see :class:`BinarizedDataset` (S5: True).
        max_tries: see :class:`BinarizedDataset`.
        **kwargs: the base DataModule's arguments.
    """

    def __init__(self, *, num_classes: int = 2, min_pixels: int = 100,
                 reference_size: Sequence[int] = (1024, 2048), exclude_classes: Sequence[int] = (),
                 void_as_background: bool = True, max_tries: int = 10, **kwargs: Any) -> None:
        if int(num_classes) != 2:
            raise ValueError(f"data.num_classes={num_classes}: a binarised DataModule has 2 "
                             f"classes (background, foreground of the chosen class)")
        super().__init__(num_classes=self.dataset_cls.info.num_classes, **kwargs)
        self.source_num_classes = self.num_classes
        self.num_classes = 2
        self.binarize = BinarizeTarget(min_pixels=min_pixels, reference_size=reference_size,
                                       ignore_index=self.ignore_index,
                                       exclude_classes=exclude_classes)
        self.void_as_background = bool(void_as_background)
        self.max_tries = int(max_tries)
        self.source_class_names = list(self.dataset_cls.info.class_names)

    @property
    def class_names(self) -> list[str]:
        """``["background", "foreground"]`` (the binary task's classes)."""
        return list(BINARY_CLASS_NAMES)

    @property
    def palette(self) -> np.ndarray:
        """(2, 3) uint8: black background, white foreground."""
        return BINARY_PALETTE.copy()

    def _make(self, split: str, role: str, transforms, ids=None, ids_source=None,
              label_dir=None) -> Dataset:
        base = super()._make(split, role, transforms, ids, ids_source, label_dir)
        return BinarizedDataset(base, self.binarize, training=role == "train",
                                void_as_background=self.void_as_background,
                                max_tries=self.max_tries)


class BinaryCityscapesDataModule(BinaryDataModuleMixin, CityscapesDataModule):
    """Cityscapes layout (and ``synthetic_city``), binarised for S5 (see the mixin)."""


class BinaryVOCDataModule(BinaryDataModuleMixin, VOCDataModule):
    """VOC layout (and ``synthetic_voc``), binarised; pass ``exclude_classes=[0]`` (background)."""



class BinaryCamVidDataModule(BinaryDataModuleMixin, CamVidDataModule):
    """CamVid (SegNet layout), binarised for S5: one of the 11 classes per sample is the
    foreground (see the mixin); unlabelled pixels (raw 11) are void."""
