"""AffinityNet: pixel affinities learnt from CRF-refined CAM seeds (stage 3 of SSENet's pipeline).

Ahn & Kwak, "Learning Pixel-level Semantic Affinity with Image-level Supervision for Weakly
Supervised Semantic Segmentation" (CVPR 2018, §3.2–3.3); reference ``jiwoon-ahn/psa`` as used by
SSENet (psa ``train_aff.py``). One training step on crops x (B, 3, H, W) with the two
CRF label maps (``crf_la``: α = 4, ``crf_ha``: α = 24; (B, H, W), 255 = padding) jointly cropped:

1. both maps → stride-8 grid by average pooling of their one-hot maps and argmax, i.e. the
   majority label of each 8×8 cell (:func:`~leseg.components.affinity.downsample_labels`; the
   reference pools the CRF score maps instead, which differs at class boundaries: see there);
2. affinity labels: confident foreground from ``la``, confident background from ``ha``, the rest
   ignored (:func:`~leseg.components.affinity.affinity_labels`);
3. pair sets within radius 5 (P_bg+, P_fg+, P−) and affinities a_ij = exp(−mean|f_i − f_j|) of the
   448-d features;
4. L = ¼·L_bg+ + ¼·L_fg+ + ½·L− (:func:`~leseg.components.affinity.affinity_loss`).

The optimiser is SSENet's four-group poly SGD (:func:`leseg.methods.optim.four_param_groups`,
weight decay in its own slot). No validation metric: the random-walk stage
(:mod:`leseg.stages.ssenet`) measures the pseudo-masks.

Logged: ``train/loss``, ``train/loss_bg``, ``train/loss_fg``, ``train/loss_neg``.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from leseg.components.affinity import (
    RADIUS,
    affinity,
    affinity_label_pairs,
    affinity_labels,
    affinity_loss,
    downsample_labels,
)
from leseg.methods.optim import four_group_poly_optimizers

__all__ = ["AffinityNet"]


class AffinityNet(L.LightningModule):
    """AffinityNet LightningModule (see the module docstring).

    Args:
        net: :class:`~leseg.models.heads.affinity.AffinityNetModel` (images → (B, D, h, w)).
        num_classes: 21 (background + 20), the label range of the CRF maps.
        radius: pair radius on the stride-8 grid (5).
        optimizer, scheduler: as :class:`~leseg.methods.ssenet.SSENetCAM`.
        ignore_index: 255; name: short method name.
    """

    def __init__(self, net: nn.Module, num_classes: int = 21, radius: int = RADIUS,
                 optimizer: dict[str, Any] | None = None, scheduler: dict[str, Any] | None = None,
                 ignore_index: int = 255, name: str = "affinitynet", **unused: Any) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"], logger=False)
        self.net = net
        self.num_classes = int(num_classes)
        self.radius = int(radius)
        self.ignore_index = int(ignore_index)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Affinity features (B, D, ⌈H/8⌉, ⌈W/8⌉) of images (B, 3, H, W)."""
        return self.net(images)

    def pair_affinities(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Affinities (B, K, N) of the radius pairs of the image's stride-8 grid, and the grid."""
        feats = self.net(images)
        return affinity(feats, self.radius), tuple(feats.shape[-2:])

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Three-term affinity loss on the pair sets derived from the two CRF maps.

        Raises:
            KeyError: the batch has no CRF maps (``data.crf_dir`` unset).
        """
        if "crf_la" not in batch or "crf_ha" not in batch:
            raise KeyError("AffinityNet needs batches with CRF maps 'crf_la'/'crf_ha': set "
                           "data.crf_dir=<output of `python -m leseg.stages.ssenet crf`> "
                           "(data=*_image_labels)")
        feats = self.net(batch["image"])
        grid = feats.shape[-2:]
        la = downsample_labels(batch["crf_la"], 8, self.num_classes, self.ignore_index)
        ha = downsample_labels(batch["crf_ha"], 8, self.num_classes, self.ignore_index)
        if la.shape[-2:] != grid:
            raise ValueError(f"CRF maps pool to {tuple(la.shape[-2:])} but the features are "
                             f"{tuple(grid)}; use crops whose size is a multiple of 8")
        labels = affinity_labels(la, ha, self.ignore_index)
        bg_pos, fg_pos, neg = affinity_label_pairs(labels, self.radius, self.ignore_index)
        out = affinity_loss(affinity(feats, self.radius), bg_pos, fg_pos, neg)
        self.log_dict({"train/loss_bg": out["bg"], "train/loss_fg": out["fg"],
                       "train/loss_neg": out["neg"]}, on_step=True)
        self.log("train/loss", out["loss"], on_step=True, prog_bar=True)
        return out["loss"]

    def configure_optimizers(self) -> dict[str, Any]:
        """Four groups (×1/×2/×10/×20; new = the affinity head), poly LR per iteration."""
        return four_group_poly_optimizers(self, ("head.",))
