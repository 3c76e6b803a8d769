"""DeepLabV3 and DeepLabV3+ decode heads.

- DeepLabV3 (Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation", 2017,
  §3.3): Atrous Spatial Pyramid Pooling (ASPP) on the deepest feature, written as torchvision's
  ``DeepLabHead``: ASPP → 1×1 projection (BN, ReLU, Dropout) → 3×3 conv BN ReLU → 1×1 classifier.
- DeepLabV3+ (Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic Image
  Segmentation", ECCV 2018, §3.1): the same ASPP, bilinearly upsampled to the stride-4 low-level
  feature and concatenated with its 1×1 projection (48 channels), two 3×3 conv BN ReLU, classifier.
  Plain (not depthwise-separable) 3×3 convolutions, as in U2PL (``decoder.py``) / UniMatch.

Both heads take the backbone's list of features (finest first) and return logits at the resolution
of the finest level they use; :class:`leseg.models.segmentor.Segmentor` upsamples to the input.

Note: the ASPP image-pooling branch applies BatchNorm to (B, C, 1, 1) maps, so training mode needs
B ≥ 2 (as in torchvision and mmsegmentation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ASPP", "DeepLabV3Head", "DeepLabV3PlusHead", "check_feature_count", "conv_bn_relu",
           "resolve_index"]


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3,
                 dilation: int = 1) -> nn.Sequential:
    """Conv (no bias, 'same' padding) → BatchNorm2d → ReLU; keeps H and W for odd kernel sizes."""
    padding = dilation * (kernel_size - 1) // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation,
                  bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def resolve_index(index: int, num_levels: int, what: str = "in_index") -> int:
    """Turn a (possibly negative) feature-level index into a position in ``[0, num_levels)``.

    Raises:
        ValueError: the index is outside ``[-num_levels, num_levels)`` (names ``what``).
    """
    index = int(index)
    if not -num_levels <= index < num_levels:
        raise ValueError(f"{what}={index} is out of range for a backbone with {num_levels} "
                         f"feature levels")
    return index % num_levels


def check_feature_count(features: Sequence[torch.Tensor], in_channels: Sequence[int],
                    head: str) -> None:
    """Raise ValueError naming ``head`` unless there is one feature map per configured level."""
    if len(features) != len(in_channels):
        raise ValueError(f"{head} was built for {len(in_channels)} feature levels "
                         f"{list(in_channels)}, got {len(features)}")


class ASPP(nn.Module):
    """Atrous Spatial Pyramid Pooling with image pooling (DeepLabV3, Chen et al. 2017, §3.3).

    Five kinds of branch on the same (B, in_channels, h, w) feature, each conv-BN-ReLU to
    ``channels``: a 1×1 conv, one 3×3 conv per dilation rate, and global average pooling → 1×1 conv
    → bilinear upsampling back to (h, w). Their concatenation (B, (2 + len(dilations))·channels, h, w)
    is projected by 1×1 conv-BN-ReLU and Dropout2d(dropout) to (B, channels, h, w).

    Args:
        in_channels: width of the input feature.
        channels: width of every branch and of the output.
        dilations: atrous rates of the 3×3 branches (12/24/36 at output stride 8, 6/12/18 at 16).
        dropout: drop probability after the projection (0.5 in torchvision, 0.1 in mmsegmentation).
    """

    def __init__(self, in_channels: int, channels: int = 256,
                 dilations: Sequence[int] = (12, 24, 36), dropout: float = 0.1) -> None:
        super().__init__()
        self.dilations = tuple(int(d) for d in dilations)
        branches = [conv_bn_relu(in_channels, channels, kernel_size=1)]
        branches += [conv_bn_relu(in_channels, channels, kernel_size=3, dilation=d)
                     for d in self.dilations]
        self.branches = nn.ModuleList(branches)
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1),
                                        conv_bn_relu(in_channels, channels, kernel_size=1))
        self.project = nn.Sequential(
            conv_bn_relu((len(branches) + 1) * channels, channels, kernel_size=1),
            nn.Dropout2d(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, h, w) → (B, channels, h, w)."""
        outs = [branch(x) for branch in self.branches]
        pooled = self.image_pool(x)
        outs.append(F.interpolate(pooled, size=x.shape[-2:], mode="bilinear", align_corners=False))
        return self.project(torch.cat(outs, dim=1))


class DeepLabV3Head(nn.Module):
    """DeepLabV3 head: ASPP → 3×3 conv-BN-ReLU → 1×1 classifier (torchvision ``DeepLabHead``).

    Args:
        in_channels: widths of all backbone levels (``Backbone.channels``), finest first.
        num_classes: K.
        in_index: the level the ASPP runs on (default the deepest; S5 uses 2 on HRNet).
        channels: ASPP / head width (256).
        dilations: ASPP atrous rates (12, 24, 36) at output stride 8.
        dropout: drop probability after the ASPP projection.

    Forward: list of (B, in_channels[i], h_i, w_i) features → logits (B, K, h, w) at the resolution
    of level ``in_index``.

    Raises:
        ValueError: ``in_index`` out of range; wrong number of feature levels in forward.
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, in_index: int = -1,
                 channels: int = 256, dilations: Sequence[int] = (12, 24, 36),
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.in_channels = [int(c) for c in in_channels]
        self.in_index = resolve_index(in_index, len(self.in_channels))
        self.num_classes = int(num_classes)
        self.aspp = ASPP(self.in_channels[self.in_index], channels, dilations, dropout)
        self.bottleneck = conv_bn_relu(channels, channels, kernel_size=3)
        self.classifier = nn.Conv2d(channels, self.num_classes, kernel_size=1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits (B, K, h, w) at the resolution of ``features[in_index]``."""
        check_feature_count(features, self.in_channels, type(self).__name__)
        x = self.aspp(features[self.in_index])
        return self.classifier(self.bottleneck(x))


