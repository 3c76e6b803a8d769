"""Online hard example mining (OHEM) cross-entropy for segmentation.

The pixel-wise OHEM of U2PL's ``OhemCrossEntropy2dTensor`` / mmsegmentation's ``OHEMPixelSampler``
(Shrivastava et al., CVPR 2016, applied per pixel), used by U2PL/S4MC as the Cityscapes
supervised loss with ``thresh`` = 0.7 and ``min_kept`` = 100,000 (U2PL ``loss_helper.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def ohem_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = 255,
                       thresh: float = 0.7, min_kept: int = 100_000) -> torch.Tensor:
    """Mean cross-entropy over the hard pixels: low predicted probability of the true class.

    With p_i = softmax(logits)_i[y_i] over the N valid pixels (label ≠ ``ignore_index``):

    - if N < ``min_kept``: every valid pixel is kept (plain CE; U2PL's behaviour);
    - otherwise the threshold is t = max(``thresh``, p_(min_kept)), p_(k) being the k-th smallest
      p_i (so at least ``min_kept`` pixels survive), and pixels with p_i ≤ t are kept (U2PL keeps
      ``≤``; ties at t may keep a few more than ``min_kept``).

    The loss is the mean CE over kept pixels; the selection itself carries no gradient.

    Args:
        logits: (B, C, H, W) float logits at the label resolution.
        labels: (B, H, W) int64 trainIds in [0, C) ∪ {ignore_index}.
        ignore_index: label never kept (255).
        thresh: probability threshold in [0, 1] (0.7).
        min_kept: minimum number of kept pixels per call (whole batch), ≥ 0 (100,000).

    Returns:
        Scalar float tensor; 0 attached to the graph when no pixel is kept (all ignored, or
        ``min_kept`` = 0 and every pixel is easier than ``thresh``).

    Raises:
        ValueError: shape mismatch, ``thresh`` outside [0, 1], or negative ``min_kept``.
    """
    if logits.dim() != 4 or not logits.is_floating_point():
        raise ValueError(f"logits must be a float (B, C, H, W) tensor, got {logits.dtype} "
                         f"{tuple(logits.shape)}")
    batch, _, height, width = logits.shape
    if labels.shape != (batch, height, width):
        raise ValueError(f"labels must have shape (B, H, W) = {(batch, height, width)} matching "
                         f"logits (upsample logits first), got {tuple(labels.shape)}")
    if not 0.0 <= thresh <= 1.0:
        raise ValueError(f"OHEM thresh must be a probability in [0, 1], got {thresh}")
    if min_kept < 0:
        raise ValueError(f"OHEM min_kept must be >= 0, got {min_kept}")

    labels = labels.long()
    valid = labels != ignore_index
    num_valid = int(valid.sum())
    with torch.no_grad():
        if num_valid >= min_kept and num_valid > 0:
            safe_labels = torch.where(valid, labels, torch.zeros_like(labels))
            probs = logits.detach().softmax(dim=1)
            true_prob = probs.gather(1, safe_labels.unsqueeze(1)).squeeze(1)
            threshold = torch.tensor(thresh, dtype=true_prob.dtype, device=true_prob.device)
            if min_kept > 0:
                kth = true_prob[valid].kthvalue(min_kept).values
                threshold = torch.maximum(threshold, kth)
            kept = valid & (true_prob <= threshold)
        else:
            kept = valid
    if not bool(kept.any()):
        return logits.sum() * 0.0
    targets = torch.where(kept, labels, torch.full_like(labels, ignore_index))
    return F.cross_entropy(logits, targets, ignore_index=ignore_index)
