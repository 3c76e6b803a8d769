"""AffinityNet feature head (Ahn & Kwak, CVPR 2018, §3.2; psa ``network/resnet38_aff.py``).

Three trunk taps (ResNet-38: BN-ReLU'd inputs of b5 (512 ch) and b6 (1024 ch) and the final 4096-ch
features) → 1×1 convs without bias to 64 / 128 / 256 channels (Kaiming-normal init) + ELU →
concatenation (448) → 1×1 conv 448 → 448 (Xavier-uniform, gain 4) + ELU: one feature vector per
pixel of the stride-8 grid, compared by :func:`leseg.components.affinity.affinity`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AffinityHead", "AffinityNetModel"]


class AffinityHead(nn.Module):
    """Taps → (B, sum(widths), h, w) affinity features.

    Args:
        in_channels: widths of the three taps (512, 1024, 4096 for ResNet-38).
        widths: projection widths (64, 128, 256).
    """

    def __init__(self, in_channels: Sequence[int], widths: Sequence[int] = (64, 128, 256)) -> None:
        super().__init__()
        if len(in_channels) != len(widths):
            raise ValueError(f"{len(in_channels)} taps but {len(widths)} projection widths")
        self.proj = nn.ModuleList(nn.Conv2d(c, w, 1, bias=False)
                                  for c, w in zip(in_channels, widths))
        total = int(sum(widths))
        self.fuse = nn.Conv2d(total, total, 1, bias=False)
        for conv in self.proj:
            nn.init.kaiming_normal_(conv.weight)
        nn.init.xavier_uniform_(self.fuse.weight, gain=4)
        self.out_channels = total

    def forward(self, taps: Sequence[torch.Tensor]) -> torch.Tensor:
        x = torch.cat([F.elu(p(t)) for p, t in zip(self.proj, taps)], dim=1)
        return F.elu(self.fuse(x))


class AffinityNetModel(nn.Module):
    """Trunk (with ``forward_taps`` and ``tap_channels``) + :class:`AffinityHead`.

    ``forward(x)``: images (B, 3, H, W) → features (B, 448, ⌈H/8⌉, ⌈W/8⌉).

    Args:
        trunk: e.g. :class:`~leseg.models.resnet38.ResNet38`.
        widths: projection widths of the three taps (64, 128, 256).
        num_classes: K of the dataset (21), stored only (affinities have no class output).
        name: short model name.
    """

    def __init__(self, trunk: nn.Module, widths: Sequence[int] = (64, 128, 256),
                 num_classes: int = 21, name: str = "affinity") -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.backbone = trunk
        self.head = AffinityHead(trunk.tap_channels, widths)
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.forward_taps(x))
