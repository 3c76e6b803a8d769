"""Wide ResNet-38 ("model A1") at output stride 8, and the CAM trunks of SSENet / AffinityNet.

Wu, Shen & van den Hengel, "Wider or Deeper: Revisiting the ResNet Model for Visual Recognition"
(Pattern Recognition 2019, arXiv 1611.10080), model A1: a pre-activation residual network
(He et al., ECCV 2016) with wide blocks. AffinityNet (Ahn & Kwak, CVPR 2018) and SSENet (Wang et
al., arXiv 1909.03714) use it at output stride 8: strides 2 in b2, b3, b4, then dilation 2 in b5
and 4 in the bottleneck blocks b6/b7; final features = ReLU(BN(b7)) with 4096 channels
(psa ``network/resnet38d.py``). Layer names follow the reference (``conv1a``, ``b2``, ``b2_1``, …,
``bn7``) so a converted MXNet ``ilsvrc-cls_rna-a1_cls1000_ep-0001.params`` state dict loads by name
(:func:`leseg.models.backbones.load_backbone_weights`; weights are never downloaded).

Training regime of the reference, implemented by :func:`freeze_batchnorm` and ``frozen``:
every BatchNorm stays in eval mode with frozen affine parameters, and ``conv1a``, ``b2``,
``b2_1``, ``b2_2`` receive no gradient.

:class:`TimmCAMTrunk` is the declared substitute (no timm ResNet-38 exists): a timm network (ResNet-50 by
default, any :func:`~leseg.models.backbones.build_backbone` name in tests) at output stride 8
with the same interface. Results with it are **not** ResNet-38 results.

Trunk interface (both classes): ``forward(x)`` → (B, out_channels, ⌈H/8⌉, ⌈W/8⌉) final features;
``forward_taps(x)`` → the three AffinityNet taps (list of maps, widths ``tap_channels``);
``pretrained_parameters()`` names nothing new — every trunk parameter counts as pretrained for the
×1/×2 learning-rate groups.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from leseg.models.backbones import build_backbone, load_backbone_weights

__all__ = ["ResNet38", "TimmCAMTrunk", "freeze_batchnorm"]

RESNET38_FROZEN = ("conv1a", "b2", "b2_1", "b2_2")
"""Blocks the reference never trains (psa ``network/resnet38_cls.py``)."""


def freeze_batchnorm(module: nn.Module) -> None:
    """Put every BatchNorm of ``module`` in eval mode and stop gradients to its affine parameters.

    Called from the trunks' ``train()`` so that ``model.train()`` never re-enables the
    running-statistics update (the reference's ``train()`` override does the same).
    """
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)


class _Block(nn.Module):
    """Pre-activation basic block: BN-ReLU → 3×3 (stride, first dilation) → BN-ReLU → 3×3."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int = 1, first_dilation: int | None = None,
                 dilation: int = 1) -> None:
        super().__init__()
        first_dilation = dilation if first_dilation is None else first_dilation
        self.same_shape = cin == cout and stride == 1
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, mid, 3, stride, padding=first_dilation,
                                       dilation=first_dilation, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(mid)
        self.conv_branch2b1 = nn.Conv2d(mid, cout, 3, padding=dilation, dilation=dilation,
                                        bias=False)
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor, return_act: bool = False):
        act = F.relu(self.bn_branch2a(x))
        shortcut = x if self.same_shape else self.conv_branch1(act)
        y = self.conv_branch2b1(F.relu(self.bn_branch2b1(self.conv_branch2a(act))))
        return (shortcut + y, act) if return_act else shortcut + y