class DeepLabV3PlusHead(nn.Module):
    """DeepLabV3+ decoder: ASPP on the deep level, fused with a projected low-level feature.

    ASPP(features[in_index]) → (B, channels, h_deep, w_deep), upsampled bilinearly to the low-level
    size; concatenated with 1×1 conv-BN-ReLU(features[low_level_index]) → (B, channels +
    low_level_channels, h_low, w_low); two 3×3 conv-BN-ReLU (channels); Dropout2d(dropout); 1×1 conv
    → K.

    Args:
        in_channels: widths of all backbone levels, finest first.
        num_classes: K.
        in_index: the deep level for the ASPP (default the deepest).
        low_level_index: the stride-4 level (0 with leseg's default ResNet levels).
        channels: ASPP and decoder width (256).
        low_level_channels: width of the low-level projection (48, Chen et al. 2018 §4.1).
        dilations: ASPP atrous rates (6, 12, 18) at output stride 16, (12, 24, 36) at 8.
        dropout: drop probability after the ASPP projection and before the classifier.
        align_corners: ``align_corners`` of the deep-to-low-level upsampling.
        representation_channels: D > 0 adds U2PL's representation head (``decoder.py``): a
            branch of the same shape as the classifier's (two 3×3 conv-BN-ReLU, Dropout2d, 1×1
            conv) on the same fused feature, giving (B, D, h_low, w_low) pixel embeddings for the
            contrastive term (:meth:`forward_with_representation`); 0 (default) builds none.

    Raises:
        ValueError: an index out of range; wrong number of feature levels in forward.
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int, in_index: int = -1,
                 low_level_index: int = 0, channels: int = 256, low_level_channels: int = 48,
                 dilations: Sequence[int] = (6, 12, 18), dropout: float = 0.1,
                 align_corners: bool = False, representation_channels: int = 0) -> None:
        super().__init__()
        self.in_channels = [int(c) for c in in_channels]
        self.in_index = resolve_index(in_index, len(self.in_channels))
        self.low_level_index = resolve_index(low_level_index, len(self.in_channels),
                                             "low_level_index")
        self.num_classes = int(num_classes)
        self.align_corners = align_corners
        self.aspp = ASPP(self.in_channels[self.in_index], channels, dilations, dropout)
        self.low_level_project = conv_bn_relu(self.in_channels[self.low_level_index],
                                              low_level_channels, kernel_size=1)
        self.fuse = nn.Sequential(
            conv_bn_relu(channels + low_level_channels, channels, kernel_size=3),
            conv_bn_relu(channels, channels, kernel_size=3),
            nn.Dropout2d(dropout),
        )
        self.classifier = nn.Conv2d(channels, self.num_classes, kernel_size=1)
        if int(representation_channels) < 0:
            raise ValueError(f"representation_channels must be >= 0, got {representation_channels}")
        self.representation_channels = int(representation_channels)
        self.representation: nn.Module | None = None
        if self.representation_channels:
            self.representation = nn.Sequential(
                conv_bn_relu(channels + low_level_channels, channels, kernel_size=3),
                conv_bn_relu(channels, channels, kernel_size=3),
                nn.Dropout2d(dropout),
                nn.Conv2d(channels, self.representation_channels, kernel_size=1),
            )

    def _fused(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """concat(upsampled ASPP, projected low-level): (B, channels + low_level_channels, h, w)."""
        check_feature_count(features, self.in_channels, type(self).__name__)
        low = features[self.low_level_index]
        deep = self.aspp(features[self.in_index])
        deep = F.interpolate(deep, size=low.shape[-2:], mode="bilinear",
                             align_corners=self.align_corners)
        return torch.cat([deep, self.low_level_project(low)], dim=1)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits (B, K, h_low, w_low) at the resolution of ``features[low_level_index]``."""
        return self.classifier(self.fuse(self._fused(features)))

    def forward_with_representation(self, features: Sequence[torch.Tensor]
                                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits (B, K, h_low, w_low), representations (B, D, h_low, w_low))``.

        Raises:
            RuntimeError: the head was built with ``representation_channels=0``.
        """
        if self.representation is None:
            raise RuntimeError("this DeepLabV3PlusHead has no representation head; build it with "
                               "representation_channels > 0 (model.head.representation_channels)")
        x = self._fused(features)
        return self.classifier(self.fuse(x)), self.representation(x)
