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
share of pixels whose maximum (mixed) teacher probability is ≥ 0.968.
"""

from __future__ import annotations

import torch

__all__ = ["confidence_share_weight", "depthmix_masks", "normalize_disparity"]


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
