"""Pose network on frame pairs (monodepth2's separate ResNet-18 pose net; ``pose_decoder.py``).

A ResNet-18 encoder on the 6-channel concatenation of two frames (ImageNet conv1 weights duplicated
and halved, Godard et al. ICCV 2019 §3.3) and monodepth2's pose decoder: 1×1 squeeze to 256 + ReLU,
two 3×3 256-ch convs + ReLU, 1×1 conv → 6·2, spatial mean, ×0.01 → axis-angle and translation.
"""

from __future__ import annotations

import torch
from torch import nn

from leseg.models.backbones import build_backbone

__all__ = ["PoseNet"]


class PoseNet(nn.Module):
    """6-DoF relative pose of a frame pair.

    Args:
        name: timm ResNet name for the pair encoder (``resnet18``).
        weights: local ImageNet (3-channel) weights file: conv1 is duplicated over the two frames
            and halved; None = random init.
        num_poses: poses predicted per pair (2 as in monodepth2; only the first is used).

    Forward: (B, 6, H, W) frames in [0, 1] (earlier frame first) → (axis_angle (B, num_poses, 3),
    translation (B, num_poses, 3)).
    """

    def __init__(self, name: str = "resnet18", weights: str | None = None,
                 num_poses: int = 2) -> None:
        super().__init__()
        self.encoder = build_backbone(name, in_chans=6, out_indices=(4,))
        if weights is not None:
            self._load_pair_weights(name, weights)
        c = self.encoder.channels[-1]
        self.num_poses = num_poses
        self.decoder = nn.Sequential(
            nn.Conv2d(c, 256, 1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 6 * num_poses, 1),
        )

    def _load_pair_weights(self, name: str, weights: str) -> None:
        rgb = build_backbone(name, in_chans=3, weights=weights, out_indices=(4,))
        state = rgb.state_dict()
        for key, value in state.items():
            if value.ndim == 4 and value.shape[1] == 3 and key.endswith("conv1.weight"):
                state[key] = torch.cat([value, value], dim=1) / 2
        self.encoder.load_state_dict(state)

    def forward(self, pair: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Axis-angle and translation, each (B, num_poses, 3)."""
        x = (pair - 0.45) / 0.225
        out = self.decoder(self.encoder(x)[-1]).mean(dim=(2, 3))
        out = 0.01 * out.view(-1, self.num_poses, 6)
        return out[..., :3], out[..., 3:]
