"""Class-activation-map (CAM) network: trunk → Dropout2d → 1×1 conv without bias.

Zhou et al., "Learning Deep Features for Discriminative Localization" (CVPR 2016); the SSENet form
(Wang et al., arXiv 1909.03714; ``resnet38_cls_ser.py``): the class map is computed *before* pooling,
M = conv1x1(dropout(features)), upsampled bilinearly to the input size, and the class scores are
its global average (equivalent to CAM-then-GAP for a linear classifier).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CAMHead", "CAMNet"]


class CAMHead(nn.Module):
    """Dropout2d(p) → 1×1 convolution ``in_channels → num_classes`` without bias (Xavier init).

    Args:
        in_channels: trunk width (4096 for ResNet-38).
        num_classes: foreground classes (20 for VOC; no background channel).
        dropout: Dropout2d probability (0.5 in the reference).

    Input (B, in_channels, h, w) → raw class maps (B, num_classes, h, w), unbounded float.
    """

    def __init__(self, in_channels: int, num_classes: int = 20, dropout: float = 0.5) -> None:
        super().__init__()
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(in_channels, num_classes, 1, bias=False)
        nn.init.xavier_uniform_(self.classifier.weight)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(features))


class CAMNet(nn.Module):
    """Trunk + :class:`CAMHead`; the SSENet CAM network.

    Args:
        trunk: module (B, 3, H, W) → (B, C, h, w) with ``out_channels`` (e.g.
            :class:`~leseg.models.resnet38.ResNet38` or :class:`~leseg.models.resnet38.TimmCAMTrunk`).
        num_classes: K including background (21 for VOC, the framework's convention); the head
            has K − 1 class maps, one per foreground class (CAMs have no background channel).
        dropout: dropout of the head.
        name: short model name for logs / experiment names.

    Attributes:
        backbone: the trunk (pretrained: LR ×1 / ×2 groups); head: the new layers (×10 / ×20);
        num_classes: K; num_maps: K − 1.

    Raises:
        ValueError: num_classes < 2.
    """

    def __init__(self, trunk: nn.Module, num_classes: int = 21, dropout: float = 0.5,
                 name: str = "cam") -> None:
        super().__init__()
        if int(num_classes) < 2:
            raise ValueError(f"CAMNet num_classes counts the background too (21 for VOC), got "
                             f"{num_classes}")
        self.backbone = trunk
        self.num_classes = int(num_classes)
        self.num_maps = self.num_classes - 1
        self.head = CAMHead(trunk.out_channels, self.num_maps, dropout)
        self.name = name

    def forward(self, x: torch.Tensor, upsample: bool = True) -> torch.Tensor:
        """Raw class maps of images x (B, 3, H, W): (B, num_maps, H, W) if ``upsample`` (bilinear,
        align_corners=False) else at stride 8."""
        cam = self.head(self.backbone(x))
        if upsample:
            cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return cam
