"""Fully supervised segmentation: the baseline every label-efficient method is compared with."""

from __future__ import annotations

from typing import Any

import torch

from leseg.components.losses import cross_entropy
from leseg.methods.base import SegmentationModule


class SupervisedSegmentation(SegmentationModule):
    """Pixel-wise cross-entropy on labelled images (ignore_index excluded).

    Batch: ``image`` (B, 3, H, W) float32 normalised, ``label`` (B, H, W) int64 in [0, K) ∪ {255}.
    Loss: mean cross-entropy over non-ignored pixels of the logits upsampled to the label size.
    Constructor arguments: see :class:`~leseg.methods.base.SegmentationModule`.
    """

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """One optimisation step's loss (scalar float32)."""
        images, labels = batch["image"], batch["label"]
        loss = cross_entropy(self(images), labels, ignore_index=self.ignore_index)
        self.log("train/loss", loss, prog_bar=True, batch_size=images.shape[0])
        return loss
