"""Auxiliary FCN head on an intermediate backbone level (deep supervision).

PSPNet (Zhao et al., CVPR 2017, §3.4) introduced the auxiliary loss on ResNet's stage 4 (layer3);
U2PL / S4MC use it for Cityscapes with weight 0.4 (U2PL Cityscapes config): a 3×3
conv-BN-ReLU to 256 channels, Dropout2d(0.1) and a 1×1 classifier on layer3 (1024 channels on
ResNet-50/101). The head is used for training only; inference reads the main head's logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from leseg.models.heads.deeplab import check_feature_count, conv_bn_relu, resolve_index

__all__ = ["FCNAuxHead"]


class FCNAuxHead(nn.Module):
    """3×3 conv-BN-ReLU → Dropout2d → 1×1 conv on one backbone level.

    Args:
        in_channels: widths of all backbone levels (``Backbone.channels``), finest first.
        num_classes: K.
        in_index: the level it reads (default -2: layer3 of a ResNet, as PSPNet/U2PL).
        channels: hidden width (256).
        dropout: drop probability before the classifier (0.1).

    Forward: list of (B, in_channels[i], h_i, w_i) features → logits (B, K, h, w) at the
    resolution of level ``in_index``.

    Raises:
        ValueError: ``in_index`` out of range; wrong number of feature levels in forward.
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, in_index: int = -2,
                 channels: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        self.in_channels = [int(c) for c in in_channels]
        self.in_index = resolve_index(in_index, len(self.in_channels))
        self.num_classes = int(num_classes)
        self.block = nn.Sequential(
            conv_bn_relu(self.in_channels[self.in_index], channels, kernel_size=3),
            nn.Dropout2d(dropout),
        )
        self.classifier = nn.Conv2d(channels, self.num_classes, kernel_size=1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits (B, K, h, w) at the resolution of ``features[in_index]``."""
        check_feature_count(features, self.in_channels, type(self).__name__)
        return self.classifier(self.block(features[self.in_index]))
