"""DepthMix masks and the confidence-share pseudo-label weight (Hoyer et al., CVPR 2021, §3.3).

DepthMix (Hoyer et al.'s ``train.py``): for a pair (a, b) with per-image min-max normalised disparities
d_a, d_b ∈ [0, 1], image a keeps its pixel where it is closer than — or within ``margin`` (0.03)
normalised disparity of — b:  M_a = [d_a ≥ d_b − margin] · [d_a ≥ threshold]  (threshold 0 = no
effect), and takes b's pixel elsewhere. Unlike the reference (batch size exactly 2, pairs (0, 1)),
partners are drawn within the batch (:func:`leseg.components.mixing.partner_indices`), so any batch
size ≥ 2 works. The masks follow :mod:`leseg.components.mixing`'s convention (True = take the
partner's pixel) so that :func:`~leseg.components.mixing.apply_mix` mixes images, teacher
probabilities and validity masks alike.

The pseudo-label weight (DACS / ClassMix style, one scalar per batch, as in that ``train.py``) is the
share of pixels whose maximum (mixed) teacher probability is ≥ 0.968; the unsupervised loss is
that weight times the CE averaged over *all* pixels, ignored ones counting 0
(:func:`weighted_pixel_ce`), as the reference's ``cross_entropy2d(..., pixel_weights=...)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["confidence_share_weight", "depthmix_masks", "normalize_disparity",
           "weighted_pixel_ce"]


def normalize_disparity(disp: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Per-image min-max normalisation of disparities (B, H, W) or (B, 1, H, W) to [0, 1].

    A constant image maps to 0 everywhere.
    """
    flat = disp.reshape(disp.shape[0], -1)
    lo = flat.min(dim=1).values.view(-1, *([1] * (disp.dim() - 1)))
    hi = flat.max(dim=1).values.view(-1, *([1] * (disp.dim() - 1)))
    return (disp - lo) / (hi - lo).clamp(min=eps)


def depthmix_masks(disp: torch.Tensor, partner: torch.Tensor, margin: float = 0.03,
                   threshold: float = 0.0) -> torch.Tensor:
    """DepthMix masks (True = take the partner's pixel).

    Args:
        disp: (B, H, W) or (B, 1, H, W) normalised disparity in [0, 1] (larger = closer).
        partner: (B,) int64 partner indices (≠ i).
        margin: normalised-disparity tolerance (0.03): a keeps its pixel unless b is closer by more.
        threshold: a keeps only pixels with d_a ≥ threshold (0 = every pixel passes).

    Returns:
        (B, H, W) bool; element i is True where image i takes ``partner[i]``'s pixel, i.e. where
        NOT (d_i ≥ d_partner − margin and d_i ≥ threshold).

    Raises:
        ValueError: ``partner`` length differs from the batch size.
    """
    if disp.dim() == 4:
        if disp.shape[1] != 1:
            raise ValueError(f"disp must be (B, H, W) or (B, 1, H, W), got {tuple(disp.shape)}")
        disp = disp[:, 0]
    if partner.shape != (disp.shape[0],):
        raise ValueError(f"partner must be ({disp.shape[0]},), got {tuple(partner.shape)}")
    keep = (disp >= disp[partner] - margin) & (disp >= threshold)
    return ~keep


def confidence_share_weight(probs: torch.Tensor, threshold: float = 0.968) -> torch.Tensor:
    """Share of pixels whose maximum class probability is ≥ ``threshold``: one scalar per batch.

    Args:
        probs: (B, K, H, W) teacher probabilities (rows may be all-zero for ignored ground-truth
            pixels of GT-mixed samples; they count as not confident).

    Returns:
        0-d float tensor in [0, 1] (no gradient).
    """
    if probs.dim() != 4:
        raise ValueError(f"probs must be (B, K, H, W), got {tuple(probs.shape)}")
    with torch.no_grad():
        return (probs.max(dim=1).values >= threshold).float().mean()


def weighted_pixel_ce(logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | float,
                      ignore_index: int = 255) -> torch.Tensor:
    """L_u = w · (1 / (B·H·W)) Σ_pixels CE, ignored pixels contributing 0 but counted.

    Hoyer et al.'s ``calc_pseudo_label_loss`` (``train.py``) calls ``cross_entropy2d`` of
    ``loss/loss.py`` with ``pixel_weights = w · ones``: the per-pixel CE (``reduction="none"``,
    0 at ignored pixels) is multiplied by w and averaged over every pixel. A plain ignore-aware
    mean would be larger by all / valid pixels whenever the pseudo-labels contain ignore
    (GT-mixed samples, padding).

    Args:
        logits: (B, K, h, w) float student logits; bilinearly upsampled (align_corners=False) to
            the label size if it differs.
        labels: (B, H, W) int64 in [0, K) ∪ {ignore_index}.
        weight: the batch's pseudo-label weight w in [0, 1] (0-d tensor or float, no gradient).
        ignore_index: label of ignored pixels (255).

    Returns:
        0-d float tensor (0, still attached to the graph, when every pixel is ignored).

    Raises:
        ValueError: logits not (B, K, h, w) or labels not (B, H, W) with the same B.
    """
    if logits.dim() != 4 or labels.dim() != 3 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits must be (B, K, h, w) and labels (B, H, W), got "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}")
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    per_pixel = F.cross_entropy(logits, labels, ignore_index=ignore_index, reduction="none")
    return weight * per_pixel.mean()
