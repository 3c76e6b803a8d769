"""Fully supervised segmentation: the baseline every label-efficient method is compared with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from leseg.components.losses import cross_entropy
from leseg.components.ohem import ohem_cross_entropy
from leseg.methods.base import SegmentationModule
from leseg.utils.config import choice

SUP_LOSSES = ("ce", "ohem")


class SupervisedSegmentation(SegmentationModule):
    """Pixel-wise cross-entropy (or OHEM) on labelled images, optionally with an auxiliary head.

    Batch: ``image`` (B, 3, H, W) float32 normalised, ``label`` (B, H, W) int64 in [0, K) ∪ {255}.
    Loss: mean cross-entropy over non-ignored pixels of the logits at the label size, or OHEM
    cross-entropy (pixels whose true-class probability is ≤ ``ohem_thresh``, at least
    ``ohem_min_kept``; U2PL / mmsegmentation's Cityscapes recipe), plus ``aux_weight`` × the same
    criterion on the auxiliary head's logits (PSPNet deep supervision, 0.4 in U2PL).

    Args:
        net, num_classes, ignore_index, optimizer, scheduler, inference, class_names, name: see
            :class:`~leseg.methods.base.SegmentationModule`.
        sup_loss: ``ce`` or ``ohem``.
        ohem_thresh, ohem_min_kept: OHEM parameters (0.7, 100,000 pixels).
        aux_weight: weight ≥ 0 of the auxiliary loss; > 0 needs ``net.aux_head``
            (``model.aux_head``).

    Raises:
        ValueError: an unknown ``sup_loss``, a negative ``aux_weight``, or ``aux_weight`` > 0 for
            a network without an auxiliary head (names ``model.aux_head``).
    """

    def __init__(self, net: nn.Module, num_classes: int, ignore_index: int = 255,
                 optimizer: dict[str, Any] | None = None,
                 scheduler: dict[str, Any] | None = None,
                 inference: dict[str, Any] | None = None,
                 class_names: list[str] | None = None, name: str = "supervised",
                 sup_loss: str = "ce", ohem_thresh: float = 0.7, ohem_min_kept: int = 100_000,
                 aux_weight: float = 0.0) -> None:
        super().__init__(net, num_classes, ignore_index, optimizer, scheduler, inference,
                         class_names, name)
        self.sup_loss = choice(sup_loss, SUP_LOSSES, "method.sup_loss")
        if aux_weight < 0:
            raise ValueError(f"method.aux_weight must be >= 0, got {aux_weight}")
        if aux_weight > 0 and getattr(net, "aux_head", None) is None:
            raise ValueError(f"method.aux_weight={aux_weight} needs an auxiliary head: set "
                             f"model.aux_head (e.g. leseg.models.heads.FCNAuxHead on layer3); "
                             f"{type(net).__name__} has none")
        self.ohem_thresh, self.ohem_min_kept = float(ohem_thresh), int(ohem_min_kept)
        self.aux_weight = float(aux_weight)

    def supervised_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """CE or OHEM CE of logits (B, K, H, W) against labels (B, H, W) int64 (255 ignored)."""
        if self.sup_loss == "ohem":
            return ohem_cross_entropy(logits, labels, self.ignore_index, self.ohem_thresh,
                                      self.ohem_min_kept)
        return cross_entropy(logits, labels, ignore_index=self.ignore_index)

    def student_outputs(self, images: torch.Tensor, representation: bool = False
                        ) -> dict[str, torch.Tensor]:
        """``logits`` (B, K, H, W), plus ``aux`` when weighted and ``rep`` when asked for."""
        if not (representation or self.aux_weight > 0):
            return {"logits": self.net(images)}
        return self.net.forward_train(images, representation=representation)

    def labeled_loss(self, outputs: Mapping[str, torch.Tensor], labels: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(L_sup + aux_weight · L_aux, L_aux or None)`` for outputs of :meth:`student_outputs`."""
        loss = self.supervised_loss(outputs["logits"], labels)
        if self.aux_weight > 0:
            aux = self.supervised_loss(outputs["aux"], labels)
            return loss + self.aux_weight * aux, aux
        return loss, None

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """One optimisation step's loss (scalar float32)."""
        images, labels = batch["image"], batch["label"]
        loss, loss_aux = self.labeled_loss(self.student_outputs(images), labels)
        if loss_aux is not None:
            self.log("train/loss_aux", loss_aux, batch_size=images.shape[0])
        self.log("train/loss", loss, prog_bar=True, batch_size=images.shape[0])
        return loss
