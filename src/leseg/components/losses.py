"""Segmentation losses shared by the methods."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255,
                  weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean pixel-wise cross-entropy over non-ignored pixels.

    Args:
        logits: (B, K, h, w) float; bilinearly upsampled to the label size if it differs.
        labels: (B, H, W) int64 in [0, K) ∪ {ignore_index}.
        ignore_index: label value excluded from the mean (255).
        weight: optional per-class weights (K,).

    Returns:
        Scalar float tensor. When every pixel is ignored it is 0 (still attached to the graph)
        instead of PyTorch's NaN, so one fully-ignored crop cannot poison a run.
    """
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    if not bool((labels != ignore_index).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits, labels, weight=weight, ignore_index=ignore_index)