class _Bottleneck(nn.Module):
    """Pre-activation bottleneck: BN-ReLU → 1×1 (C/4) → BN-ReLU-drop → 3×3 dil (C/2) → BN-ReLU-drop
    → 1×1 (C)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.same_shape = cin == cout and stride == 1
        self.bn_branch2a = nn.BatchNorm2d(cin)
        self.conv_branch2a = nn.Conv2d(cin, cout // 4, 1, stride, bias=False)
        self.bn_branch2b1 = nn.BatchNorm2d(cout // 4)
        self.dropout_2b1 = nn.Dropout2d(dropout)
        self.conv_branch2b1 = nn.Conv2d(cout // 4, cout // 2, 3, padding=dilation,
                                        dilation=dilation, bias=False)
        self.bn_branch2b2 = nn.BatchNorm2d(cout // 2)
        self.dropout_2b2 = nn.Dropout2d(dropout)
        self.conv_branch2b2 = nn.Conv2d(cout // 2, cout, 1, bias=False)
        if not self.same_shape:
            self.conv_branch1 = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor, return_act: bool = False):
        act = F.relu(self.bn_branch2a(x))
        shortcut = x if self.same_shape else self.conv_branch1(act)
        y = self.conv_branch2a(act)
        y = self.conv_branch2b1(self.dropout_2b1(F.relu(self.bn_branch2b1(y))))
        y = self.conv_branch2b2(self.dropout_2b2(F.relu(self.bn_branch2b2(y))))
        return (shortcut + y, act) if return_act else shortcut + y


class ResNet38(nn.Module):
    """Wide ResNet-38 (A1) at output stride 8 with 4096-channel output (see module docstring).

    Args:
        weights: local converted weights file (state dict with the reference's layer names, e.g.
            ``conv1a.weight``, ``b2.bn_branch2a.running_mean``, ``bn7.weight``); None = random
            init. Classifier keys (``fc8``…) are not part of the trunk and are ignored.
        strict: raise on missing / unexpected keys (else warn and load what matches).
        width: channel multiplier (1.0 = the paper's widths; tests use e.g. 1/16).
        frozen: blocks that receive no gradient (default the reference's conv1a, b2, b2_1, b2_2).
        freeze_bn: keep every BatchNorm in eval mode with frozen affine parameters (reference).

    Attributes:
        out_channels: 4096·width; ``tap_channels``: (512, 1024, 4096)·width, the AffinityNet taps
            (BN-ReLU'd inputs of b5 and b6, and the final features).

    Raises:
        FileNotFoundError / ValueError: a missing or non-matching weights file (from
            :func:`~leseg.models.backbones.load_backbone_weights`, naming the file).
    """

    output_stride = 8

    def __init__(self, weights: str | None = None, strict: bool = True, width: float = 1.0,
                 frozen: Sequence[str] = RESNET38_FROZEN, freeze_bn: bool = True) -> None:
        super().__init__()

        def c(n: int) -> int:
            return max(4, int(round(n * width)))

        self.conv1a = nn.Conv2d(3, c(64), 3, padding=1, bias=False)
        self.b2 = _Block(c(64), c(128), c(128), stride=2)
        self.b2_1 = _Block(c(128), c(128), c(128))
        self.b2_2 = _Block(c(128), c(128), c(128))
        self.b3 = _Block(c(128), c(256), c(256), stride=2)
        self.b3_1 = _Block(c(256), c(256), c(256))
        self.b3_2 = _Block(c(256), c(256), c(256))
        self.b4 = _Block(c(256), c(512), c(512), stride=2)
        for i in range(1, 6):
            setattr(self, f"b4_{i}", _Block(c(512), c(512), c(512)))
        self.b5 = _Block(c(512), c(512), c(1024), first_dilation=1, dilation=2)
        self.b5_1 = _Block(c(1024), c(512), c(1024), dilation=2)
        self.b5_2 = _Block(c(1024), c(512), c(1024), dilation=2)
        self.b6 = _Bottleneck(c(1024), c(2048), dilation=4, dropout=0.3)
        self.b7 = _Bottleneck(c(2048), c(4096), dilation=4, dropout=0.5)
        self.bn7 = nn.BatchNorm2d(c(4096))
        self.out_channels = c(4096)
        self.tap_channels = (c(512), c(1024), c(4096))
        self.frozen = tuple(frozen)
        self.freeze_bn = bool(freeze_bn)
        if weights is not None:
            load_backbone_weights(self, weights, strict=strict)
        for name in self.frozen:
            for p in getattr(self, name).parameters():
                p.requires_grad_(False)
        if self.freeze_bn:
            freeze_batchnorm(self)

    def train(self, mode: bool = True) -> ResNet38:
        """Train mode everywhere except the (frozen) BatchNorms."""
        super().train(mode)
        if self.freeze_bn:
            freeze_batchnorm(self)
        return self

    def forward_taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """AffinityNet taps of images x (B, 3, H, W): [(B, 512w, h, w), (B, 1024w, h, w),
        (B, 4096w, h, w)] with h = ⌈H/8⌉; all BN-ReLU'd."""
        x = self.conv1a(x)
        for name in ("b2", "b2_1", "b2_2", "b3", "b3_1", "b3_2", "b4", "b4_1", "b4_2", "b4_3",
                     "b4_4", "b4_5"):
            x = getattr(self, name)(x)
        x, tap4 = self.b5(x, return_act=True)
        x = self.b5_2(self.b5_1(x))
        x, tap5 = self.b6(x, return_act=True)
        x = self.b7(x)
        return [tap4, tap5, F.relu(self.bn7(x))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Final features (B, out_channels, ⌈H/8⌉, ⌈W/8⌉), float, ≥ 0, of images (B, 3, H, W)."""
        return self.forward_taps(x)[-1]


class TimmCAMTrunk(nn.Module):
    """A timm network at output stride 8 with the :class:`ResNet38` interface (declared substitute).

    Args:
        name: timm model name (``resnet50`` = the modern CAM default; ``resnet18`` in tests).
        weights: local ImageNet weights file or None (random init; never downloaded).
        strict: as in :func:`~leseg.models.backbones.build_backbone`.
        frozen_levels: number of leading timm modules (``conv1``, ``bn1``, ``layer1`` …) without
            gradient; 0 = none. The default 3 freezes the stem and layer1, the analogue of
            ResNet-38's conv1a + b2 blocks.
        freeze_bn: keep BatchNorms in eval mode with frozen affine parameters.

    Attributes:
        out_channels: width of the deepest level (2048 for ResNet-50); ``tap_channels``: widths of
            the last three levels (512, 1024, 2048 for ResNet-50), all at stride 8.
    """

    output_stride = 8

    def __init__(self, name: str = "resnet50", weights: str | None = None, strict: bool = True,
                 frozen_levels: int = 3, freeze_bn: bool = True) -> None:
        super().__init__()
        self.backbone = build_backbone(name, output_stride=8, weights=weights, strict=strict)
        if len(self.backbone.channels) < 3:
            raise ValueError(f"TimmCAMTrunk needs ≥ 3 feature levels, {name} has "
                             f"{self.backbone.channels}")
        self.out_channels = self.backbone.channels[-1]
        self.tap_channels = tuple(self.backbone.channels[-3:])
        self.freeze_bn = bool(freeze_bn)
        for child in list(self.backbone.body.children())[:int(frozen_levels)]:
            for p in child.parameters():
                p.requires_grad_(False)
        if self.freeze_bn:
            freeze_batchnorm(self)

    def train(self, mode: bool = True) -> TimmCAMTrunk:
        """Train mode everywhere except the (frozen) BatchNorms."""
        super().train(mode)
        if self.freeze_bn:
            freeze_batchnorm(self)
        return self

    def forward_taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The last three feature levels (B, tap_channels[i], ⌈H/8⌉, ⌈W/8⌉) (ReLU outputs)."""
        feats = self.backbone(x)
        size = feats[-1].shape[-2:]
        return [f if f.shape[-2:] == size else F.interpolate(f, size=size, mode="bilinear",
                                                             align_corners=False)
                for f in feats[-3:]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Deepest features (B, out_channels, ⌈H/8⌉, ⌈W/8⌉)."""
        return self.backbone(x)[-1]
