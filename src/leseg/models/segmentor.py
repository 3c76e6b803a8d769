"""Encoder-decoder segmentation network: backbone features → head logits → input resolution.

The head is given as a factory so that configs need not repeat the backbone's channel widths::

    Segmentor(build_backbone("resnet18", output_stride=16),
              functools.partial(DeepLabV3PlusHead, dilations=(6, 12, 18)), num_classes=19)

(in Hydra: ``head: {_target_: leseg.models.heads.DeepLabV3PlusHead, _partial_: true, ...}``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Segmentor"]


class Segmentor(nn.Module):
    """Backbone + decode head, logits bilinearly upsampled to the input size.

    Args:
        backbone: module mapping (B, C_in, H, W) to a list of features, with a ``channels`` list
            (e.g. :class:`leseg.models.backbones.Backbone`).
        head: factory called as ``head(in_channels=backbone.channels, num_classes=num_classes)``
            returning a module that maps the feature list to logits (B, num_classes, h, w).
        num_classes: K.
        name: short model name for logs and result tables, e.g. ``"deeplabv3plus-r50-d8"``.
        align_corners: ``align_corners`` of the final upsampling (True for mmseg's "769" models).

    Attributes:
        backbone, head: the two parts (methods give the head a learning-rate multiplier).
        num_classes, name, align_corners: as given.

    Raises:
        ValueError: the backbone has no ``channels`` attribute, or num_classes < 1.
    """

    def __init__(self, backbone: nn.Module, head: Callable[..., nn.Module], num_classes: int,
                 name: str = "", align_corners: bool = False) -> None:
        super().__init__()
        channels = getattr(backbone, "channels", None)
        if channels is None:
            raise ValueError(f"Segmentor needs a backbone with a `channels` list (as built by "
                             f"leseg.models.backbones.build_backbone), got {type(backbone).__name__}")
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be ≥ 1, got {num_classes}")
        self.backbone = backbone
        self.head = head(in_channels=list(channels), num_classes=int(num_classes))
        self.num_classes = int(num_classes)
        self.name = name
        self.align_corners = bool(align_corners)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes, H, W) float for images (B, C_in, H, W) float32."""
        logits = self.head(self.backbone(x))
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear",
                                   align_corners=self.align_corners)
        return logits
