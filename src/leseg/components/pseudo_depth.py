"""Pseudo-depth distillation: the reverse Huber (berHu) loss against a frozen depth teacher.

Hoyer et al., CVPR 2021 (``label_selection.py``, label-selection student of exp 211): the student's
disparity is pulled towards the frozen SDE teacher's with berHu (Laina et al., 3DV 2016),
threshold c = 0.2 · max |error| over the batch, the bottom 10 % of rows (ego vehicle) masked:

    berHu(e) = |e|                 if |e| ≤ c
               (e² + c²) / (2c)    otherwise.

Used here as the depth loss of the multi-task network when no frame sequences are available.
"""

from __future__ import annotations

import torch

__all__ = ["berhu_loss"]


def berhu_loss(pred: torch.Tensor, target: torch.Tensor, bottom_share: float = 0.1,
               threshold_ratio: float = 0.2) -> torch.Tensor:
    """berHu of pred against target (both (B, 1, H, W) or (B, H, W) disparities).

    Returns:
        Scalar mean over the kept pixels (rows above the bottom ``bottom_share``); 0 (attached
        to the graph) when the error is zero everywhere.
    """
    if pred.shape != target.shape:
        raise ValueError(f"berHu: prediction {tuple(pred.shape)} and target "
                         f"{tuple(target.shape)} differ in shape")
    rows = pred.shape[-2]
    keep = rows - int(round(bottom_share * rows))
    err = (pred - target.detach())[..., :keep, :].abs()
    c = threshold_ratio * err.detach().max()
    if float(c) == 0.0:
        return err.mean() * 0.0 if err.numel() else pred.sum() * 0.0
    return torch.where(err <= c, err, (err ** 2 + c ** 2) / (2 * c)).mean()
