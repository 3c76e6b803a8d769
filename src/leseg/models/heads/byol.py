"""BYOL's projector and predictor MLPs and the network they sit on (Grill et al., NeurIPS 2020, §3.3).

:class:`BYOLNetwork` is backbone → global average pool of one feature level → projector (the
online network without its predictor, and the target network).

Both are Linear(d_in → hidden) → BatchNorm1d(hidden) → ReLU → Linear(hidden → d_out):

- projector g: backbone representation y (2048-d for ResNet-50, 512-d for ResNet-18) → z;
- predictor q: z → q(z), same width as z (online network only).

Paper sizes: hidden 4096, output 256 (solo-learn and lightly use the same). The reference
segmentation project uses hidden 512, output 128 (``byol.py``); both come from config.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BYOLMLP", "BYOLNetwork", "prediction_head", "projection_head"]


class BYOLMLP(nn.Sequential):
    """Linear → BatchNorm1d → ReLU → Linear.

    Args:
        in_dim: input width.
        hidden_dim: hidden width (4096 in the paper, 512 in the reference project).
        out_dim: output width (256 in the paper, 128 in the reference project).

    Forward: (B, in_dim) float → (B, out_dim) float. BatchNorm1d needs B ≥ 2 in training mode.

    Raises:
        ValueError: a non-positive width.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int) -> None:
        dims = {"in_dim": in_dim, "hidden_dim": hidden_dim, "out_dim": out_dim}
        bad = {k: v for k, v in dims.items() if int(v) < 1}
        if bad:
            raise ValueError(f"BYOL MLP widths must be >= 1, got {bad}")
        super().__init__(
            nn.Linear(int(in_dim), int(hidden_dim)),
            nn.BatchNorm1d(int(hidden_dim)),
            nn.ReLU(inplace=True),
            nn.Linear(int(hidden_dim), int(out_dim)),
        )
        self.in_dim, self.hidden_dim, self.out_dim = int(in_dim), int(hidden_dim), int(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) → (B, out_dim).

        Raises:
            ValueError: ``x`` is not (B, in_dim).
        """
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"BYOL MLP expects (B, {self.in_dim}) inputs, got {tuple(x.shape)}")
        return super().forward(x)


def projection_head(in_dim: int, hidden_dim: int = 4096, out_dim: int = 256) -> BYOLMLP:
    """The projector g: representation (B, in_dim) → projection z (B, out_dim)."""
    return BYOLMLP(in_dim, hidden_dim, out_dim)


def prediction_head(dim: int = 256, hidden_dim: int = 4096) -> BYOLMLP:
    """The predictor q: projection (B, dim) → prediction (B, dim)."""
    return BYOLMLP(dim, hidden_dim, dim)


class BYOLNetwork(nn.Module):
    """Backbone → global average pool of one feature level → projector.

    Args:
        backbone: a :class:`leseg.models.backbones.Backbone` (list of features, ``channels``).
        projector: the projection MLP; its ``in_dim`` must equal the pooled level's width.
        feature_level: index into the backbone's levels (−1 = deepest, ResNet layer4).

    Forward: images (B, 3, H, W) float32 → ``(y, z)``: representation (B, C) and projection
    (B, projector.out_dim).

    Raises:
        ValueError: projector width not matching the level's channels (names both).
    """

    def __init__(self, backbone: nn.Module, projector: BYOLMLP, feature_level: int = -1) -> None:
        super().__init__()
        channels = list(getattr(backbone, "channels", []))
        if not channels:
            raise ValueError("BYOLNetwork needs a backbone with a `channels` list (built by "
                             "leseg.models.backbones.build_backbone)")
        try:
            width = channels[feature_level]
        except IndexError:
            raise ValueError(f"feature_level={feature_level} is out of range for the backbone's "
                             f"{len(channels)} levels") from None
        if projector.in_dim != width:
            raise ValueError(f"projector in_dim={projector.in_dim} but backbone level "
                             f"{feature_level} has {width} channels")
        self.backbone, self.projector, self.feature_level = backbone, projector, feature_level

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, z)`` for images ``x`` (B, 3, H, W)."""
        y = self.backbone(x)[self.feature_level].mean(dim=(2, 3))
        return y, self.projector(y)
