"""The self-supervised depth network: encoder + ASPP U-Net disparity decoder + pose network.

Hoyer et al., CVPR 2021, §3.1 (arXiv 2012.10782); composed by :class:`leseg.methods.depth.
SelfSupervisedDepth`. ``init_from`` loads an earlier run (phase 1 → phase 2, or depth → segmentation
transfer) from a local checkpoint; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from leseg.models.depth.decoder import DepthDecoder
from leseg.models.depth.encoder import DepthEncoder
from leseg.models.depth.pose import PoseNet

__all__ = ["DepthNet", "load_depth_checkpoint"]


def load_depth_checkpoint(net: nn.Module, path: str | Path, prefix: str = "net.") -> None:
    """Load the ``prefix``-ed weights of a leseg Lightning checkpoint (or a plain state dict).

    Raises:
        FileNotFoundError: no such file. KeyError: the file has none of ``net``'s keys (names the
            file and a few of the keys it has).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"depth checkpoint not found: {path}")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    own = net.state_dict()
    picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not picked:
        picked = {k: v for k, v in state.items() if k in own}
    if not picked:
        raise KeyError(f"{path} holds no weights of the depth network (keys like "
                       f"{list(state)[:5]})")
    net.load_state_dict(picked, strict=True)


class DepthNet(nn.Module):
    """Encoder, disparity decoder and pose network of the monodepth2/Hoyer recipe.

    Args:
        encoder: timm ResNet name (paper: ``resnet101``); output_stride: 16 (paper) or 32.
        encoder_weights: local ImageNet weights for the encoder (None = random).
        decoder_channels: stage widths [64, 128, 128, 256, 256]; aspp: ASPP first stage.
        scales: disparity scales (0..3).
        pose_encoder: ResNet for the pose net (``resnet18``); pose_weights: local ImageNet file.
        init_from: local leseg checkpoint of an earlier depth run to start from (None = none).
        num_classes: segmentation classes of the dataset (stored, unused by depth).
        name: model name used in experiment names.

    Attributes: ``encoder`` (:class:`DepthEncoder`), ``decoder`` (:class:`DepthDecoder`),
    ``pose`` (:class:`PoseNet`).
    """

    def __init__(self, encoder: str = "resnet101", output_stride: int = 16,
                 encoder_weights: str | None = None,
                 decoder_channels: Sequence[int] = (64, 128, 128, 256, 256), aspp: bool = True,
                 scales: Sequence[int] = (0, 1, 2, 3), pose_encoder: str = "resnet18",
                 pose_weights: str | None = None, init_from: str | None = None,
                 num_classes: int | None = None, name: str = "depth") -> None:
        super().__init__()
        self.name = name
        self.num_classes = num_classes
        self.encoder = DepthEncoder(encoder, output_stride=output_stride, weights=encoder_weights)
        self.decoder = DepthDecoder(self.encoder.channels, decoder_channels, scales=scales,
                                    aspp=aspp)
        self.pose = PoseNet(pose_encoder, weights=pose_weights)
        self.scales = tuple(self.decoder.scales)
        if init_from is not None:
            load_depth_checkpoint(self, init_from)

    def forward(self, images: torch.Tensor) -> dict:
        """Disparities of (B, 3, H, W) images in [0, 1]: see :meth:`DepthDecoder.forward`."""
        return self.decoder(self.encoder(images), out_size=tuple(images.shape[-2:]))
