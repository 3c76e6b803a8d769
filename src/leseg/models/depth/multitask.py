"""Multi-task network: segmentation and depth decoders on one encoder with cross-task attention.

Hoyer et al., CVPR 2021, §3.2 "Multi-task learning" (reference ``PAD``, exp 212): the
depth encoder (layers 0–4) feeds two decoders of the depth-decoder architecture
(:class:`~leseg.models.depth.DepthDecoder`, layers 5–9), both initialised from the SDE decoder
when transferring. Both run up to layer 7 (decoder stage i = 2); there each branch adds a
self-attended copy of the *other* branch's layer-7 features (PAD-Net style distillation,
:class:`CrossTaskAttention`: a 3×3 conv message times a sigmoid 3×3 conv gate); then both
decoders finish. Outputs: segmentation logits from layer 9 (the
:class:`~leseg.models.depth.segmentation.DepthSegmentor` head: two 1×1 convs with nothing between;
the reference's ``PAD.seg_final_head`` is one 1×1 conv, the same linear classifier for K ≤ 64,
kept two-layer so that a transferred segmentation head loads here), a segmentation side output
(1×1) at layer 7, and the depth branch's sigmoid disparities at scales 0–3.

The reference initialises the gate conv to zero so that the distillation "starts closed"; since
sigmoid(0) = 0.5, we (INFERRED) start it closed by zero-initialising the message conv, so a freshly
transferred network computes exactly the SDE decoder's features.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from leseg.models.depth.decoder import DepthDecoder
from leseg.models.depth.encoder import DepthEncoder
from leseg.models.depth.segmentation import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    load_depth_state,
    register_input_normalisation,
    segmentation_head,
    transfer_depth_weights,
)

__all__ = ["CrossTaskAttention", "MultiTaskDepthSegmentor", "run_decoder_stages"]

#: decoder stage of the distillation: layer 7 of the reference's numbering (5 + (4 − i))
DISTILL_STAGE = 2


def run_decoder_stages(decoder: DepthDecoder, features: Sequence[torch.Tensor], x: torch.Tensor,
                       stages: Sequence[int], out_size: tuple[int, int],
                       out: dict[Any, torch.Tensor]) -> torch.Tensor:
    """Run the given (descending) stages of a :class:`DepthDecoder` from input ``x``.

    Same computation as :meth:`DepthDecoder.forward` restricted to ``stages``: conv0 → nearest
    upsampling to the next skip (the input size at stage 0) → concatenation with encoder level
    i − 1 → conv1; writes ``("features", i)`` and, for the decoder's scales, ``("disp", i)`` into
    ``out``. Returns the last stage's features.
    """
    for i in stages:
        x = decoder.conv0[str(i)](x)
        target = features[i - 1].shape[-2:] if i > 0 else out_size
        if tuple(x.shape[-2:]) != tuple(target):
            x = F.interpolate(x, size=tuple(target), mode="nearest")
        if i > 0:
            x = torch.cat([x, features[i - 1]], dim=1)
        x = decoder.conv1[str(i)](x)
        out[("features", i)] = x
        if i in decoder.scales:
            out[("disp", i)] = torch.sigmoid(decoder.disp[str(i)](x))
    return x


class CrossTaskAttention(nn.Module):
    """Self-attended message from the other task: conv3×3(x) · sigmoid(conv3×3(x)), (B, C, h, w).

    The message conv starts at zero (module docstring), so the branch starts as the identity.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.message = nn.Conv2d(channels, channels, 3, padding=1)
        self.gate = nn.Conv2d(channels, channels, 3, padding=1)
        nn.init.zeros_(self.message.weight)
        nn.init.zeros_(self.message.bias)

    def forward(self, other: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.message(other) * torch.sigmoid(self.gate(other))


class MultiTaskDepthSegmentor(nn.Module):
    """Shared depth encoder, depth + segmentation decoders, cross-task attention (module docstring).

    Args:
        num_classes, encoder, output_stride, encoder_weights, decoder_channels, aspp,
            head_channels, input_mean, input_std, name: as
            :class:`~leseg.models.depth.segmentation.DepthSegmentor`.
        init_from_depth: depth checkpoint: its encoder goes to the shared encoder, its decoder to
            both decoders (stage convs; the depth decoder also takes the disparity heads).
        side_output: the layer-7 segmentation side head (paper: on).

    Attributes: ``backbone`` (encoder, base LR), ``depth_decoder``, ``seg_decoder``,
    ``to_seg`` / ``to_depth`` (:class:`CrossTaskAttention`), ``head``, ``side_head``.

    Forward: images (B, 3, H, W) normalised → segmentation logits (B, K, H, W);
    :meth:`forward_multitask` returns all outputs.
    """

    def __init__(self, num_classes: int, encoder: str = "resnet101", output_stride: int = 16,
                 encoder_weights: str | None = None,
                 decoder_channels: Sequence[int] = (64, 128, 128, 256, 256), aspp: bool = True,
                 head_channels: int = 64,
                 input_mean: Sequence[float] | None = IMAGENET_MEAN,
                 input_std: Sequence[float] | None = IMAGENET_STD,
                 init_from_depth: str | None = None, side_output: bool = True,
                 name: str = "mtl") -> None:
        super().__init__()
        self.num_classes, self.name = int(num_classes), name
        self.backbone = DepthEncoder(encoder, output_stride=output_stride,
                                     weights=None if init_from_depth else encoder_weights)
        ch = self.backbone.channels
        self.depth_decoder = DepthDecoder(ch, decoder_channels, scales=(0, 1, 2, 3), aspp=aspp)
        self.seg_decoder = DepthDecoder(ch, decoder_channels, scales=(), aspp=aspp)
        c = int(decoder_channels[DISTILL_STAGE])
        self.to_seg, self.to_depth = CrossTaskAttention(c), CrossTaskAttention(c)
        c0 = int(decoder_channels[0])
        self.head = segmentation_head(c0, head_channels, self.num_classes)
        self.side_head = nn.Conv2d(c, self.num_classes, 1) if side_output else None
        register_input_normalisation(self, input_mean, input_std)
        self.transferred: list[str] = []
        if init_from_depth:
            self.transferred = transfer_depth_weights(self.backbone, self.seg_decoder,
                                                      init_from_depth)
            transfer_depth_weights(self.backbone, self.depth_decoder, init_from_depth)
            disp = {k: v for k, v in load_depth_state(init_from_depth)["decoder"].items()
                    if k.startswith("disp.")}
            own = self.depth_decoder.state_dict()
            if set(disp) != {k for k in own if k.startswith("disp.")}:
                raise ValueError(f"model.init_from_depth: {init_from_depth} lacks disparity "
                                 f"heads for scales 0-3")
            own.update(disp)
            self.depth_decoder.load_state_dict(own)
            self.transferred += [f"depth_decoder.{k}" for k in own]

    def forward_multitask(self, images: torch.Tensor) -> dict[str, Any]:
        """All outputs for images (B, 3, H, W) normalised like the DataModule.

        Returns:
            ``logits`` (B, K, H, W); ``side_logits`` (B, K, H, W) or None; ``disp`` (B, 1, H, W)
            scale-0 disparity in (0, 1); ``depth_outputs``: the depth branch's dict with
            ``("disp", s)`` for s = 0..3.
        """
        x01 = images if self.input_mean is None else (
            images * self.input_std.to(images) + self.input_mean.to(images))
        size = tuple(images.shape[-2:])
        feats = self.backbone(x01)
        depth_out: dict[Any, torch.Tensor] = {}
        seg_out: dict[Any, torch.Tensor] = {}
        first = list(range(4, DISTILL_STAGE - 1, -1))  # stages 4, 3, 2 = layers 5, 6, 7
        rest = list(range(DISTILL_STAGE - 1, -1, -1))  # stages 1, 0 = layers 8, 9
        d = run_decoder_stages(self.depth_decoder, feats, feats[4], first, size, depth_out)
        s = run_decoder_stages(self.seg_decoder, feats, feats[4], first, size, seg_out)
        d, s = d + self.to_depth(s), s + self.to_seg(d)
        depth_out[("features", DISTILL_STAGE)] = d
        if DISTILL_STAGE in self.depth_decoder.scales:  # disparity after the distillation
            depth_out[("disp", DISTILL_STAGE)] = torch.sigmoid(
                self.depth_decoder.disp[str(DISTILL_STAGE)](d))
        side = None
        if self.side_head is not None:
            side = F.interpolate(self.side_head(s), size=size, mode="bilinear",
                                 align_corners=False)
        run_decoder_stages(self.depth_decoder, feats, d, rest, size, depth_out)
        s = run_decoder_stages(self.seg_decoder, feats, s, rest, size, seg_out)
        return {"logits": self.head(s), "side_logits": side, "disp": depth_out[("disp", 0)],
                "depth_outputs": depth_out}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Segmentation logits (B, K, H, W)."""
        return self.forward_multitask(images)["logits"]
