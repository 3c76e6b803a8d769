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
        aux_head: optional factory like ``head`` for a training-only auxiliary head (e.g.
            :class:`~leseg.models.heads.FCNAuxHead` on layer3, U2PL's Cityscapes recipe); its
            logits are returned by :meth:`forward_train` only.

    Attributes:
        backbone, head: the two parts (methods give the head a learning-rate multiplier).
        aux_head: the auxiliary head or None (trained at the head's learning rate).
        num_classes, name, align_corners: as given.

    Raises:
        ValueError: the backbone has no ``channels`` attribute, or num_classes < 1.
    """

    def __init__(self, backbone: nn.Module, head: Callable[..., nn.Module], num_classes: int,
                 name: str = "", align_corners: bool = False,
                 aux_head: Callable[..., nn.Module] | None = None) -> None:
        super().__init__()
        channels = getattr(backbone, "channels", None)
        if channels is None:
            raise ValueError(f"Segmentor needs a backbone with a `channels` list (as built by "
                             f"leseg.models.backbones.build_backbone), got {type(backbone).__name__}")
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be ≥ 1, got {num_classes}")
        self.backbone = backbone
        self.head = head(in_channels=list(channels), num_classes=int(num_classes))
        self.aux_head = (None if aux_head is None
                         else aux_head(in_channels=list(channels), num_classes=int(num_classes)))
        self.num_classes = int(num_classes)
        self.name = name
        self.align_corners = bool(align_corners)

    @property
    def has_representation(self) -> bool:
        """True when the head can return pixel representations (U2PL's representation head)."""
        return getattr(self.head, "representation", None) is not None

    def _upsample(self, logits: torch.Tensor, size: torch.Size) -> torch.Tensor:
        if logits.shape[-2:] != size:
            logits = F.interpolate(logits, size=size, mode="bilinear",
                                   align_corners=self.align_corners)
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, num_classes, H, W) float for images (B, C_in, H, W) float32."""
        return self._upsample(self.head(self.backbone(x)), x.shape[-2:])

    def forward_train(self, x: torch.Tensor, representation: bool = False
                      ) -> dict[str, torch.Tensor]:
        """All training outputs of one forward pass over images (B, C_in, H, W) float32.

        Returns:
            ``logits`` (B, K, H, W); ``aux`` (B, K, H, W) when there is an auxiliary head;
            ``rep`` (B, D, h, w) at the decoder's resolution (stride 4 for DeepLabV3+) when
            ``representation`` is True.

        Raises:
            RuntimeError: ``representation`` is requested but the head has none.
        """
        features = self.backbone(x)
        out: dict[str, torch.Tensor] = {}
        if representation:
            if not self.has_representation:
                raise RuntimeError(f"{type(self.head).__name__} of {self.name or 'the segmentor'} "
                                   f"has no representation head; set "
                                   f"model.head.representation_channels (e.g. 256)")
            logits, out["rep"] = self.head.forward_with_representation(features)
        else:
            logits = self.head(features)
        out["logits"] = self._upsample(logits, x.shape[-2:])
        if self.aux_head is not None:
            out["aux"] = self._upsample(self.aux_head(features), x.shape[-2:])
        return out
