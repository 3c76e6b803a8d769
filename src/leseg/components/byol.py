"""BYOL's regression loss between online predictions and target projections.

Grill et al., "Bootstrap Your Own Latent" (NeurIPS 2020), §3.2, eq. 2: for views v, v′ of one
image, ℓ(p, z′) = 2 − 2·⟨p/‖p‖, z′/‖z′‖⟩ with z′ from the target network (stop-gradient),
symmetrised over the two views. Tensor code only: used by :class:`leseg.methods.byol.BYOL`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["byol_loss", "normalized_regression_loss"]


def normalized_regression_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """ℓ(p, z) = 2 − 2·cos(p, z), averaged over the batch; z is detached (stop-gradient).

    Args:
        p: (B, D) float predictions of the online network.
        z: (B, D) float projections of the target network.

    Returns:
        Scalar float tensor in [0, 4] (0 when p and z point the same way, 2 when orthogonal).

    Raises:
        ValueError: shapes differ or are not (B, D).
    """
    if p.ndim != 2 or p.shape != z.shape:
        raise ValueError(f"BYOL loss needs two (B, D) tensors of one shape, got {tuple(p.shape)} "
                         f"and {tuple(z.shape)}")
    cos = (F.normalize(p, dim=1) * F.normalize(z.detach(), dim=1)).sum(dim=1)
    return (2.0 - 2.0 * cos).mean()


def byol_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor,
              z2: torch.Tensor) -> torch.Tensor:
    """Symmetrised BYOL loss ℓ(p1, z2) + ℓ(p2, z1) (Grill et al. 2020, eq. 2 and §3.2).

    Args:
        p1, p2: (B, D) online predictions of views 1 and 2.
        z1, z2: (B, D) target projections of views 1 and 2 (gradients are stopped).

    Returns:
        Scalar float tensor in [0, 8].
    """
    return normalized_regression_loss(p1, z2) + normalized_regression_loss(p2, z1)
