"""U-Net disparity decoder whose first stage is ASPP ("dec5/dec6"; Hoyer et al. ``depth_decoder.py``).

monodepth2's decoder (Godard et al., ICCV 2019, supplementary Table) with the change of Hoyer et al.
(CVPR 2021, §3.1): five up-stages i = 4 … 0 with widths [64, 128, 128, 256, 256] (indexed by i);
stage i: conv_i,0 (+ELU) → nearest upsampling to the next skip's size (2× where the encoder
halved the resolution; none between the two stride-16 levels of a dilated encoder; to the input size
at i = 0) → concatenation with encoder level i − 1 (i > 0) → conv_i,1 (+ELU). conv_4,0 is an
ASPP (1×1 + rates 6/12/18 + image pooling, 256 ch, 1×1 projection, Dropout 0.5) instead of a 3×3
conv. Convolutions are 3×3 with reflection padding. Sigmoid disparity heads (3×3 conv → 1 channel)
on stages 0–3 give disparities at scales s = 0..3 (stride 2^s of the input).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from leseg.models.heads.deeplab import ASPP

__all__ = ["ConvELU", "DepthDecoder"]


class ConvELU(nn.Sequential):
    """3×3 reflection-padded conv + ELU (monodepth2's ``ConvBlock``): (B, C_in, h, w) → (B, C_out, h, w)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.ReflectionPad2d(1), nn.Conv2d(in_channels, out_channels, 3),
                         nn.ELU(inplace=True))


class DepthDecoder(nn.Module):
    """Disparity decoder on the five encoder levels.

    Args:
        in_channels: widths of the five encoder levels (finest first).
        channels: stage widths indexed by stage i = 0..4 (paper: [64, 128, 128, 256, 256]).
        scales: disparity output scales (subset of 0..3).
        aspp: use ASPP as the first stage (paper); False = monodepth2's 3×3 conv.
        aspp_dilations, aspp_dropout: ASPP rates (6, 12, 18) and projection dropout 0.5.

    Forward: list of five features → dict with ``("disp", s)`` (B, 1, H/2^s, W/2^s) in (0, 1) for
    each scale and ``("features", i)`` the output of stage i (layer 9 − i in the paper's numbering).
    The output size at scale 0 is the input size when the encoder's stem has stride 2.
    """

    def __init__(self, in_channels: Sequence[int], channels: Sequence[int] = (64, 128, 128, 256, 256),
                 scales: Sequence[int] = (0, 1, 2, 3), aspp: bool = True,
                 aspp_dilations: Sequence[int] = (6, 12, 18), aspp_dropout: float = 0.5) -> None:
        super().__init__()
        if len(in_channels) != 5 or len(channels) != 5:
            raise ValueError(f"DepthDecoder needs 5 encoder levels and 5 stage widths, got "
                             f"{list(in_channels)} and {list(channels)}")
        self.in_channels, self.channels = list(in_channels), list(channels)
        self.scales = tuple(int(s) for s in scales)
        if any(s not in range(4) for s in self.scales):
            raise ValueError(f"scales must lie in 0..3, got {self.scales}")
        self.conv0 = nn.ModuleDict()
        self.conv1 = nn.ModuleDict()
        for i in range(4, -1, -1):
            c_in = self.in_channels[4] if i == 4 else self.channels[i + 1]
            if i == 4 and aspp:
                self.conv0[str(i)] = ASPP(c_in, self.channels[4], aspp_dilations, aspp_dropout)
            else:
                self.conv0[str(i)] = ConvELU(c_in, self.channels[i])
            skip = self.in_channels[i - 1] if i > 0 else 0
            self.conv1[str(i)] = ConvELU(self.channels[i] + skip, self.channels[i])
        self.disp = nn.ModuleDict({str(s): nn.Sequential(nn.ReflectionPad2d(1),
                                                          nn.Conv2d(self.channels[s], 1, 3))
                                   for s in self.scales})

    def forward(self, features: Sequence[torch.Tensor],
                out_size: tuple[int, int] | None = None) -> dict:
        """Disparities and stage features of the five encoder levels.

        Args:
            features: five (B, C_i, h_i, w_i) maps, finest first.
            out_size: size of the stage-0 output (default: 2× the finest level).
        """
        if len(features) != 5:
            raise ValueError(f"DepthDecoder expects 5 feature levels, got {len(features)}")
        out: dict = {}
        x = features[4]
        for i in range(4, -1, -1):
            x = self.conv0[str(i)](x)
            if i > 0:
                target = features[i - 1].shape[-2:]
            else:
                h, w = features[0].shape[-2:]
                target = out_size or (2 * h, 2 * w)
            if tuple(x.shape[-2:]) != tuple(target):
                x = F.interpolate(x, size=tuple(target), mode="nearest")
            if i > 0:
                x = torch.cat([x, features[i - 1]], dim=1)
            x = self.conv1[str(i)](x)
            out[("features", i)] = x
            if i in self.scales:
                out[("disp", i)] = torch.sigmoid(self.disp[str(i)](x))
        return out
