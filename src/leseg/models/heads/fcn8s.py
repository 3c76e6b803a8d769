"""FCN-8s head: per-level score heads fused coarse to fine (Long et al., "Fully Convolutional
Networks for Semantic Segmentation", CVPR 2015, §4.2), in the form the BYOL fine-tuning model uses
(nilesh0109/self-supervised-sem-seg ``sem_seg/networks/fcn.py``).

On ResNet layer2/3/4 (strides 8/16/32 at output stride 32) each level gets a score head
conv3×3 C→C/8, BN, ReLU, conv3×3 C/8→C/8, BN, ReLU, conv1×1 → K; the scores are fused by bilinear
upsampling and summation from the coarsest level to the finest (32 → 16 → 8). With a dilated
backbone the "upsampling" between equal-size levels is the identity.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from leseg.models.heads.deeplab import check_feature_count, conv_bn_relu, resolve_index

__all__ = ["FCN8sHead", "score_head"]


def score_head(in_channels: int, num_classes: int) -> nn.Sequential:
    """conv3×3 C→C/8, BN, ReLU, conv3×3 C/8→C/8, BN, ReLU, conv1×1 → K (C/8 at least 1)."""
    mid = max(1, in_channels // 8)
    return nn.Sequential(
        conv_bn_relu(in_channels, mid, kernel_size=3),
        conv_bn_relu(mid, mid, kernel_size=3),
        nn.Conv2d(mid, num_classes, kernel_size=1),
    )


class FCN8sHead(nn.Module):
    """FCN-8s head over several backbone levels.

    Args:
        in_channels: widths of all backbone levels (``Backbone.channels``), finest first.
        num_classes: K.
        in_index: the levels to score, finest first (default the last three: ResNet layer2/3/4).
        align_corners: ``align_corners`` of the fusion upsampling.

    Forward: list of (B, in_channels[i], h_i, w_i) features → logits (B, K, h, w) at the resolution
    of the finest level in ``in_index``:
    ``s = score[-1](f[-1]); for finer levels j: s = up(s, size(f_j)) + score[j](f_j)``.

    Raises:
        ValueError: ``in_index`` empty, out of range, repeated, or not ordered finest first (by
            position); wrong number of feature levels in forward.
    """

    def __init__(self, in_channels: Sequence[int], num_classes: int,
                 in_index: Sequence[int] = (-3, -2, -1), align_corners: bool = False) -> None:
        super().__init__()
        self.in_channels = [int(c) for c in in_channels]
        self.in_index = [resolve_index(i, len(self.in_channels)) for i in in_index]
        if not self.in_index or sorted(set(self.in_index)) != self.in_index:
            raise ValueError(f"FCN8sHead in_index={list(in_index)} must name distinct levels of "
                             f"{len(self.in_channels)}, finest first")
        self.num_classes = int(num_classes)
        self.align_corners = align_corners
        self.score_heads = nn.ModuleList(
            score_head(self.in_channels[i], self.num_classes) for i in self.in_index)

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits (B, K, h, w) at the resolution of the finest level in ``in_index``."""
        check_feature_count(features, self.in_channels, type(self).__name__)
        scores = None
        for level, head in zip(reversed(self.in_index), reversed(self.score_heads)):
            level_score = head(features[level])
            if scores is None:
                scores = level_score
                continue
            if scores.shape[-2:] != level_score.shape[-2:]:
                scores = F.interpolate(scores, size=level_score.shape[-2:], mode="bilinear",
                                       align_corners=self.align_corners)
            scores = scores + level_score
        return scores
