"""ResNet encoder with five feature levels for the depth U-Net (Hoyer et al. ``resnet_encoder.py``).

Hoyer et al. (CVPR 2021, §3.1) use a torchvision ResNet-101 with a dilated layer4 (output stride 16)
and feed it RGB in [0, 1] normalised as (x − 0.45) / 0.225 (the monodepth2 convention). The five
levels are the stem ReLU (stride 2, 64 ch) and layer1–layer4 (256/512/1024/2048 ch for
ResNet-50/101; 64/128/256/512 for ResNet-18). Built with :func:`leseg.models.backbones.build_backbone`
(timm, weights from a local file only).
"""

from __future__ import annotations

import torch
from torch import nn

from leseg.models.backbones import build_backbone

__all__ = ["DepthEncoder", "MONODEPTH_MEAN", "MONODEPTH_STD"]

MONODEPTH_MEAN = 0.45
MONODEPTH_STD = 0.225


class DepthEncoder(nn.Module):
    """Five-level ResNet feature pyramid of images in [0, 1].

    Args:
        name: timm ResNet name (``resnet101`` in the paper, ``resnet50`` for label selection,
            ``resnet18`` for CPU runs).
        output_stride: 16 (paper: dilated layer4) or 32.
        weights: local ImageNet weights file or None.
        in_chans: input channels (3; 6 for the pose network's frame pairs).
        normalize: apply (x − 0.45) / 0.225 to the input (set False when it is already normalised).

    Attributes:
        channels: widths of the five levels, e.g. [64, 256, 512, 1024, 2048] for ResNet-101.
        reductions: their strides, e.g. [2, 4, 8, 16, 16] at output stride 16.
    """

    def __init__(self, name: str = "resnet101", output_stride: int = 16,
                 weights: str | None = None, in_chans: int = 3, normalize: bool = True) -> None:
        super().__init__()
        self.backbone = build_backbone(name, output_stride=output_stride, in_chans=in_chans,
                                       weights=weights, out_indices=(0, 1, 2, 3, 4))
        self.channels = list(self.backbone.channels)
        self.reductions = list(self.backbone.reductions)
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, in_chans, H, W) float in [0, 1] → five feature maps, finest (stride 2) first."""
        if self.normalize:
            x = (x - MONODEPTH_MEAN) / MONODEPTH_STD
        return self.backbone(x)
