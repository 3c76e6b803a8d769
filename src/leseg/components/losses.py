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


def normalized_focal_loss(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255,
                          gamma: float = 2.0, alpha: float = 0.5, eps: float = 1e-8
                          ) -> torch.Tensor:
    """Normalised focal loss (RITM: Sofiiuk et al., "Reviving Iterative Training with Mask
    Guidance for Interactive Segmentation", ICIP 2022, §3.3; ``isegm/model/losses.py``
    ``NormalizedFocalLossSigmoid``), written for softmax logits.

    Per image b with valid pixels V_b: β_i = (1 − p_t,i)^γ, and

        L_b = α · Σ_{i∈V_b} β_i · (−log p_t,i) / Σ_{i∈V_b} β_i,

    i.e. the focal weights are rescaled to sum to |V_b| (the rescaling factor is detached, as
    RITM's ``detach_delimeter=True``) and the sum is divided by |V_b|. Easy pixels (a large
    background that is already right) stop dominating the gradient, so a small object keeps its
    weight while the image is otherwise solved — the failure mode of plain CE with sparse click
    hints, where predicting background everywhere is the early optimum. Returns the mean of L_b
    over the images that have valid pixels (0, attached to the graph, when none has).

    Args:
        logits: (B, K, h, w) float; bilinearly upsampled to the label size if it differs.
        labels: (B, H, W) int64 in [0, K) ∪ {ignore_index}.
        gamma: focusing exponent γ ≥ 0 (RITM: 2). alpha: constant weight α (RITM: 0.5 for both
            foreground and background, i.e. a constant).

    Returns:
        Scalar float tensor.
    """
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    valid = labels != ignore_index
    if not bool(valid.any()):
        return logits.sum() * 0.0
    log_p = F.log_softmax(logits.float(), dim=1)
    log_pt = log_p.gather(1, labels.clamp(0, logits.shape[1] - 1)[:, None])[:, 0]
    beta = (1.0 - log_pt.exp()).clamp(min=0).pow(gamma) * valid
    norm = beta.sum(dim=(1, 2)).detach() + eps
    per_image = alpha * (beta * -log_pt).sum(dim=(1, 2)) / norm
    has_pixels = valid.any(dim=2).any(dim=1)
    return per_image[has_pixels].mean()
