"""SSENet CAM network: image-level classification with a scale-equivariance regulariser.

Wang, Zhang, Kan, Shan & Chen, "Self-supervised Scale Equivariant Network for Weakly Supervised
Semantic Segmentation" (arXiv 1909.03714, §3.2–3.3), reference ``YudeWang/SSENet-pytorch`` on
AffinityNet's code (``jiwoon-ahn/psa``); docs/REFERENCES.md. One training step on crops x
(B, 3, H, W) with multi-hot labels y (B, 20):

1. M = CAM map of x (trunk → Dropout2d → 1×1 conv without bias → bilinear upsample to H×W);
   L_cls = multilabel soft-margin loss of s = GAP(M);
2. x_s = bilinear resize of x by ``eq_scale`` = 0.3; M_s = its CAM map; L_cls_s likewise;
3. L_eq = mean (N(M_s) − N(resize(M, 0.3)))² with SSENet's per-class max normalisation N and absent
   classes zeroed (:func:`leseg.components.cam.equivariance_loss`);
4. L = ½·L_cls + ½·L_cls_s + ``eq_weight``·L_eq. With ``equivariance=False`` the loss is L_cls
   alone: the plain CAM baseline (psa's ResNet-38 classifier trained CAM-then-GAP).

Optimisation (SSENet defaults): SGD with four parameter groups — pretrained weights ×1 (with
weight decay), pretrained biases ×2 (no decay), new weights ×10 (decay), new biases ×20 (no decay)
— and poly LR (power 0.9) per iteration. The reference's ``PolyOptimizer`` passes the weight decay
positionally into SGD's *momentum* slot (psa issue #28: momentum 5e-4, no decay); here the
decay goes to ``weight_decay`` per group and ``momentum`` is its own key (0.9 by default; set it to
0.0005 and ``weight_decay`` to 0 to mimic the bug).

Evaluation (validation / test): the CAM-step prediction argmax([0.2, CAM_c…]) of CAMs aggregated
over ``val_scales`` (validation, single scale by default) or ``test_scales`` (1.0, 0.5, 1.5, 2.0
with flips: the papers' protocol), using the ground-truth image-level labels of each image (as the
papers do for pseudo-label generation on the training set), scored with the 21-class mIoU.

Logged: ``train/loss``, ``train/loss_cls``, ``train/loss_cls_small``, ``train/loss_eq``,
``val/mIoU`` (CAM step), ``test/mIoU`` (CAM step, multi-scale + flip).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from leseg.components.cam import (
    BG_SCORE,
    CAM_SCALES,
    EQ_SCALE,
    aggregate_cams,
    cam_prediction,
    classification_loss,
    equivariance_loss,
)
from leseg.methods.base import SegmentationModule
from leseg.methods.optim import four_group_poly_optimizers

__all__ = ["SSENetCAM"]

class SSENetCAM(SegmentationModule):
    """SSENet / plain-CAM LightningModule (see the module docstring).

    Args:
        net: :class:`~leseg.models.heads.cam.CAMNet` mapping (B, 3, H, W) to raw CAMs
            (B, num_classes − 1, H, W) (``num_maps`` = K − 1).
        num_classes: K = 21 (background + 20 classes) for the CAM-step evaluation.
        ignore_index: 255.
        optimizer: ``name`` (sgd), ``lr`` (0.01), ``momentum``, ``weight_decay`` (5e-4),
            ``lr_mults`` ([1, 2, 10, 20]).
        scheduler: :func:`leseg.methods.optim.build_scheduler` keys (poly, power 0.9).
        equivariance: add the scale branch and L_eq (SSENet); False = plain CAM.
        eq_scale: branch down-sampling rate (0.3); eq_weight: weight of L_eq (1).
        cls_weights: weights of (L_cls, L_cls_s) when ``equivariance`` (½, ½).
        bg_score: background score of the CAM-step prediction (0.2).
        val_scales, test_scales, flip: CAM aggregation for validation / test.
        inference, class_names, name: see :class:`~leseg.methods.base.SegmentationModule`.

    Batches: ``image`` (B, 3, H, W), ``class_labels`` (B, 20) float, and for evaluation
    ``label`` (B, H, W) int64.
    """

    def __init__(self, net: nn.Module, num_classes: int = 21, ignore_index: int = 255,
                 optimizer: dict[str, Any] | None = None, scheduler: dict[str, Any] | None = None,
                 equivariance: bool = True, eq_scale: float = EQ_SCALE, eq_weight: float = 1.0,
                 cls_weights: Sequence[float] = (0.5, 0.5), bg_score: float = BG_SCORE,
                 val_scales: Sequence[float] = (1.0,), test_scales: Sequence[float] = CAM_SCALES,
                 flip: bool = True, inference: dict[str, Any] | None = None,
                 class_names: list[str] | None = None, name: str = "ssenet") -> None:
        super().__init__(net, num_classes, ignore_index, optimizer, scheduler, inference,
                         class_names, name)
        if getattr(net, "num_maps", num_classes - 1) != num_classes - 1:
            raise ValueError(f"CAM net has {net.num_maps} class maps but num_classes="
                             f"{num_classes} (background + {num_classes - 1} expected)")
        if not 0 < eq_scale < 1:
            raise ValueError(f"method.eq_scale must lie in (0, 1), got {eq_scale}")
        self.equivariance = bool(equivariance)
        self.eq_scale = float(eq_scale)
        self.eq_weight = float(eq_weight)
        self.cls_weights = tuple(float(w) for w in cls_weights)
        self.bg_score = float(bg_score)
        self.val_scales = tuple(float(s) for s in val_scales)
        self.test_scales = tuple(float(s) for s in test_scales)
        self.flip = bool(flip)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """L = ½·L_cls(x) + ½·L_cls(x_0.3) + L_eq (SSENet) or L_cls(x) (plain CAM)."""
        x, y = batch["image"], batch["class_labels"].float()
        cam = self.net(x)
        loss_cls = classification_loss(cam, y)
        if not self.equivariance:
            loss = loss_cls
            self.log("train/loss_cls", loss_cls, on_step=True)
        else:
            small = F.interpolate(x, scale_factor=self.eq_scale, mode="bilinear",
                                  align_corners=False, recompute_scale_factor=False)
            cam_small = self.net(small)
            loss_cls_small = classification_loss(cam_small, y)
            loss_eq = equivariance_loss(cam_small, cam, y)
            loss = (self.cls_weights[0] * loss_cls + self.cls_weights[1] * loss_cls_small
                    + self.eq_weight * loss_eq)
            self.log_dict({"train/loss_cls": loss_cls, "train/loss_cls_small": loss_cls_small,
                           "train/loss_eq": loss_eq}, on_step=True)
        self.log("train/loss", loss, on_step=True, prog_bar=True)
        return loss

    def configure_optimizers(self) -> dict[str, Any]:
        """Four groups (×1/×2/×10/×20), weight decay on weights only, poly LR per iteration."""
        return four_group_poly_optimizers(self, ("head.",))

    # ---------------------------------------------------------------- inference
    def cams(self, images: torch.Tensor, class_labels: torch.Tensor,
             scales: Sequence[float] | None = None, flip: bool | None = None) -> torch.Tensor:
        """Normalised CAMs (B, 20, H, W) in [0, 1] (absent classes 0), multi-scale + flip."""
        return aggregate_cams(self.net, images, class_labels.float(),
                              self.test_scales if scales is None else scales,
                              self.flip if flip is None else flip)

    def predict_probs(self, images: torch.Tensor, out_size: tuple[int, int] | None = None,
                      tta: bool = False, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """Scores (B, 21, H, W): [bg_score, CAM_c…] (not probabilities; argmax = CAM step).

        Without ``class_labels`` every class counts as present (no image-level oracle)."""
        if class_labels is None:
            class_labels = images.new_ones(images.shape[0], self.num_classes - 1)
        scales = self.test_scales if tta else self.val_scales
        cams = self.cams(images, class_labels, scales, self.flip if tta else False)
        scores = torch.cat([torch.full_like(cams[:, :1], self.bg_score), cams], dim=1)
        if out_size is not None and tuple(scores.shape[-2:]) != tuple(out_size):
            scores = F.interpolate(scores, size=out_size, mode="bilinear", align_corners=False)
        return scores

    def _cam_eval(self, batch: dict[str, Any], metric, scales: Sequence[float],
                  flip: bool) -> torch.Tensor:
        cams = self.cams(batch["image"], batch["class_labels"], scales, flip)
        pred = cam_prediction(cams, self.bg_score)
        metric.update(pred, batch["label"])
        return pred

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """CAM-step prediction at ``val_scales`` (no flip), into the val confusion matrix."""
        return {"pred": self._cam_eval(batch, self.val_metric, self.val_scales, False)}

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """CAM-step prediction at ``test_scales`` with flips (the papers' protocol)."""
        return {"pred": self._cam_eval(batch, self.test_metric, self.test_scales, self.flip)}

    def on_test_epoch_end(self) -> None:
        """Log ``test/mIoU`` (CAM step) and keep the results for eval.py."""
        self.test_results = {"single_scale": self._log_metrics("test", self.test_metric)}
